"""The sweep driver, for real: a local Ray instance, Optuna's TPE, ASHA, W&B offline, read back."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE, OBJECTIVE_COLUMN
from sweeps.results import STATUSES
from tests.procs import Lines, descendants

ROOT = Path(__file__).resolve().parents[1]
# The tiny demo set's recordings with the demo preset's features and the light CNNs at the demo recipe's
# widths: these tests exercise the sweep, not the models, and a gated epoch takes under a second on one core.
SWEEP_DATA = ["--preset", "demo", "--video_backbone", "light", "--audio_width", "8", "--video_width", "16"]


@pytest.fixture(scope="module")
def tiny_root(tiny_demo):
    return str(tiny_demo.root)


def _wandb_records(run_dir: Path, strict: bool = True) -> list[dict]:
    """W&B's own reader of an offline run folder (`wandb leet inspect --json`): one record per line.
    strict=False: a folder W&B cannot read (a run cut off as it started) gives no records."""
    res = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        assert not strict, f"wandb leet inspect {run_dir}: {res.stdout[-500:]}{res.stderr[-500:]}"
        return []
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


class _Tee(io.StringIO):
    """Keeps what is written and passes it on (the driver's output stays visible under `pytest -s`)."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def write(self, s):
        self.out.write(s)
        return super().write(s)


@pytest.fixture(scope="module")
def finished_sweep(tiny_root, tmp_path_factory):
    """One real 6-trial x 3-epoch gated sweep with W&B offline, run through the CLI's main(); its
    standard output is kept (a module fixture cannot use capsys)."""
    from sweeps.run import main

    storage = tmp_path_factory.mktemp("runs")
    argv = ["gated", "--data_root", tiny_root, *SWEEP_DATA, "--num-samples", "6", "--max-epochs", "3"]
    # One trial at a time: ASHA then sees results in a fixed order and the sweep is reproducible.
    argv += ["--max_concurrent", "1", "--storage-path", str(storage), "--name", "s", "--wandb"]
    argv += ["--checkpoint_every", "2"]  # epochs 2 and 3 (the last) checkpoint; epoch 1 only reports
    argv += ["--grace-period", "1"]  # rungs at epochs 1 and 2: a trial stopped after epoch 1 has no checkpoint
    # At 8 and 16 channels every trial still predicts one class after 3 epochs of 8 steps here, so all
    # tie and ASHA prunes none; at 32 their scores differ after the first epoch.
    argv += ["--audio_width", "32", "--video_width", "32"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.delenv("WANDB_API_KEY", raising=False)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(_Tee(sys.stdout)) as out:
            rc = main(argv)
        seconds = time.perf_counter() - t0
    return {"rc": rc, "dir": storage / "s", "seconds": seconds, "stdout": out.getvalue()}


def test_sweep_writes_one_row_per_trial_and_asha_prunes(finished_sweep):
    assert finished_sweep["rc"] == 0
    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    assert len(df) == 6 and df["trial_id"].is_unique
    assert set(df["status"]) <= set(STATUSES) and "error" not in set(df["status"])
    assert (df["method"] == "gated").all()
    # ASHA stopped some trials before max_t: fewer epochs than 6 trials x 3.
    assert (df["status"] == "pruned").any()
    assert df["epochs"].sum() < 6 * 3
    assert df.loc[df["status"] == "completed", "epochs"].eq(3).all()
    # --checkpoint_every 2: a trial pruned after epoch 1 never checkpointed; one that ran on did.
    assert df.loc[df["epochs"] == 1, "checkpoint"].isna().all()
    assert df.loc[df["epochs"] >= 2, "checkpoint"].notna().all()
    for path in df["checkpoint"].dropna():
        assert Path(path, "state.pt").is_file()
    # Scores are real Macro-F1 values, and the best epoch is one that ran.
    assert df[OBJECTIVE_COLUMN].between(0, 1).all()
    assert (df["best_epoch"] <= df["epochs"]).all()
    # The training guide's recipe was one of the trials, and every config differs.
    recipe = df[(df["config/lr"] == 1e-3) & (df["config/gate_bias"] == 0.3) & (df["config/freq_mask"] == 20)]
    assert len(recipe) == 1
    assert df["config"].is_unique
    for cfg in df["config"]:
        c = json.loads(cfg)
        assert c["fusion"] == "gated" and c["epochs"] == 3 and c["video_backbone"] == "light"
    meta = json.loads(
        __import__("pyarrow.parquet")
        .parquet.read_schema(finished_sweep["dir"] / "results.parquet")
        .metadata[b"emo.sweep"]
    )
    assert meta["sweep"]["methods"] == ["gated"] and meta["data"]["clips"] > 0
    assert (finished_sweep["dir"] / "sweep.json").exists()
    # Every epoch's result carries the metric names of emo.metric_names, which the column is named for.
    for path in df["path"]:
        epochs = [json.loads(line) for line in Path(path, "result.json").read_text().splitlines()]
        assert all(0 <= e[EPOCH_VAL_F1] <= e[OBJECTIVE] <= 1 for e in epochs)
        assert epochs[-1][OBJECTIVE] == df.loc[df["path"] == path, OBJECTIVE_COLUMN].item()


def test_sweep_logs_one_wandb_run_per_trial(finished_sweep):
    from sweeps.tracking import wandb_run_id

    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    for _, row in df.iterrows():
        runs = list(Path(row["path"]).glob("wandb/offline-run-*"))
        assert len(runs) == 1, f"trial {row['trial_id']}: W&B run folders {runs}"
        records = _wandb_records(runs[0])
        run = next(r["run"] for r in records if r["type"] == "run")
        assert run["run_id"] == wandb_run_id("s", row["trial_id"])
        assert run["run_group"] == "s" and "gated" in run["tags"]
        # Every epoch the trial ran is in the run's history, the last one included, step = epoch.
        history = [r["history"] for r in records if r["type"] == "history"]
        assert [h["step"]["num"] for h in history] == list(range(1, row["epochs"] + 1)), row["trial_id"]
        last = history[-1]["item"]
        assert last["val/f1"] == pytest.approx(row["val_f1"]) and last["epoch"] == row["epochs"]
        # The run was finished, not left open (an offline run that was not finished has no exit record).
        assert any(r["type"] == "exit" for r in records), row["trial_id"]


def test_the_sweeps_optuna_study_holds_every_trial_its_epochs_and_asha_prunes(finished_sweep):
    """optuna.journal beside sweep.json (sweeps.study) holds the method's study: one Optuna trial per Tune
    trial with its configuration, the objective of every epoch it ran as intermediate values (the last
    one too, which Tune hands over only at completion), PRUNED where ASHA stopped it; and the searcher
    Tune saved with the experiment reopens that study."""
    import optuna
    from optuna.trial import TrialState

    from sweeps import study
    from sweeps.search import PrunedAwareOptunaSearch

    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    journal = finished_sweep["dir"] / study.JOURNAL_FILE
    st = optuna.load_study(study_name="gated", storage=study.storage(journal))
    assert st.user_attrs[study.IDENTITY]["sweep"] == "s" and st.metric_names == [OBJECTIVE]
    assert len(st.trials) == len(df) == 6
    searched = [c[len("config/") :] for c in df.columns if c.startswith("config/")]
    for t in st.trials:
        [row] = [r for _, r in df.iterrows() if r["trial_id"] == t.user_attrs["trial_id"]]
        assert t.params == pytest.approx({k: row[f"config/{k}"] for k in searched})
        assert t.user_attrs["experiment"] == "gated"
        assert t.state == (TrialState.PRUNED if row["status"] == "pruned" else TrialState.COMPLETE), row["trial_id"]
        epochs = [json.loads(line) for line in Path(row["path"], "result.json").read_text().splitlines()]
        assert t.intermediate_values == {e["epoch"]: pytest.approx(e[OBJECTIVE]) for e in epochs}, row["trial_id"]
        assert max(t.intermediate_values) == row["epochs"]
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(row[OBJECTIVE_COLUMN])

    searcher = PrunedAwareOptunaSearch(max_epochs=3)
    searcher.restore_from_dir(str(finished_sweep["dir"] / "gated"))
    assert searcher._journal == str(journal)
    assert [t.state for t in searcher._ot_study.trials] == [t.state for t in st.trials]


def test_a_finished_sweep_grows_by_trials_proposed_from_its_study_and_reruns_nothing(finished_sweep, tmp_path):
    """`--resume --num-samples 8` on a copy of the finished 6-trial sweep (moved, so the restored
    searchers must find the copy's journal, not the original's): 2 more trials in a new Tune experiment
    (gated.grow1) whose searcher works on the same Optuna study; the 6 earlier trials are not run
    again and are all still in results.parquet, with the new ones, and in the study."""
    import shutil

    import optuna

    from sweeps import study
    from sweeps.run import main

    storage = tmp_path / "runs"
    shutil.copytree(finished_sweep["dir"], storage / "s")
    original_journal = (finished_sweep["dir"] / study.JOURNAL_FILE).read_bytes()
    before = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.delenv("WANDB_API_KEY", raising=False)
        with contextlib.redirect_stdout(_Tee(sys.stdout)) as out:
            rc = main(["--resume", "--name", "s", "--storage-path", str(storage), "--num-samples", "8"])
    printed = out.getvalue()
    assert rc == 0 and "growing sweep 's' from 6 to 8 trials per method" in printed
    df = pd.read_parquet(storage / "s" / "results.parquet")
    assert len(df) == 8 and df["trial_id"].is_unique
    old = df[df["trial_id"].isin(before["trial_id"])].set_index("trial_id")
    cols = ["status", "epochs", OBJECTIVE_COLUMN]
    pd.testing.assert_frame_equal(old[cols].sort_index(), before.set_index("trial_id")[cols].sort_index())
    for tid in before["trial_id"]:  # nothing earlier trained again
        assert not any(tid in line and " epoch " in line for line in printed.splitlines()), tid
    new = df[~df["trial_id"].isin(before["trial_id"])]
    assert len(new) == 2 and all(Path(p).parent == storage / "s" / "gated.grow1" for p in new["path"])
    assert (new["method"] == "gated").all() and new["config"].map(json.loads).map(lambda c: c["epochs"] == 3).all()
    spec = json.loads((storage / "s" / "sweep.json").read_text())
    assert spec["num_samples"] == 8 and spec["grown"] == [6] and set(spec["finished"]) == {"gated", "gated.grow1"}

    st = optuna.load_study(study_name="gated", storage=study.storage(storage / "s" / study.JOURNAL_FILE))
    assert sorted(t.user_attrs["trial_id"] for t in st.trials) == sorted(df["trial_id"])
    assert {t.user_attrs["experiment"] for t in st.trials if t.user_attrs["trial_id"] in set(new["trial_id"])} == {
        "gated.grow1"
    }
    assert all(t.state.is_finished() and t.intermediate_values for t in st.trials)
    assert (finished_sweep["dir"] / study.JOURNAL_FILE).read_bytes() == original_journal
    # One offline W&B run per trial in the README's sync glob, the new ones in the same group.
    synced = sorted((storage / "s").glob("*/*/wandb/offline-run-*"))
    assert len(synced) == 8, synced
    [folder] = [f for f in synced if f.parents[1] == Path(new["path"].iloc[0])]
    run = next(r["run"] for r in _wandb_records(folder) if r["type"] == "run")
    assert run["run_group"] == "s"


def test_leaderboard_is_printed(finished_sweep):
    """What the sweep printed at its end: the leaderboard, rank 1 being the best trial of
    results.parquet with its val Macro-F1 as the parquet has it, then where the results are."""
    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    out = finished_sweep["stdout"]
    assert out.count("gated: 6 trials (") == 1, out[-3000:]
    board = out[out.index("gated: 6 trials (") : out.index("\nresults: ")].splitlines()
    pruned = (df["status"] == "pruned").sum()
    assert f"{pruned} pruned" in board[0] and board[0].endswith(f"), {df['epochs'].sum()} epochs trained"), board[0]
    assert board[1].split()[:5] == ["rank", "trial", "val", "F1", "epochs"], board[1]
    rows = [line.split() for line in board[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"], board  # --top 5, the default
    best = df.sort_values("best_val_f1", ascending=False).iloc[0]
    assert rows[0][:5] == ["1", best["trial_id"], f"{best['best_val_f1']:.3f}", str(best["epochs"]), best["status"]]
    assert f"gate_bias={best['config/gate_bias']:.3g}" in board[2], board[2]
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert f"results: {finished_sweep['dir'] / 'results.parquet'}" in out


def test_the_driver_loads_the_data_without_importing_torch(tiny_root):
    """The driver never trains: importing torch and torchvision would add about 6 s to every sweep's
    start (measured on 2 cores). sweeps.run's main, up to starting Ray (flags, search space, loading
    the cached features), stays torch-free."""
    from emo.config import TrainConfig
    from emo.data import load_data

    flags = dict(data_root=tiny_root, preset="demo", video_backbone="light")
    load_data(TrainConfig(**flags), progress=False)  # the cache exists, as after any sweep (building it needs torch)
    argv = ["gated", *(f"--{k}={v}" for k, v in flags.items())]
    code = (
        "import sys\n"
        "import sweeps.run\n"
        "def stop(*args):\n"
        "    print(sorted(m for m in ('torch', 'torchvision', 'torchaudio') if m in sys.modules))\n"
        "    raise SystemExit(0)\n"
        "sweeps.cluster.start_ray = stop\n"
        f"sweeps.run.main({argv!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert " clips from " in out.stdout  # it loaded the data before Ray would start
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_search_reports_pruned_and_complete_trials_to_optuna():
    from optuna.trial import TrialState

    from search_spaces import get_space
    from sweeps.search import PrunedAwareOptunaSearch

    s = PrunedAwareOptunaSearch(space=get_space("video").params, metric="best/val_f1", mode="max", max_epochs=5)
    for i in range(3):
        assert s.suggest(f"t{i}") is not None
        for epoch in (1, 2):
            s.on_trial_result(f"t{i}", {"best/val_f1": 0.1 * epoch, "training_iteration": epoch, "epoch": epoch})
    s.on_trial_complete("t0", {"best/val_f1": 0.2, "epoch": 2, "stopped_early": False})  # ASHA stopped it
    s.on_trial_complete("t1", {"best/val_f1": 0.2, "epoch": 2, "stopped_early": True})  # fit's early stopping
    s.on_trial_result("t2", {"best/val_f1": 0.5, "training_iteration": 5, "epoch": 5})
    s.on_trial_complete("t2", {"best/val_f1": 0.5, "epoch": 5, "stopped_early": False})  # ran to max_t
    t0, t1, t2 = s._ot_study.trials
    assert t0.state == TrialState.PRUNED and t0.intermediate_values == {1: 0.1, 2: 0.2}
    assert t1.state == TrialState.COMPLETE and t1.value == 0.2
    assert t2.state == TrialState.COMPLETE and t2.value == 0.5


# ------------------------------------------------------------------ driver killed, then --resume


def _head():
    """A real Ray head of the test's own (stopped by it, never by `ray stop`). With token
    authentication (RAY_AUTH_MODE=token, set in conftest before ray is imported), as a cluster started
    with `ray start --head` has it; the driver joining with --address speaks it too."""
    from ray.cluster_utils import Cluster

    return Cluster(
        initialize_head=True,
        # One CPU: one trial at a time on the head; a test that adds a worker node gets a second slot.
        head_node_args={"num_cpus": 1, "object_store_memory": 300 * 2**20, "include_dashboard": False},
    )


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = _head()
    yield cluster
    cluster.shutdown()


def test_head_node_and_driver_killed_mid_sweep_resume_on_a_new_cluster_without_rerunning(tiny_root, tmp_path):
    """The driver runs on the head (`ray job submit`, README), so a preempted head takes both: every
    process of the head and the driver are SIGKILLed mid-trial, a new head starts, and `--resume`
    joins it and finishes the sweep from storage alone."""
    storage = tmp_path / "runs"
    lost = _head()
    argv = [sys.executable, "-m", "sweeps.run", "gated", "--data_root", tiny_root, *SWEEP_DATA]
    argv += ["--num-samples", "2", "--max-epochs", "3", "--max-concurrent", "1", "--grace-period", "3"]
    argv += ["--storage-path", str(storage), "--name", "k", "--address", lost.address, "--wandb"]
    argv += ["--gpus-per-trial", "0"]  # a joined cluster without a GPU needs it said (test_gpu_share...)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)  # each driver starts its own W&B service, as from a user's shell
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out = Lines(proc)
    try:
        # Kill it once one trial has finished and the next is one epoch in, with its W&B run open: the
        # driver's W&B thread opens a run asynchronously, so on a loaded machine the epoch line can come
        # first (the offline folder is made by wandb.init).
        out.wait_for(lambda ls: any("finished (1/2)" in x for x in ls), 300)
        n = len(out.lines)

        def second_trial_running(lines):
            opened = storage.glob("k/*/*/wandb/offline-run-*")
            return any(" epoch 1/3" in x for x in lines[n:]) and len(list(opened)) >= 2

        out.wait_for(second_trial_running, 120)
        os.killpg(proc.pid, signal.SIGKILL)
        lost.remove_node(lost.head_node, allow_graceful=False)  # SIGKILL: GCS, raylet, workers' node
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        lost.shutdown()
    done_before = [x.split("] ")[1].split()[0] for x in out.lines if "finished (" in x]
    assert not (storage / "k" / "results.parquet").exists()

    new = _head()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "sweeps.run", "--resume", "--name", "k", "--storage-path", str(storage)]
            + ["--address", new.address],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        new.shutdown()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "resuming" in res.stdout
    df = pd.read_parquet(storage / "k" / "results.parquet")
    assert len(df) == 2 and df["trial_id"].is_unique
    assert (df["status"] == "completed").all() and (df["epochs"] == 3).all()
    # The Optuna study (sweeps.study) was continued, not started over: the 2 trials complete with every
    # epoch; none left running (one asked before the kill and never run would end FAIL, marked lost).
    import optuna
    from optuna.trial import TrialState

    from sweeps import study

    trials = optuna.load_study(study_name="gated", storage=study.storage(storage / "k" / study.JOURNAL_FILE)).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and all(sorted(t.intermediate_values) == [1, 2, 3] for t in done), trials
    assert all(t.state == TrialState.FAIL and study.LOST in t.user_attrs for t in trials if t not in done), trials
    # A trial finished before the crash is not run again: the resumed driver printed no epoch of it.
    for tid in done_before:
        assert not any(tid in line and " epoch " in line for line in res.stdout.splitlines()), tid
    # No trial trained an epoch twice: each one's results are epochs 1..3 exactly once.
    for path in df["path"]:
        epochs = [json.loads(line)["epoch"] for line in Path(path, "result.json").read_text().splitlines()]
        assert epochs == [1, 2, 3], (path, epochs)
    # W&B: exactly one offline run per trial in the README's `wandb sync` glob, holding every epoch
    # once. `wandb sync` does not merge two folders of one run id (the later replaces the earlier
    # online: wandb/wandb#3841), so the resumed driver replays an interrupted trial's epochs up to its
    # checkpoint from result.json into the reopened run (same id) and moves the killed driver's
    # folder out of the glob, into TRIAL/wandb/superseded/.
    from sweeps.tracking import wandb_run_id

    synced = sorted(storage.glob("k/*/*/wandb/offline-run-*"))  # README: wandb sync runs/NAME/*/*/wandb/offline-run-*
    assert sorted(f.parents[1].name for f in synced) == sorted(f"gated_{t}" for t in df["trial_id"]), synced
    superseded = {}
    for _, row in df.iterrows():
        [folder] = [f for f in synced if f.parents[1] == Path(row["path"])]
        records = _wandb_records(folder)
        run = next(r["run"] for r in records if r["type"] == "run")
        assert run["run_id"] == wandb_run_id("k", row["trial_id"]), (row["trial_id"], run["run_id"])
        history = [r["history"] for r in records if r["type"] == "history"]
        assert [h["step"]["num"] for h in history] == [1, 2, 3], (row["trial_id"], history)
        assert [h["item"]["epoch"] for h in history] == [1, 2, 3]
        assert history[-1]["item"]["val/f1"] == pytest.approx(row["val_f1"])
        assert any(r["type"] == "exit" for r in records), row["trial_id"]
        superseded[row["trial_id"]] = list(Path(row["path"]).glob("wandb/superseded/offline-run-*"))
    # The killed driver had opened the run of the trial it was training, and only that one; the
    # resumed driver moved it aside and said so.
    [(tid, moved)] = [(t, f) for t, f in superseded.items() if f]
    assert tid not in done_before and len(moved) == 1, superseded
    said = [x for x in res.stdout.splitlines() if f"{tid} W&B run {wandb_run_id('k', tid)} continued offline" in x]
    assert len(said) == 1 and "1 earlier offline folder(s) moved to wandb/superseded/" in said[0], res.stdout[-3000:]
    # The resumed trial's first epoch carries its setup time: the epochs before it came from the
    # checkpoint the trial continued from, and those were replayed (none when it started over).
    path = df.loc[df["trial_id"] == tid, "path"].iloc[0]
    results = [json.loads(line) for line in Path(path, "result.json").read_text().splitlines()]
    continued_from = [r["epoch"] for r in results if r.get("time/setup_s") is not None][-1] - 1
    assert (f"epochs 1-{continued_from} replayed from result.json" in said[0]) == (continued_from > 0), said[0]


def test_worker_node_killed_mid_trial_retries_from_its_checkpoint(tiny_root, ray_cluster, tmp_path):
    """A second node joins the test's cluster; once a trial runs on each node, the worker node's raylet
    is killed by pid, with the worker processes it started (as a preempted VM would vanish: a raylet
    killed alone leaves its workers training for the ~30 s Ray takes to notice, long enough here to
    finish the trial). Its trial resumes from its last epoch checkpoint on the surviving head, the sweep
    completes and results.parquet has each trial once."""
    worker = ray_cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
    ray_cluster.wait_for_nodes()
    storage = tmp_path / "runs"
    argv = [sys.executable, "-m", "sweeps.run", "gated", "--data_root", tiny_root, *SWEEP_DATA]
    argv += ["--num-samples", "2", "--max-epochs", "3", "--scheduler", "fifo", "--max-concurrent", "2"]
    argv += ["--storage-path", str(storage), "--name", "n", "--address", ray_cluster.address, "--gpus-per-trial", "0"]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out = Lines(proc)
    try:
        # One CPU per node: two trials running means one on each. Both past epoch 1 = both checkpointed.
        def both_trained(lines):
            return len({x.split("] ")[1].split()[0] for x in lines if " epoch 1/3" in x}) == 2

        out.wait_for(both_trained, 300)
        raylet = worker.all_processes["raylet"][0].process.pid
        for pid in [raylet, *descendants(raylet)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        ray_cluster.remove_node(worker, allow_graceful=False)
    text = "".join(out.lines)
    assert proc.returncode == 0, text[-3000:]
    assert "worker lost: retrying from its epoch-" in text, text[-3000:]
    # The epoch named is the checkpoint's (every epoch checkpoints here: the last one printed), and
    # the retried trial goes on from the epoch after it, on the head: it was cut off mid-trial.
    i, line = next((i, x) for i, x in enumerate(out.lines) if "worker lost: retrying from its epoch-" in x)
    tid, k = line.split("] ")[1].split()[0], int(line.split("its epoch-")[1].split()[0])
    assert 1 <= k < 3, line

    def epochs(lines):
        mine = [x.split("] ")[-1] for x in lines if x.split("] ")[-1].startswith(f"{tid} epoch ")]
        return [int(x.split()[2].split("/")[0]) for x in mine]

    assert epochs(out.lines[:i])[-1] == k and epochs(out.lines[i + 1 :]) == list(range(k + 1, 4)), text[-3000:]
    df = pd.read_parquet(storage / "n" / "results.parquet")
    assert len(df) == 2 and df["trial_id"].is_unique, df
    assert (df["status"] == "completed").all() and (df["epochs"] == 3).all(), df[["trial_id", "status", "epochs"]]
    # The trial that lost its node: an error file from the lost worker, and epochs 1..3 each once,
    # i.e. it went on from its checkpoint and did not start again from zero.
    lost = [p for p in df["path"] if list(Path(p).glob("error*"))]
    assert len(lost) == 1, df["path"].tolist()
    for path in df["path"]:
        epochs = [json.loads(line)["epoch"] for line in Path(path, "result.json").read_text().splitlines()]
        assert epochs == [1, 2, 3], (path, epochs)


# ------------------------------------------------------------------ search spaces and CLI errors


@pytest.mark.parametrize("method", ["audio", "video", "late", "concat", "gated", "xattn"])
def test_every_search_space_validates_and_starts_from_the_guide_recipe(method):
    from search_spaces import get_space
    from search_spaces.common import validate

    sp = get_space(method)
    validate(sp, samples=64, seed=1)
    assert sp.recipe["lr"] == 1e-3 and sp.recipe["dropout"] == 0.3 and sp.recipe["weight_decay"] == 1e-4
    assert {"lr", "dropout", "weight_decay"} <= set(sp.params)
    # SpecAugment only where there is audio, modality dropout only where there are two streams.
    assert ("freq_mask" in sp.params) == (method != "video")
    assert ("modality_dropout" in sp.params) == (method in ("late", "concat", "gated", "xattn"))
    assert ("gate_bias" in sp.params) == (method == "gated")
    if method == "gated":
        assert sp.recipe["gate_bias"] == 0.3
    # The ranges, as Optuna gets them from Ray's domains (OptunaSearch's own conversion): inclusive
    # bounds, log scale where there is one.
    from optuna.distributions import FloatDistribution, IntDistribution
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Float

    dists = OptunaSearch.convert_search_space(sp.params)
    lr = sp.params["lr"]
    assert isinstance(lr.get_sampler(), Float._LogUniform), lr.get_sampler()
    assert dists["lr"] == FloatDistribution(lr.lower, lr.upper, log=True)
    assert lr.lower <= 3e-4 and 1e-3 <= lr.upper  # the guide's 1e-3, and its 3e-4 / 5e-4 to try
    if method != "video":  # SpecAugment: 0..20 mel bins, 0..40 frames (randint's upper bound is exclusive)
        assert (sp.params["freq_mask"].lower, sp.params["freq_mask"].upper) == (0, 21)
        assert (sp.params["time_mask"].lower, sp.params["time_mask"].upper) == (0, 41)
        assert dists["freq_mask"] == IntDistribution(0, 20) and dists["time_mask"] == IntDistribution(0, 40)
    if method == "gated":  # the gate's starting weight on audio: from video-leaning to even, 0.3 inside
        gate = sp.params["gate_bias"]
        assert 0 < gate.lower < 0.3 < gate.upper <= 0.5, (gate.lower, gate.upper)
        assert dists["gate_bias"] == FloatDistribution(gate.lower, gate.upper)
    cfg = sp.config(sp.recipe)
    assert cfg.fusion == method
    # A value pinned on the command line leaves the search and reaches every trial.
    pinned = sp.pin({"lr": 5e-4})
    assert "lr" not in pinned.params and pinned.param_space()["lr"] == 5e-4


def test_optuna_search_is_seeded(tmp_path):
    """Two searchers built as sweeps.run builds them, with the same seed, propose the same trials
    after the guide's recipe (also with results coming back, so TPE is modelling, not only sampling
    its start-up trials); another seed proposes others."""
    from emo.metric_names import OBJECTIVE
    from search_spaces import get_space
    from sweeps.spec import SweepSpec
    from sweeps.tuner import searcher

    sp = get_space("gated")
    sweep = SweepSpec(name="s", methods=("gated",), fixed={}, num_samples=8, max_epochs=6, search="tpe")

    def proposals(seed: int, n: int = 6) -> list[dict]:
        # each searcher its own journal: one that finds earlier trials in its study learns from them
        s = searcher(sweep.replace(storage=str(tmp_path / f"{len(list(tmp_path.iterdir()))}")), "gated", sp, seed)
        s.set_search_properties(None, None, {**sp.param_space(), "epochs": 6})  # what Tune does
        out = []
        for i in range(n):
            out.append(s.suggest(f"t{i}"))
            score = 1 - abs(math.log10(out[-1]["lr"]) + 3) - out[-1]["dropout"]  # any fixed function
            s.on_trial_complete(f"t{i}", {OBJECTIVE: score, "epoch": 6})
        return out

    a, b, c = proposals(0), proposals(0), proposals(1)
    assert a[0] == b[0] == c[0] and a[0]["lr"] == 1e-3 and a[0]["gate_bias"] == 0.3  # the recipe first
    assert a[1:] == b[1:]
    assert all(x != y for x, y in zip(a[1:], c[1:], strict=True)), (a, c)


def test_a_search_space_with_an_unknown_key_or_bad_range_is_rejected():
    from ray import tune

    from search_spaces.common import OPTIMISER, SearchSpaceError, space, validate

    with pytest.raises(SearchSpaceError, match="not TrainConfig fields: learning_rate"):
        validate(space("gated", OPTIMISER, {"learning_rate": tune.loguniform(1e-4, 1e-2)}))
    # A range that leaves out the guide's recipe (gate at 0.3) is a mistake too.
    with pytest.raises(SearchSpaceError, match="gate_bias=0.3 is outside"):
        validate(space("gated", {"gate_bias": tune.uniform(0.5, 0.9)}))
    # Values TrainConfig refuses (a negative dropout) are caught by sampling, before any trial runs.
    with pytest.raises(SearchSpaceError, match="invalid config"):
        validate(space("gated", {"dropout": tune.uniform(-1.0, 0.5)}))
    with pytest.raises(SearchSpaceError, match="choose from: audio, video, late, concat, gated, xattn, or all"):
        __import__("search_spaces").get_space("gatd")


def test_an_edited_search_space_with_an_unknown_key_stops_the_cli_in_one_line(monkeypatch, capsys):
    """A user's typo in search_spaces/gated.py: the driver refuses before Ray starts, in one line."""
    from ray import tune

    import search_spaces.gated
    from search_spaces.common import space
    from sweeps.run import main

    monkeypatch.setattr(search_spaces.gated, "SPACE", space("gated", {"learning_rate": tune.loguniform(1e-4, 1e-2)}))
    with pytest.raises(SystemExit) as e:
        main(["gated", "--num-samples", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not TrainConfig fields: learning_rate" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


def _cli(*argv: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweeps.run", *argv], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gatd"], "unknown method 'gatd'; choose from: audio, video, late, concat, gated, xattn, or all"),
        (["gated", "--num-samplez", "3"], "unrecognized arguments: --num-samplez"),
        (["gated", "--fusion_lr", "1"], "unrecognized arguments: --fusion_lr"),
        (["gated", "--num_classes", "5"], "argument --num_classes/--num-classes: invalid choice: 5"),
        (["gated", "--max-epochs", "2", "--grace-period", "3"], "--grace-period (3) is longer than --max-epochs"),
        (["gated", "--num_samples", "0"], "--num-samples must be >= 1, got 0"),
        (["gated", "--lr", "-1"], "error: lr must be > 0, got -1.0"),
        (["gated", "--max-failures", "-2"], "error: --max-failures must be >= 0 (or -1: retry forever), got -2"),
        ([], "name a method to sweep"),
        (["gated", "--address", "ray://head:10001"], "(Ray Client) is not supported; run the driver on the cluster"),
        # A name is one folder under --storage-path: nothing that would write outside it.
        (["gated", "--name", "../x"], "--name '../x': a sweep's name is one folder under --storage-path"),
        (["gated", "--name", "/tmp/x"], "--name '/tmp/x': a sweep's name is one folder"),
        (["--resume", "--name", ".."], "--name '..': a sweep's name is one folder"),
        (["gated", "--name", "a/b"], "--name 'a/b': a sweep's name is one folder"),
        (["gated", "--name", "my sweep"], "--name 'my sweep': a sweep's name is one folder"),
        (["gated", "--objectives", "f1,flop"], "--objectives 'f1,flop': unknown flop; choose from f1, params, flops"),
        (["gated", "--objectives", "params"], "f1 must be one of them (ASHA prunes on validation Macro-F1)"),
        (["gated", "--search", "nsga2"], "--search nsga2 is a multi-objective sampler: add a cost"),
    ],
)
def test_cli_mistakes_are_one_line_errors(argv, message, capsys):
    from sweeps.run import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


def test_a_dashboard_off_loopback_is_refused_without_token_auth_and_warned_once_with_it(monkeypatch, capsys):
    """A Ray dashboard runs code for whoever reaches it. Off loopback with token authentication off:
    one error line, before Ray starts. With it on (Ray's default for a local start): one warning.
    RAY_AUTH_MODE=disabled on loopback is warned about too: it is only for joining such a cluster."""
    from sweeps.run import main, resolve

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(SystemExit) as e:
        main(["gated", "--dashboard-host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --dashboard-host 0.0.0.0 with token authentication off (RAY_AUTH_MODE=disabled)")
    resolve(["gated"])
    assert capsys.readouterr().err.startswith("warning: RAY_AUTH_MODE=disabled: the Ray started here has no auth")
    resolve(["gated", "--dashboard-host", "0.0.0.0", "--address", "10.0.0.1:6379"])  # joins: starts no dashboard
    assert capsys.readouterr().err == ""

    monkeypatch.delenv("RAY_AUTH_MODE")
    for host in ("0.0.0.0", "::", "10.1.2.3", "head.example.org"):
        resolve(["gated", "--dashboard-host", host])
        err = capsys.readouterr().err
        assert err.count("warning:") == 1 and f"listens on {host}, reachable from other machines" in err, err
    for host in ("127.0.0.1", "127.0.1.1", "::1", "localhost"):
        resolve(["gated", "--dashboard-host", host])
        assert capsys.readouterr().err == "", host


def test_cli_errors_print_one_line_and_no_traceback(tmp_path, capsys):
    """Through `main` in this process: the entry point itself runs in the tests that kill a sweep."""
    from sweeps.run import main

    cases = {
        ("gatd",): "unknown method 'gatd'",
        ("gated", "--num-samplez", "3"): "unrecognized arguments: --num-samplez",
        ("gated", "--data_root", str(tmp_path / "nowhere")): "nowhere",
        ("--resume", "--storage-path", str(tmp_path / "empty")): "--resume: no sweep found in",
        ("--resume", "--name", "x", "--storage-path", str(tmp_path)): "holds no sweep",
    }
    for argv, message in cases.items():
        with pytest.raises(SystemExit) as exit_:
            main(list(argv))
        out, err = capsys.readouterr()
        assert exit_.value.code == 2, (argv, out, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err + out, (argv, err)
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err


def test_resume_refuses_a_sweep_json_whose_name_leaves_the_storage_folder(tmp_path, capsys):
    """sweep.json names the folders a restored sweep writes to: an edited one cannot point outside."""
    from sweeps.run import main

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text(
        json.dumps({"name": "../elsewhere", "methods": ["gated"], "fixed": {}, "num_samples": 1, "max_epochs": 1})
    )
    with pytest.raises(SystemExit) as e:
        main(["--resume", "--name", "s", "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith("error: the name in sweep.json '../elsewhere': a sweep's name is one folder"), err


def test_resume_refuses_flags_that_would_change_the_sweep(tmp_path):
    from sweeps.spec import SweepSpec
    from sweeps.store import write_sweep

    write_sweep(str(tmp_path), SweepSpec(name="old", methods=("gated",), fixed={}, num_samples=1, max_epochs=1))
    res = _cli("--resume", "--name", "old", "--storage-path", str(tmp_path), "--max-epochs", "9", "--lr", "1e-4",
               "--n_mels", "48")  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "error: --resume continues sweep 'old' with its own settings; drop --lr, --n-mels, --max-epochs"
    )


def test_resume_continues_where_sweep_json_is_and_refuses_max_failures(tmp_path, capsys):
    """A sweep folder moved elsewhere: --resume continues it where its sweep.json was found, not at
    the absolute path saved in it (Tune's restore takes the folder it is given: tests/test_tune_state.py).
    --max-failures is refused: the restored experiment keeps the FailureConfig it started with."""
    from sweeps.run import resolve
    from sweeps.spec import SweepSpec
    from sweeps.store import write_sweep

    old = tmp_path / "old"
    saved = SweepSpec(name="s", methods=("gated",), fixed={}, num_samples=2, max_epochs=3, storage=str(old))
    write_sweep(str(old), saved)
    (tmp_path / "old").rename(tmp_path / "new")
    sweep = resolve(["--resume", "--name", "s", "--storage-path", str(tmp_path / "new")])["sweep"]
    assert sweep.storage == str(tmp_path / "new")
    assert (
        capsys.readouterr().out.strip()
        == f"note: sweep 's' was written under {old}; continuing it in {tmp_path / 'new'}"
    )
    with pytest.raises(SystemExit) as e:
        resolve(["--resume", "--name", "s", "--storage-path", str(tmp_path / "new"), "--max-failures", "5"])
    assert e.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --resume continues sweep 's' with its own settings; drop --max-failures"
    )
    # A new sweep records its absolute folder and its retry limit (--resume uses it for a method
    # that had not started).
    fresh = resolve(["gated", "--storage-path", "rel/runs", "--max-failures", "1"])["sweep"]
    assert fresh.storage == str(Path("rel/runs").resolve()) and fresh.max_failures == 1
    assert resolve(["gated"])["sweep"].max_failures == 3


def test_gpu_share_on_a_joined_cluster_without_a_gpu_is_an_error():
    """An autoscaling cluster starts with no GPU worker: joined with no --gpus-per-trial, the driver
    refuses rather than run every trial on the head's CPUs; Ray started here keeps CPUs by default."""
    from sweeps.cluster import gpu_share, joins_cluster

    assert gpu_share(None, 0, joined=False) == 0.0  # a CPU machine: no flag needed
    assert gpu_share(None, 2, joined=False) == 1.0 and gpu_share(None, 4, joined=True) == 1.0
    assert gpu_share(0.25, 0, joined=True) == 0.25 and gpu_share(0, 0, joined=True) == 0.0
    with pytest.raises(ValueError) as e:
        gpu_share(None, 0, joined=True)
    assert str(e.value) == (
        "the cluster has no GPU now (0); pass --gpus-per-trial N to wait for GPU workers (autoscaling), "
        "or --gpus-per-trial 0 to train on CPUs"
    )
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAY_ADDRESS", raising=False)
        assert not joins_cluster(None) and joins_cluster("auto")
        env.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")  # as `ray job submit` sets it for the driver
        assert joins_cluster(None)


def test_concurrency_is_what_both_gpus_and_cpus_of_the_cluster_hold():
    from sweeps.cluster import trials_that_fit

    box = {"CPU": 16.0, "GPU": 8.0}
    assert trials_that_fit(box, 0.25, 1, 64) == 16  # 32 GPU shares, but 16 CPUs
    assert trials_that_fit(box, 1, 1, 64) == 8
    assert trials_that_fit(box, 0.25, 0.5, 64) == 32
    assert trials_that_fit(box, 0.25, 1, 6) == 6  # never more than the trials
    assert trials_that_fit({"CPU": 2.0}, 0, 1, 8) == 2  # this CPU machine
    assert trials_that_fit({"CPU": 2.0}, 1, 1, 8) == 1  # a GPU share and no GPU yet: one, to start


def test_the_retry_line_names_the_checkpoints_epoch_not_the_last_one(tmp_path):
    """With --checkpoint_every 2 a trial that reported epoch 3 holds the epoch-2 checkpoint: the
    worker-lost line (and the W&B replay) must say 2. A real Tune Trial with its checkpoint manager."""
    from ray.train._internal.checkpoint_manager import _TrainingResult
    from ray.train._internal.storage import StorageContext
    from ray.tune import Checkpoint
    from ray.tune.experiment import Trial

    from sweeps.trainable import checkpoint_epoch

    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="gated", trial_dir_name="gated_t")
    trial = Trial("train_trial", stub=True, storage=storage, trial_id="t", max_failures=3)
    assert checkpoint_epoch(trial) == 0  # none yet: the retry starts over
    (tmp_path / "ckpt").mkdir()
    trial.on_checkpoint(_TrainingResult(Checkpoint.from_directory(str(tmp_path / "ckpt")), {"epoch": 2}))
    trial.run_metadata.last_result = {"epoch": 3}
    assert trial.last_result["epoch"] == 3 and checkpoint_epoch(trial) == 2


def test_diverging_trials_end_as_diverged_without_retries(tiny_root, tmp_path, capsys):
    """lr 1e6 makes the loss NaN or inf in the first epoch: each trial ends once, as `diverged` with the
    reason, is never retried (max_failures would rerun it from its checkpoint), Optuna is told it was
    pruned, and the sweep runs its next trial and ends normally."""
    from optuna.trial import TrialState

    from sweeps.run import main
    from sweeps.search import PrunedAwareOptunaSearch

    argv = ["audio", "--data_root", tiny_root, *SWEEP_DATA, "--lr", "1e6", "--num-samples", "2", "--max-epochs", "2"]
    argv += ["--max_concurrent", "1", "--max-failures", "2", "--storage-path", str(tmp_path), "--name", "nan"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    df = pd.read_parquet(tmp_path / "nan" / "results.parquet")
    assert len(df) == 2 and (df["status"] == "diverged").all(), df[["status", "error"]]
    # which of the two depends on the batch that blows up first (the class-weighted loss can reach inf)
    assert df["error"].str.fullmatch(r"diverged: training loss is (nan|inf|-inf) \(lr 1000000.0 .*").all(), df["error"]
    assert len(re.findall(r"diverged \(training loss is (?:nan|inf|-inf)", out)) == 2, out
    for path in df["path"]:  # Tune writes error.txt for a trial that errored (and was retried)
        assert not list(Path(path).glob("error*")), path
    searcher = PrunedAwareOptunaSearch(max_epochs=2)
    searcher.restore_from_dir(str(tmp_path / "nan" / "audio"))
    assert [t.state for t in searcher._ot_study.trials] == [TrialState.PRUNED] * 2


def test_sweep_on_good_and_bad_files_completes_and_lists_every_skip(tmp_path, capsys):
    """A folder of good recordings (3 actors) plus every bad case the data layer knows (actor 24):
    the sweep completes, and both its output and results.parquet's metadata list each skipped file
    with its reason."""
    import pyarrow.parquet as pq

    from emo.data.synth import generate
    from sweeps.run import main
    from tests.test_data_bad_input import write_messy

    root = generate(tmp_path / "mixed", actors=3, modalities=(3,), workers=2, progress=False)
    skips = {**write_messy(root, actor=24), "synth.json": "not a media file"}  # the generator's own record
    argv = ["audio", "--data_root", str(root), "--preset", "demo", "--num-samples", "2", "--max-epochs", "1"]
    assert main([*argv, "--storage-path", str(tmp_path / "runs"), "--name", "bad"]) == 0
    out = capsys.readouterr().out
    df = pd.read_parquet(tmp_path / "runs" / "bad" / "results.parquet")
    assert len(df) == 2 and (df["status"] == "completed").all()
    meta = json.loads(pq.read_schema(tmp_path / "runs" / "bad" / "results.parquet").metadata[b"emo.sweep"])
    stored = {s["path"]: s["reason"] for s in meta["data"]["skipped"]}
    assert set(stored) == set(skips)
    for path, reason in skips.items():
        assert reason in stored[path], (path, stored[path])
        assert f"skipped {path}: {stored[path]}" in out
    assert f"{len(skips)} files skipped" in out


def test_feature_flags_reach_the_sweep_spec_and_set_the_trials_features(tiny_root, tmp_path):
    """sweeps.run takes every FeatureConfig flag: the spec's fixed settings carry them (sweep.json, every
    trial's config, W&B), the trials' features are the preset's with them over it (what load_data
    prepares), and a report refuses to mix two sweeps' features."""
    from emo.config import TrainConfig, feature_preset
    from sweeps import store
    from sweeps.report.selection import same_data
    from sweeps.run import resolve

    argv = ["audio", "--data_root", tiny_root, "--preset", "demo", "--storage-path", str(tmp_path), "--name", "f"]
    sweep = resolve([*argv, "--n_mels", "24", "--face_detector", "haar"])["sweep"]
    assert sweep.fixed["features"] == {"n_mels": 24, "face_detector": "haar"}
    cfg = TrainConfig(**sweep.trial_fixed)
    assert cfg.feature_config() == feature_preset("demo").replace(n_mels=24, face_detector="haar")
    store.write_sweep(str(tmp_path), sweep)
    assert store.read_sweep(str(tmp_path / "f")) == sweep
    assert "features" not in resolve(argv)["sweep"].fixed
    with pytest.raises(SystemExit):
        same_data([{"sweep": sweep, "dir": "a"}, {"sweep": resolve(argv)["sweep"], "dir": "b"}])


def test_sweep_spec_round_trips_through_sweep_json_with_the_demo_or_real_data_defaults(tmp_path):
    """One typed spec, one writer and one reader of sweep.json; the demo-set and real-data defaults
    come from the spec alone; a sweep.json this code did not write is one clear error."""
    from emo.config import DEMO_TRAIN
    from sweeps import store
    from sweeps.spec import DATA_BUDGET, DEMO_BUDGET, SpecError, SweepSpec

    none = dict.fromkeys(("num_samples", "max_epochs", "grace_period", "max_failures"))
    demo = SweepSpec.from_flags(["gated", "audio"], {"lr": 3e-4}, none, "d", str(tmp_path))
    assert (demo.num_samples, demo.max_epochs) == (DEMO_BUDGET["num_samples"], DEMO_BUDGET["max_epochs"])
    assert demo.fixed == {**{k: v for k, v in DEMO_TRAIN.items() if k != "epochs"}, "lr": 3e-4}
    assert demo.trial_fixed["epochs"] == demo.max_epochs and "epochs" not in demo.fixed
    real = SweepSpec.from_flags(["gated"], {"data_root": "/data"}, {**none, "max_epochs": 1}, None, str(tmp_path))
    assert real.fixed == {"data_root": "/data"} and real.num_samples == DATA_BUDGET["num_samples"]
    assert real.grace_period == 1 and real.name.startswith("gated-")  # ASHA's first rung is the last epoch
    with pytest.raises(SpecError, match=r"^--grace-period \(5\) is longer than --max-epochs \(3\)$"):
        SweepSpec.from_flags(["gated"], {}, {**none, "max_epochs": 3, "grace_period": 5}, None, str(tmp_path))

    done = demo.replace(finished=("gated",), concurrent=2, resources={"cpu": 1.0, "gpu": 0.0})
    store.write_sweep(str(tmp_path), done)
    on_disk = json.loads((tmp_path / "d" / "sweep.json").read_text())
    assert on_disk["methods"] == ["gated", "audio"] and on_disk["max_epochs"] == DEMO_BUDGET["max_epochs"]
    assert store.read_sweep(str(tmp_path / "d")) == done
    # An older sweep.json, written before max_failures was recorded, reads with the default.
    old = {k: v for k, v in on_disk.items() if k != "max_failures"}
    assert SweepSpec.from_json(old).max_failures == 3
    for bad, why in (({**on_disk, "epochs": 3}, "unknown setting(s) epochs"), (old | {"fixed": []}, "'fixed'")):
        (tmp_path / "d" / "sweep.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=re.escape(why)):
            store.read_sweep(str(tmp_path / "d"))
    (tmp_path / "d" / "sweep.json").write_text(json.dumps({"name": "d", "methods": ["gated"]}))
    with pytest.raises(ValueError, match="missing fixed, num_samples, max_epochs"):
        store.read_sweep(str(tmp_path / "d"))
    with pytest.raises(store.NotASweep):
        store.read_sweep(str(tmp_path / "nothing"))
    # A multi-objective sweep searches the size keys not given; grown, its stages are the first run's
    # trials and the added ones; both round trip.
    mo = SweepSpec.from_flags(["gated"], {"audio_width": 16}, {**none, "objectives": "latency,f1"}, "m", str(tmp_path))
    assert mo.objectives == ("f1", "latency") and mo.costs == ("latency",) and mo.size == ("embed_dim", "video_width")
    grown = mo.grow(20).grow(24)
    assert grown.grown == (8, 20) and grown.stage_sizes == [8, 12, 4] and grown.grow(24) == grown
    store.write_sweep(str(tmp_path), grown)
    assert store.read_sweep(str(tmp_path / "m")) == grown


def test_a_trial_lost_from_tunes_saved_state_leaves_the_wandb_sync_glob(tmp_path):
    """A driver killed after starting a trial but before Tune saved that: the resumed run proposes
    another in its place, and the lost trial's offline W&B run must not be synced as a sweep trial."""
    from sweeps.tracking import SUPERSEDED, supersede_lost_trials, wandb_run_id

    for tid in ("aaaa0001", "bbbb0002"):
        folder = f"offline-run-20261207_172710-{wandb_run_id('k', tid)}"
        run = tmp_path / "k" / "gated" / f"gated_{tid}" / "wandb" / folder
        run.mkdir(parents=True)
        (run / "run.wandb").write_bytes(b"x")
    assert supersede_lost_trials(str(tmp_path), "k", "gated", kept={"aaaa0001"}) == ["bbbb0002"]
    synced = sorted(p.parents[1].name for p in tmp_path.glob("k/*/*/wandb/offline-run-*"))
    assert synced == ["gated_aaaa0001"]
    moved = tmp_path / "k" / "gated" / "gated_bbbb0002" / "wandb" / SUPERSEDED
    assert [p.name for p in moved.iterdir()] == [f"offline-run-20261207_172710-{wandb_run_id('k', 'bbbb0002')}"]
    assert supersede_lost_trials(str(tmp_path), "k", "gated", kept={"aaaa0001"}) == []  # nothing left to move


def test_a_journal_from_another_sweep_is_refused_in_one_line(tmp_path, capsys):
    """optuna.journal copied into a sweep folder from another sweep: the driver stops before Ray, one
    line naming both sweeps, and the journal is left as it was."""
    import optuna

    from sweeps import study
    from sweeps.run import main
    from sweeps.spec import SweepSpec
    from sweeps.store import write_sweep

    spec = SweepSpec(name="b", methods=("gated",), fixed={}, num_samples=1, max_epochs=1, created="2026-12-07T10:00")
    write_sweep(str(tmp_path), spec)
    other = optuna.create_study(study_name="gated", storage=study.storage(tmp_path / "b" / study.JOURNAL_FILE))
    other.set_user_attr(study.IDENTITY, {"sweep": "a", "created": "2026-12-06T09:00"})
    before = (tmp_path / "b" / study.JOURNAL_FILE).read_bytes()
    capsys.readouterr()  # Optuna's own log line about creating the study above
    with pytest.raises(SystemExit) as e:
        main(["--resume", "--name", "b", "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds study 'gated' of sweep 'a'" in err and "not of sweep 'b'" in err, err
    assert (tmp_path / "b" / study.JOURNAL_FILE).read_bytes() == before
    # A new sweep started under that name (not --resume): refused the same way, before any data loads.
    with pytest.raises(SystemExit) as e:
        main(["gated", "--name", "b", "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "the folder holds another sweep of that name" in err, err
    assert (tmp_path / "b" / study.JOURNAL_FILE).read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["s", "--host", "0.0.0.0"], "--host 0.0.0.0: optuna-dashboard has no authentication"),
        (["nope"], "holds no sweep"),
        (["s"], "has no Optuna study"),
        (["s", "--port", "70000"], "not a port number"),
    ],
)
def test_dashboard_cli_mistakes_are_one_line_errors(tmp_path, capsys, argv, message):
    from sweeps.dashboard import main
    from sweeps.spec import SweepSpec
    from sweeps.store import write_sweep

    write_sweep(str(tmp_path), SweepSpec(name="s", methods=("gated",), fixed={}, num_samples=1, max_epochs=1))
    with pytest.raises(SystemExit) as e:
        main([*argv, "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and message in err, err


def test_with_remote_storage_the_journal_is_a_local_copy_uploaded_and_fetched_back(tmp_path, monkeypatch):
    """s3:// storage, here a file:// URI through the same pyarrow code: the driver writes a local journal
    under ~/.cache, uploads it whole, and a new head node (no local copy) fetches it before going on."""
    import optuna

    from sweeps import study
    from sweeps.spec import SweepSpec

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = SweepSpec(name="r", methods=("gated",), fixed={}, num_samples=1, max_epochs=1, created="t0")
    spec = spec.replace(storage=f"file://{tmp_path / 'bucket'}")
    local = study.open_for(spec)
    assert local.startswith(str(tmp_path / "home" / ".cache" / "emo-sweeps" / "studies"))
    s = optuna.create_study(study_name="gated", storage=study.storage(local))
    s.set_user_attr(study.IDENTITY, study.identity(spec))
    s.enqueue_trial({"x": 1.0})
    study.upload(spec)
    stored = tmp_path / "bucket" / "r" / study.JOURNAL_FILE
    assert stored.read_bytes() == Path(local).read_bytes()

    Path(local).unlink()  # the new head node
    assert study.open_for(spec) == local and Path(local).read_bytes() == stored.read_bytes()
    assert len(optuna.load_study(study_name="gated", storage=study.storage(local)).trials) == 1
    # Another sweep's start time under the same name: refused, not merged.
    with pytest.raises(study.StudyError, match="another sweep of that name, or the journal was copied"):
        study.open_for(spec.replace(created="t1"))


def test_a_growths_searcher_learns_from_the_earlier_trials_in_the_study(tmp_path):
    """The searcher of a growth (stage 1) on the journal of 12 finished trials proposes learning rates
    near the earlier best, without the recipe again; the same searcher on an empty study (a new sweep,
    the same seed) does not: proposals follow the study's history, not the seed."""
    from emo.metric_names import OBJECTIVE
    from search_spaces import get_space
    from sweeps import study
    from sweeps.spec import SweepSpec
    from sweeps.tuner import searcher

    sp = get_space("gated")
    space = {**sp.param_space(), "epochs": 6}
    peak = -3.4  # log10 of the learning rate that scores best; the recipe's 1e-3 is 0.4 away

    def run(sweep, stage, n, tell=True):
        study.open_for(sweep)
        s = searcher(sweep, "gated", sp, 0, stage)
        s.set_search_properties(None, None, space)  # what Tune does
        out = []
        for i in range(n):
            out.append(s.suggest(f"{stage}-{i}"))
            s.on_trial_complete(f"{stage}-{i}", {OBJECTIVE: -((math.log10(out[-1]["lr"]) - peak) ** 2), "epoch": 6})
        return out

    grown = SweepSpec(name="g", methods=("gated",), fixed={}, num_samples=12, max_epochs=6, storage=str(tmp_path))
    first = run(grown, 0, 12)
    grown = grown.grow(18)
    added = run(grown, 1, 6)
    fresh = run(grown.replace(name="fresh"), 1, 6)  # same seed and stage, no history

    def distance(props):
        return sum(abs(math.log10(p["lr"]) - peak) for p in props) / len(props)

    assert first[0]["lr"] == 1e-3 and all(p["lr"] != 1e-3 or p["gate_bias"] != 0.3 for p in added)
    # 0.18 against 0.42 (random draws over a range 1.5 decades wide average about 0.4)
    assert distance(added) < 0.25 < distance(fresh), (distance(added), distance(fresh))
    import optuna

    trials = optuna.load_study(study_name="gated", storage=study.storage(tmp_path / "g" / study.JOURNAL_FILE)).trials
    assert len(trials) == 18 and all(t.state.is_finished() for t in trials)


def test_growing_refuses_shrinking_another_search_space_or_a_sweep_without_a_study(tmp_path, capsys):
    import optuna

    from sweeps import study
    from sweeps.run import main
    from sweeps.spec import SweepSpec
    from sweeps.store import write_sweep

    spec = SweepSpec(name="b", methods=("gated",), fixed={}, num_samples=4, max_epochs=1, created="c")

    def error(*argv):
        with pytest.raises(SystemExit) as e:
            main(["--resume", "--name", "b", "--storage-path", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
        return err

    write_sweep(str(tmp_path), spec)
    assert "has 4 trials per method already; a sweep grows, it does not shrink" in error("--num-samples", "3")
    assert "has no Optuna study (optuna.journal)" in error("--num-samples", "8")
    st = optuna.create_study(study_name="gated", storage=study.storage(tmp_path / "b" / study.JOURNAL_FILE))
    space = {"lr": {"name": "FloatDistribution", "attributes": {"step": None, "low": 1e-5, "high": 0.1, "log": True}}}
    st.set_user_attr(study.IDENTITY, {**study.identity(spec), "space": space})
    capsys.readouterr()  # Optuna's own log line about creating the study above
    err = error("--num-samples", "8")
    assert "searched gated over another space than search_spaces/ gives now (" in err and "lr: " in err, err
    assert "dropout: not searched then" in err, err
    assert json.loads((tmp_path / "b" / "sweep.json").read_text())["num_samples"] == 4  # nothing written


def test_restoring_a_sweeps_first_run_leaves_a_growths_running_trials_to_it(tmp_path):
    """After a crash during a growth, --resume restores the first run's experiment (finished) before the
    growth's: the first searcher, restored from its saved state, must not end the growth's running
    trial as lost; the growth's searcher, restored next, finishes it. A trial of the first run asked
    after its last save is lost (FAIL) on restore."""
    import optuna
    from optuna.trial import TrialState

    from emo.metric_names import OBJECTIVE
    from search_spaces import get_space
    from sweeps import study
    from sweeps.search import PrunedAwareOptunaSearch
    from sweeps.spec import SweepSpec
    from sweeps.tuner import searcher

    sp = get_space("gated")
    space = {**sp.param_space(), "epochs": 2}
    spec = SweepSpec(name="g", methods=("gated",), fixed={}, num_samples=2, max_epochs=2, storage=str(tmp_path))
    study.open_for(spec)
    first = searcher(spec, "gated", sp, 0, 0)
    first.set_search_properties(None, None, space)
    for i in range(2):
        first.suggest(f"a{i}")
        first.on_trial_complete(f"a{i}", {OBJECTIVE: 0.5, "epoch": 2})
    first.save(str(tmp_path / "first.pkl"))
    first.suggest("a-late")  # asked after the save: the crash takes it

    spec = spec.grow(3)
    growth = searcher(spec, "gated", sp, 1, 1)
    growth.set_search_properties(None, None, space)
    growth.suggest("b0")
    growth.on_trial_result("b0", {OBJECTIVE: 0.4, "epoch": 1})
    growth.save(str(tmp_path / "growth.pkl"))
    # the crash; a new driver restores both, first run first
    restored = [PrunedAwareOptunaSearch(max_epochs=2), PrunedAwareOptunaSearch(max_epochs=2)]
    restored[0].restore(str(tmp_path / "first.pkl"))
    restored[1].restore(str(tmp_path / "growth.pkl"))
    restored[1].on_trial_complete("b0", {OBJECTIVE: 0.6, "epoch": 2})
    trials = {t.user_attrs["trial_id"]: t for t in optuna.load_study(
        study_name="gated", storage=study.storage(tmp_path / "g" / study.JOURNAL_FILE)).trials}  # fmt: skip
    assert trials["b0"].state == TrialState.COMPLETE and trials["b0"].intermediate_values == {1: 0.4, 2: 0.6}
    assert trials["a-late"].state == TrialState.FAIL and study.LOST in trials["a-late"].user_attrs
    assert [trials[f"a{i}"].state for i in range(2)] == [TrialState.COMPLETE] * 2


def test_model_costs_count_parameters_flops_and_time_one_clip(tiny_demo):
    """emo.train.model_costs on the tiny demo set: the parameter count of the model the config builds,
    FLOPs and latency that grow with its width."""
    from emo.config import TrainConfig
    from emo.data import load_data
    from emo.metric_names import COSTS
    from emo.models import build_model
    from emo.train import model_costs

    def cfg(d):
        return TrainConfig(data_root=str(tiny_demo.root), preset="demo", video_backbone="light", fusion="gated",
                           audio_width=8, video_width=16, embed_dim=d)  # fmt: skip

    data = load_data(cfg(32))
    small, big = model_costs(cfg(32), data, ("params", "flops", "latency")), model_costs(cfg(256), data, COSTS)
    assert small[COSTS["params"]] == sum(p.numel() for p in build_model(cfg(32)).parameters())
    assert small[COSTS["params"]] < big[COSTS["params"]] and 0 < small[COSTS["flops"]] < big[COSTS["flops"]]
    assert 0 < small[COSTS["latency"]] < 10_000
    assert set(model_costs(cfg(32), data, ("params",))) == {COSTS["params"]}
    with pytest.raises(ValueError, match="unknown cost"):
        model_costs(cfg(32), data, ("size",))


def test_a_multi_objective_sweep_reports_costs_and_writes_its_pareto_front(tiny_root, tmp_path):
    """--objectives f1,params,latency: model size (embed_dim; the width is given) is searched, every
    trial reports its costs, Optuna's study has one direction per objective and each finished trial's
    values, results.parquet marks the front (recomputed here), the terminal prints it, and the report
    retrains every configuration on the front over its folds and plots it."""
    import optuna

    from emo.config import TrainConfig
    from emo.models import build_model
    from sweeps import study
    from sweeps.run import main

    # audio-only: its report confirms fewer variants (no gate, no modality dropout) than a fusion method's
    argv = ["audio", "--data_root", tiny_root, *SWEEP_DATA, "--num-samples", "5", "--max-epochs", "2"]
    argv += ["--objectives", "f1,params,latency", "--max-concurrent", "1", "--scheduler", "fifo"]
    argv += ["--storage-path", str(tmp_path), "--name", "mo", "--report", "--report-folds", "2", "--report-seeds", "1"]
    with contextlib.redirect_stdout(_Tee(sys.stdout)) as out:
        assert main(argv) == 0
    df = pd.read_parquet(tmp_path / "mo" / "results.parquet")
    assert len(df) == 5 and {"cost_params", "cost_latency_ms", "pareto"} <= set(df.columns)
    assert "cost_flops" not in df.columns and "config/embed_dim" in df.columns
    assert "config/audio_width" not in df.columns  # given on the command line: not searched
    for _, r in df.iterrows():
        c = json.loads(r["config"])
        assert r["cost_params"] == sum(p.numel() for p in build_model(TrainConfig(**c)).parameters())
        assert r["cost_latency_ms"] > 0
    pts = [(-r[OBJECTIVE_COLUMN], r["cost_params"], r["cost_latency_ms"]) for _, r in df.iterrows()]

    def dominated(p):
        return any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in pts)

    assert list(df["pareto"]) == [not dominated(p) for p in pts] and df["pareto"].any()
    # and Optuna's own Pareto front of the same study agrees
    st = optuna.load_study(study_name="audio", storage=study.storage(tmp_path / "mo" / study.JOURNAL_FILE))
    assert {t.user_attrs["trial_id"] for t in st.best_trials} == set(df.loc[df["pareto"], "trial_id"])
    assert df.loc[df["config/embed_dim"] == df["config/embed_dim"].min(), "pareto"].any()  # the smallest costs least
    assert [d.name for d in st.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert st.metric_names == [OBJECTIVE, "cost/params", "cost/latency_ms"]
    for t in st.trials:
        [r] = [r for _, r in df.iterrows() if r["trial_id"] == t.user_attrs["trial_id"]]
        assert t.values == pytest.approx([r[OBJECTIVE_COLUMN], r["cost_params"], r["cost_latency_ms"]])
    assert "audio: Pareto front of val F1 against params, latency" in out.getvalue()
    summary = json.loads((tmp_path / "mo" / "report" / "summary.json").read_text())
    confirmed = summary["front"]["audio"]["front"]
    assert sorted(t["trial_id"] for t in confirmed) == sorted(df.loc[df["pareto"], "trial_id"])
    assert all(t["runs"] == 2 and t["test_f1"] is not None for t in confirmed), confirmed
    variants = {v["variant"] for v in summary["variants"] if v["method"] == "audio"}
    assert {t["variant"] for t in confirmed} <= variants and "best" in variants
    html = (tmp_path / "mo" / "report" / "report.html").read_text()
    assert "Pareto front: validation Macro-F1 against cost" in html and 'alt="front-audio"' in html


def test_a_retried_trial_says_whether_its_code_raised_or_its_worker_died(tmp_path):
    """Tune retries a failed trial either way; the driver's line names the exception when the trial's
    own code raised it (the retry will likely raise it again), and says `worker lost` otherwise. The
    error file is written as Tune writes it, from Ray's own exceptions."""
    import traceback
    from types import SimpleNamespace

    from ray.exceptions import ActorDiedError, RayTaskError

    from sweeps.progress import recover_message

    try:
        raise ValueError("the frozen audio encoder trained on actor(s) [3]")
    except ValueError as e:
        task_error = RayTaskError(
            "ImplicitFunc.train", traceback.format_exc(), e, proctitle="ray::ImplicitFunc.train()"
        )
    lines = {}
    for name, exc in (("raised", task_error), ("died", ActorDiedError())):
        f = tmp_path / f"{name}.txt"
        f.write_text(f"Failure # 1 (occurred at 2026-12-08_00-35-34)\n{exc}\n")
        trial = SimpleNamespace(error_file=str(f), num_failures=1, max_failures=3, latest_checkpoint_result=None)
        lines[name] = recover_message(trial)
    assert lines["raised"].startswith(
        "raised ValueError: the frozen audio encoder trained on actor(s) [3]: retrying from the start"
    ), lines["raised"]
    assert lines["died"].startswith("worker lost: retrying from the start (no checkpoint yet)"), lines["died"]
