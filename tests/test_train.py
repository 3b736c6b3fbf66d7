"""The training loop on real (small) demo features: learning, determinism, resume, CLI, W&B offline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emo.config import TrainConfig
from emo.data.labels import class_names
from emo.train import METRIC, fit, parse_config

REPO = Path(__file__).resolve().parents[1]
# Small and quick: light audio CNN, 64-wide embeddings; the model code is the real one.
# SpecAugment scaled to the tiny 32-mel, 121-frame spectrograms (the 20/40 defaults are sized for 64 x 351).
FAST = dict(embed_dim=64, batch_size=16, lr=1e-3, early_stopping_patience=0, freq_mask=4, time_mask=12)


class Interrupted(Exception):
    pass


def _cut_and_resume(cfg, data, ckpt_dir, after: int, check=None):
    """fit stopped by an exception after epoch `after`, then run again on the same checkpoint
    folder: returns the resumed run's results and the epochs it reported."""

    def stop(metrics, ckpt):
        if check is not None:
            check(metrics, ckpt)
        if metrics["epoch"] == after:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(cfg, data, report=stop, checkpoint_dir=ckpt_dir)
    seen = []
    resumed = fit(cfg, data, report=lambda m, c: seen.append(m["epoch"]), checkpoint_dir=ckpt_dir)
    return resumed, seen


def _curve(results):
    return [(m["train/loss"], m["val/loss"], m["val/f1"], m["lr"]) for m in results["history"]]


def test_short_fit_on_demo_beats_chance(tiny_demo):
    cfg = TrainConfig(fusion="audio", epochs=6, **FAST)
    res = fit(cfg, tiny_demo)
    assert res["epochs_run"] == 6 and len(res["history"]) == 6
    chance = 1 / 8
    # the audio cue tells 4 groups of 2 emotions apart: well above chance, below 50%
    assert res["test/acc"] > 2 * chance, res["test/acc"]
    assert res["history"][-1]["train/loss"] < res["history"][0]["train/loss"]
    assert tuple(res["test/per_class_f1"]) == class_names(8)
    assert np.array(res["test/confusion"]).sum() == res["split"]["test"]
    assert set(res["split"]["test_actors"]).isdisjoint(res["split"]["train_actors"])


def test_deterministic_on_cpu(tiny_demo):
    cfg = TrainConfig(fusion="gated", epochs=2, **FAST)
    a, b = fit(cfg, tiny_demo), fit(cfg, tiny_demo)
    assert _curve(a) == _curve(b) and a["test/pred"] == b["test/pred"]
    c = fit(cfg.replace(seed=1), tiny_demo)
    assert _curve(c) != _curve(a)
    # A sweep trial skips the test pass: the same training, and no test numbers at all.
    d = fit(cfg, tiny_demo, evaluate_test=False)
    assert _curve(d) == _curve(a) and d[METRIC] == a[METRIC]
    assert not [k for k in d if k.startswith("test/")] and "gate" not in d


def test_resume_equals_uninterrupted(tiny_demo, tmp_path):
    cfg = TrainConfig(fusion="gated", epochs=4, use_cosine_annealing=True, **FAST)
    whole = fit(cfg, tiny_demo, checkpoint_dir=tmp_path / "whole")

    def on_disk(metrics, ckpt):
        assert Path(ckpt, "state.pt").exists()  # the checkpoint is on disk before the report

    resumed, seen = _cut_and_resume(cfg, tiny_demo, tmp_path / "cut", after=2, check=on_disk)
    assert seen == [3, 4], "the resumed run repeats no epoch"
    assert _curve(resumed) == _curve(whole)
    assert resumed["test/f1"] == whole["test/f1"] and resumed["test/pred"] == whole["test/pred"]
    assert resumed["gate"] == whole["gate"]


def test_checkpoint_every_n_epochs_resumes_from_the_last_one_and_ends_the_same(tiny_demo, tmp_path):
    cfg = TrainConfig(fusion="audio", epochs=5, checkpoint_every=2, use_cosine_annealing=True, **FAST)
    saved = []
    whole = fit(cfg, tiny_demo, report=lambda m, c: saved.append((m["epoch"], c is not None)),
                checkpoint_dir=tmp_path / "whole")  # fmt: skip
    assert saved == [(1, False), (2, True), (3, False), (4, True), (5, True)]  # every 2nd, and the last

    resumed, seen = _cut_and_resume(cfg, tiny_demo, tmp_path / "cut", after=3)
    assert seen == [3, 4, 5], "epoch 3 came after the last checkpoint: it is trained again, the same way"
    assert _curve(resumed) == _curve(whole) and resumed["test/pred"] == whole["test/pred"]


def test_resume_refuses_other_settings(tiny_demo, tmp_path):
    cfg = TrainConfig(fusion="audio", epochs=1, **FAST)
    fit(cfg, tiny_demo, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="other settings .*lr: 0.001 -> 0.01"):
        fit(cfg.replace(lr=0.01), tiny_demo, checkpoint_dir=tmp_path)


