"""The sweep driver, for real: a local Ray instance, Optuna's TPE, ASHA, W&B offline, read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sweeps.results import STATUSES
from tests.procs import Lines

ROOT = Path(__file__).resolve().parents[1]
# The tiny demo set's recordings with the demo preset's features and the light video CNN: a gated
# epoch takes a few seconds on one core.
SWEEP_DATA = ["--preset", "demo", "--video_backbone", "light"]


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


@pytest.fixture(scope="module")
def finished_sweep(tiny_root, tmp_path_factory):
    """One real 6-trial x 3-epoch gated sweep with W&B offline, run through the CLI's main()."""
    from sweeps.run import main

    storage = tmp_path_factory.mktemp("runs")
    argv = ["gated", "--data_root", tiny_root, *SWEEP_DATA, "--num-samples", "6", "--max-epochs", "3"]
    # One trial at a time: ASHA then sees results in a fixed order and the sweep is reproducible.
    argv += ["--max_concurrent", "1", "--storage-path", str(storage), "--name", "s", "--wandb"]
    argv += ["--checkpoint_every", "2"]  # epochs 2 and 3 (the last) checkpoint; epoch 1 only reports
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.delenv("WANDB_API_KEY", raising=False)
        t0 = time.perf_counter()
        rc = main(argv)
        seconds = time.perf_counter() - t0
    return {"rc": rc, "dir": storage / "s", "seconds": seconds}


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
    assert df["best_val_f1"].between(0, 1).all()
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


def test_pruned_trials_reach_optuna_as_pruned(finished_sweep):
    from optuna.trial import TrialState

    from sweeps.search import PrunedAwareOptunaSearch

    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    searcher = PrunedAwareOptunaSearch(max_epochs=3)
    searcher.restore_from_dir(str(finished_sweep["dir"] / "gated"))
    states = [t.state for t in searcher._ot_study.trials]
    assert states.count(TrialState.PRUNED) == (df["status"] == "pruned").sum()
    assert states.count(TrialState.COMPLETE) == (df["status"] != "pruned").sum()


def test_leaderboard_is_printed(finished_sweep, capsys):
    from sweeps.results import leaderboard

    df = pd.read_parquet(finished_sweep["dir"] / "results.parquet")
    text = leaderboard(df.to_dict("records"), top=3)
    best = df.sort_values("best_val_f1", ascending=False).iloc[0]
    assert text.splitlines()[0].startswith("gated: 6 trials")
    assert best["trial_id"] in text.splitlines()[2]  # rank 1 is the best trial
    assert len([line for line in text.splitlines() if line.strip()[:1].isdigit()]) == 3


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
        "def stop(args):\n"
        "    print(sorted(m for m in ('torch', 'torchvision', 'torchaudio') if m in sys.modules))\n"
        "    raise SystemExit(0)\n"
        "sweeps.run._start_ray = stop\n"
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
    argv += ["--num-samples", "3", "--max-epochs", "3", "--max-concurrent", "1", "--grace-period", "3"]
    argv += ["--storage-path", str(storage), "--name", "k", "--address", lost.address, "--wandb"]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)  # each driver starts its own W&B service, as from a user's shell
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out = Lines(proc)
    try:
        # Kill it once one trial has finished and the next is one epoch in.
        out.wait_for(lambda ls: any("finished (1/3)" in x for x in ls), 300)
        n = len(out.lines)
        out.wait_for(lambda ls: any(" epoch 1/3" in x for x in ls[n:]), 120)
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
    assert len(df) == 3 and df["trial_id"].is_unique
    assert (df["status"] == "completed").all() and (df["epochs"] == 3).all()
    # A trial finished before the crash is not run again: the resumed driver printed no epoch of it.
    for tid in done_before:
        assert not any(tid in line and " epoch " in line for line in res.stdout.splitlines()), tid
    # No trial trained an epoch twice: each one's results are epochs 1..3 exactly once.
    for path in df["path"]:
        epochs = [json.loads(line)["epoch"] for line in Path(path, "result.json").read_text().splitlines()]
        assert epochs == [1, 2, 3], (path, epochs)
    # W&B: the resumed driver reopened each interrupted trial's run under the same id (a second
    # offline folder of the same run, merged by `wandb sync`), never a new run. The folder the
    # killed driver was writing can be empty: W&B's writer had not flushed it when it was killed
    # (those epochs are still in the trial's result.json).
    from sweeps.tracking import wandb_run_id

    for _, row in df.iterrows():
        folders = sorted(Path(row["path"]).glob("wandb/offline-run-*"))
        # A folder the killed driver had just opened may hold no .wandb file yet, or only its header.
        records = [_wandb_records(f, strict=False) for f in folders]
        written = [rs for rs in records if any(r["type"] == "run" for r in rs)]
        assert written and len(folders) - len(written) <= 1, (row["trial_id"], folders)
        ids = {next(r["run"]["run_id"] for r in rs if r["type"] == "run") for rs in written}
        assert ids == {wandb_run_id("k", row["trial_id"])}, (row["trial_id"], ids)
        steps = [r["history"]["step"]["num"] for rs in written for r in rs if r["type"] == "history"]
        assert len(steps) == len(set(steps)) and max(steps) == 3, (row["trial_id"], steps)
        if row["trial_id"] in done_before:
            assert len(folders) == 1 and steps == [1, 2, 3], (row["trial_id"], steps)