def test_early_stopping_stops(tiny_demo):
    res = fit(TrainConfig(fusion="audio", epochs=30, early_stopping_patience=1, lr=1e-7, embed_dim=32), tiny_demo)
    assert res["stopped_early"] and res["epochs_run"] < 30
    assert res["best_epoch"] == res["epochs_run"] - 1


def test_gate_statistics_are_reported(tiny_demo):
    res = fit(TrainConfig(fusion="gated", epochs=1, **FAST), tiny_demo)
    assert "gate/train_mean" in res["history"][0] and 0 < res["gate"]["test_mean"] < 1
    assert set(res["gate"]["test_per_class"]) <= set(class_names(8))
    assert res[METRIC] == max(m["val/f1"] for m in res["history"])


# The training guide's five runs, flags exactly as it writes them.
_COMMON = "--use_cosine_annealing --weight_decay 1e-4 --early_stopping_patience 10 --epochs 20 --batch_size 16"
GUIDE_COMMANDS = [
    f"--data_root data --num_classes 8 --fusion audio --split_mode actor --use_resnet_audio {_COMMON}",
    f"--data_root data --num_classes 8 --fusion video --split_mode actor {_COMMON}",
    f"--data_root data --num_classes 8 --fusion gated --split_mode actor --use_resnet_audio --wandb {_COMMON}",
    f"--data_root data --num_classes 4 --fusion xattn --split_mode stratified --use_resnet_audio {_COMMON} --lr 5e-4",
    "--data_root data --num_classes 8 --fusion late --split_mode actor --use_resnet_audio --epochs 20 "
    "--batch_size 16 --lr 3e-4",
]


@pytest.mark.parametrize("command", GUIDE_COMMANDS)
def test_guide_commands_parse(command):
    cfg, _ = parse_config(command.split())
    assert cfg.data_root == "data" and cfg.epochs == 20 and cfg.batch_size == 16
    hyphens, _ = parse_config(command.replace("_", "-").replace("--data-root data", "--data-root data").split())
    assert hyphens == cfg


BAD_VALUES = {
    ("--fusion", "gatd"): "invalid choice: 'gatd'",
    ("--num_classes", "6"): "invalid choice: 6",
    ("--gate_bias", "1.5"): "error: gate_bias is the gate's initial value and must be in (0, 1)",
    ("--data_root", "/no/such/folder"): "error: data root '/no/such/folder' does not exist",
    ("--device", "cuda:0"): "error: device 'cuda:0' asked for, but torch sees no CUDA GPU",
}


@pytest.fixture(scope="module")
def bad_value_runs():
    """Every bad command line at once (each process spends its seconds importing torch)."""
    run = [sys.executable, "-m", "emo.train"]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    procs = {args: subprocess.Popen([*run, *args], **pipes) for args in BAD_VALUES}
    return {args: (*p.communicate(timeout=300), p.returncode) for args, p in procs.items()}


@pytest.mark.parametrize("args", list(BAD_VALUES))
def test_cli_bad_values_fail_cleanly(args, bad_value_runs):
    if args == ("--device", "cuda:0") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    _, err, code = bad_value_runs[args]
    assert code == 2 and BAD_VALUES[args] in err, err
    assert "Traceback" not in err


def test_cli_runs_and_writes_results(tiny_demo, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "emo.train",
            "--data-root",
            str(tiny_demo.root),
            "--preset",
            "demo",
            "--fusion",
            "concat",
            "--epochs",
            "1",
            "--embed-dim",
            "32",
            "--results",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "epoch   1" in out.stdout and "test Macro-F1" in out.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["config"]["fusion"] == "concat" and len(res["history"]) == 1


def test_wandb_offline_run_is_written_and_reads_back(tiny_demo, tmp_path, monkeypatch):
    """No API key configured -> offline automatically; W&B's own reader finds val/f1 in the history."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = TrainConfig(fusion="gated", epochs=2, wandb=True, **FAST)
    fit(cfg, tiny_demo, checkpoint_dir=tmp_path / "ckpt")
    runs = sorted((tmp_path / "ckpt" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(runs[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0 <= h["val/f1"] <= 1 and 0 < h["gate/val_mean"] < 1 for h in history)


def test_fold_trains_and_tests_on_that_folds_actors(tiny_demo):
    from emo.data.splits import actor_folds

    folds = actor_folds(tiny_demo.actors, 2)
    for i in range(2):
        res = fit(TrainConfig(fusion="audio", epochs=1, folds=2, fold=i, **FAST), tiny_demo)
        assert res["split"]["test_actors"] == folds[i].test_actors
        assert set(tiny_demo.actors[res["test/recordings"]].tolist()) == set(folds[i].test_actors)