def test_worker_node_killed_mid_trial_retries_from_its_checkpoint(tiny_root, ray_cluster, tmp_path):
    """A second node joins the test's cluster; once a trial runs on each node, the worker node's raylet
    is killed by pid (as a preempted VM would vanish). Its trial resumes from its last epoch checkpoint
    on the surviving head, the sweep completes and results.parquet has each trial once."""
    worker = ray_cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
    ray_cluster.wait_for_nodes()
    storage = tmp_path / "runs"
    argv = [sys.executable, "-m", "sweeps.run", "gated", "--data_root", tiny_root, *SWEEP_DATA]
    argv += ["--num-samples", "2", "--max-epochs", "3", "--scheduler", "fifo", "--max-concurrent", "2"]
    argv += ["--storage-path", str(storage), "--name", "n", "--address", ray_cluster.address]
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
        os.kill(worker.all_processes["raylet"][0].process.pid, signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        ray_cluster.remove_node(worker, allow_graceful=False)
    text = "".join(out.lines)
    assert proc.returncode == 0, text[-3000:]
    assert "worker lost: retrying from its epoch-" in text, text[-3000:]
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
    cfg = sp.config(sp.recipe)
    assert cfg.fusion == method
    # A value pinned on the command line leaves the search and reaches every trial.
    pinned = sp.pin({"lr": 5e-4})
    assert "lr" not in pinned.params and pinned.param_space()["lr"] == 5e-4


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
        (["gated", "--lr", "-1"], "lr"),
        ([], "name a method to sweep"),
        (["gated", "--address", "ray://head:10001"], "(Ray Client) is not supported; run the driver on the cluster"),
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


def test_cli_errors_print_one_line_and_no_traceback(tmp_path):
    cases = {
        ("gatd",): "unknown method 'gatd'",
        ("gated", "--num-samplez", "3"): "unrecognized arguments: --num-samplez",
        ("gated", "--data_root", str(tmp_path / "nowhere")): "nowhere",
        ("--resume", "--storage-path", str(tmp_path / "empty")): "--resume: no sweep found in",
        ("--resume", "--name", "x", "--storage-path", str(tmp_path)): "holds no sweep",
    }
    # All at once: each process spends its seconds importing Ray and torch.
    procs = {argv: subprocess.Popen([sys.executable, "-m", "sweeps.run", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for argv in cases}  # fmt: skip
    for argv, message in cases.items():
        proc = procs[argv]
        out, err = proc.communicate(timeout=120)
        res = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        assert message in res.stderr, (argv, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, (argv, res.stderr)
        assert [line for line in res.stderr.splitlines() if line.startswith("error:")], res.stderr


def test_resume_refuses_flags_that_would_change_the_sweep(tmp_path):
    from sweeps.run import _write_sweep

    _write_sweep(str(tmp_path), {"name": "old", "methods": ["gated"], "fixed": {}, "finished": []})
    res = _cli("--resume", "--name", "old", "--storage-path", str(tmp_path), "--num-samples", "9", "--lr", "1e-4")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "error: --resume continues sweep 'old' with its own settings; drop --lr, --num-samples"


def test_diverging_trials_end_as_diverged_without_retries(tiny_root, tmp_path, capsys):
    """lr 1e6 makes the loss NaN in the first epoch: each trial ends once, as `diverged` with the
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
    assert df["error"].str.contains("diverged: training loss is nan").all()
    assert out.count("diverged (training loss is nan") == 2
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
