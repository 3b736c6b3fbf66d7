"""The training loop on real (small) demo features: learning, determinism, resume, CLI, W&B offline."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emo.config import FUSIONS, TrainConfig, feature_preset
from emo.data.labels import class_names
from emo.metric_names import EPOCH_VAL_F1
from emo.train import fit, parse_config
from tests.keysearch import FAKE_KEY

REPO = Path(__file__).resolve().parents[1]
# Small and quick: light audio CNN, 64-wide embeddings; the model code is the real one. SpecAugment's
# widths are the guide's, scaled by the model to the tiny 32-mel, 121-frame spectrograms.
FAST = dict(embed_dim=64, batch_size=16, lr=1e-3, early_stopping_patience=0)


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
    """The whole per-epoch history, every metric but the epoch's wall-clock time."""
    return [{k: v for k, v in m.items() if k != "time/epoch_s"} for m in results["history"]]


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
    assert _curve(d) == _curve(a) and d[EPOCH_VAL_F1] == a[EPOCH_VAL_F1]
    assert not [k for k in d if k.startswith("test/")] and "gate" not in d


def test_mixup_trains_on_blends_of_two_clips_and_both_labels(tiny_demo, monkeypatch):
    """With mixup the model trains on lam * clip + (1 - lam) * its partner (lam >= 0.5), audio and video
    alike, and the loss takes both labels; evaluation sees the clips themselves."""
    import emo.train as train

    cfg = TrainConfig(fusion="concat", epochs=1, mixup=0.4, **FAST)
    log = []  # per training batch: what the data gave, the draw, what the model got, the loss targets
    real_pairs, real_batch, real_ce = train.mixup_pairs, train.DeviceData.batch, F.cross_entropy
    model_cls = train.build_model(cfg).__class__
    real_forward = model_cls.forward

    def batch(self, idx):
        a, v, y = real_batch(self, idx)
        log.append({"a": a, "v": v, "y": y})
        return a, v, y

    def pairs(alpha, n, device):
        lam, partner = real_pairs(alpha, n, device)
        log[-1].update(lam=lam, partner=partner, targets=[])
        return lam, partner

    def forward(self, a, v):
        log[-1].update(model_a=a, model_v=v)
        return real_forward(self, a, v)

    def cross_entropy(logits, y, **kw):
        if "targets" in log[-1] and len(log[-1]["targets"]) < 2:
            log[-1]["targets"].append(y)
        return real_ce(logits, y, **kw)

    monkeypatch.setattr(train.DeviceData, "batch", batch)
    monkeypatch.setattr(train, "mixup_pairs", pairs)
    monkeypatch.setattr(model_cls, "forward", forward)
    monkeypatch.setattr(train.F, "cross_entropy", cross_entropy)
    res = fit(cfg, tiny_demo)
    assert np.isfinite(res["history"][0]["train/loss"])
    trained = [b for b in log if "lam" in b]
    assert len(trained) > 1
    assert any(b["partner"] is not None for b in trained)
    for b in trained:
        lam, p = b["lam"], b["partner"]
        if p is None:  # a last batch of one clip has no partner: trained as it is
            assert len(b["y"]) == 1 and lam == 1 and b["model_a"] is b["a"]
            continue
        assert 0.5 <= lam <= 1 and sorted(p.tolist()) == list(range(len(b["y"])))
        assert len(p) < 8 or not torch.equal(p, torch.arange(len(p)))  # 16 clips: 1 / 16! to be unmoved
        for raw, fed in ((b["a"], b["model_a"]), (b["v"], b["model_v"])):
            assert torch.allclose(fed, lam * raw.float() + (1 - lam) * raw[p].float(), atol=1e-4)
        assert [t.tolist() for t in b["targets"]] == [b["y"].tolist(), b["y"][p].tolist()]
    evaluated = [b for b in log if "lam" not in b]
    assert evaluated and all(b["model_a"] is b["a"] and b["model_v"] is b["v"] for b in evaluated)
    assert real_pairs(0.0, 16, torch.device("cpu")) == (1.0, None)  # off: no blend, no RNG drawn


def test_resume_equals_uninterrupted(tiny_demo, tmp_path):
    cfg = TrainConfig(fusion="gated", epochs=4, use_cosine_annealing=True, **FAST)
    whole = fit(cfg, tiny_demo, checkpoint_dir=tmp_path / "whole")

    def on_disk(metrics, ckpt):
        assert Path(ckpt, "state.pt").exists()  # the checkpoint is on disk before the report

    resumed, seen = _cut_and_resume(cfg, tiny_demo, tmp_path / "cut", after=2, check=on_disk)
    assert seen == [3, 4], "the resumed run repeats no epoch"
    assert [m.keys() for m in resumed["history"]] == [m.keys() for m in whole["history"]]
    assert _curve(resumed) == _curve(whole)  # every metric of every epoch
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
    # A checkpoint written before `precision` existed trained in fp32 on a CPU: resumed as that.
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    del state["config"]["precision"]
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="other settings .*precision: 'fp32' -> 'bf16'"):
        fit(cfg.replace(precision="bf16", device="cpu"), tiny_demo, checkpoint_dir=tmp_path)
    assert fit(cfg.replace(precision="fp32", device="cpu"), tiny_demo, checkpoint_dir=tmp_path)["epochs_run"] == 1


def test_resume_refuses_other_epochs_under_cosine_annealing(tiny_demo, tmp_path):
    """The saved cosine schedule anneals over the saved epoch count: another --epochs is refused in one
    line (without cosine annealing more epochs simply train on)."""
    cfg = TrainConfig(fusion="audio", epochs=1, use_cosine_annealing=True, **FAST)
    fit(cfg, tiny_demo, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"^the checkpoint's cosine learning-rate schedule runs over 1 epochs, "
                       r"not --epochs 2; resume with --epochs 1 or use a new --checkpoint_dir$"):  # fmt: skip
        fit(cfg.replace(epochs=2), tiny_demo, checkpoint_dir=tmp_path)
    assert fit(cfg, tiny_demo, checkpoint_dir=tmp_path)["epochs_run"] == 1  # the same epochs: resumes


def test_early_stopping_stops(tiny_demo):
    res = fit(TrainConfig(fusion="audio", epochs=30, early_stopping_patience=1, lr=1e-7, embed_dim=32), tiny_demo)
    assert res["stopped_early"] and res["epochs_run"] < 30
    assert res["best_epoch"] == res["epochs_run"] - 1


def test_gate_statistics_are_reported(tiny_demo):
    res = fit(TrainConfig(fusion="gated", epochs=1, **FAST), tiny_demo)
    assert "gate/train_mean" in res["history"][0] and 0 < res["gate"]["test_mean"] < 1
    assert set(res["gate"]["test_per_class"]) <= set(class_names(8))
    assert res[EPOCH_VAL_F1] == max(m[EPOCH_VAL_F1] for m in res["history"])


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
    hyphens, _ = parse_config(command.replace("_", "-").split())
    assert hyphens == cfg


BAD_VALUES = {
    ("--fusion", "gatd"): "invalid choice: 'gatd'",
    ("--num_classes", "6"): "invalid choice: 6",
    ("--gate_bias", "1.5"): "error: gate_bias is the gate's initial value and must be in (0, 1)",
    ("--data_root", "/no/such/folder"): "error: data root '/no/such/folder' does not exist",
    ("--device", "cuda:0"): "error: device 'cuda:0' asked for, but torch sees no CUDA GPU",
    ("--audio_frontend", "own", "--fusion", "audio"): (
        "error: audio_frontend='own' needs --audio_encoder: a run's checkpoint folder"
    ),
    ("--n_mels", "0"): "error: FeatureConfig.n_mels must be > 0, got 0",
}


def test_feature_flags_set_features_over_the_preset():
    """Every FeatureConfig field is a flag of emo.train too: the run's features are its preset's with
    the flags over them, recorded in TrainConfig.features (checkpoints, W&B, sweeps)."""
    cfg, _ = parse_config(["--data_root", "data", "--n_mels", "48", "--face_detector", "haar", "--no-rms_normalize"])
    assert cfg.features == {"n_mels": 48, "face_detector": "haar", "rms_normalize": False}
    want = feature_preset("ravdess").replace(n_mels=48, face_detector="haar", rms_normalize=False)
    assert cfg.feature_config() == want
    plain, _ = parse_config(["--data_root", "data"])
    assert plain.features == {} and plain.feature_config() == feature_preset("ravdess")
    assert parse_config([])[0].feature_config() == feature_preset("demo")  # the demo set's own preset
    with pytest.raises(ValueError, match="unknown FeatureConfig field"):
        TrainConfig(features={"mels": 48})


@pytest.mark.parametrize("args", list(BAD_VALUES))
def test_cli_bad_values_fail_cleanly(args, capsys):
    """Through `main` in this process: the entry point itself runs in test_cli_runs_and_writes_results
    (a process per case spent its seconds importing torch)."""
    from emo.train import main

    if args == ("--device", "cuda:0") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and BAD_VALUES[args] in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, f"not one error line: {err!r}"
    if args[0] == "--fusion":  # the error names every valid choice
        assert re.search(r"choose from .*" + ".*".join(FUSIONS), err), err


def test_imagenet_weights_without_internet_fail_in_one_line(tmp_path, no_internet, capsys):
    """torchvision's download is made to fail the way it does without the internet (conftest's
    no_internet), before the data loads (the data root does not even exist), and main() reports it as
    one error line."""
    from emo.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["--fusion", "video", "--video_weights", "imagenet", "--data_root", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ImageNet weights for ResNet18 could not be downloaded (")
    assert "test: no internet" in err and not list(no_internet.rglob("*.pth"))
    assert err.endswith("): needs the internet once, or use --video_weights none\n"), err


class _Planted:
    """What an attacker with write access to a checkpoint folder would leave: unpickling it runs a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("planted", ["state.pt", "best.pt"])
def test_a_planted_pickle_in_the_checkpoint_folder_is_refused_in_one_line(tiny_demo, tmp_path, planted, capsys):
    """A trial resumes from checkpoints read back from shared storage or a scratch folder. Every
    checkpoint is loaded with weights_only=True: the planted file's command never runs, and the run
    stops with one error line naming the file and what it held."""
    from emo.train import main

    ckpt, marker = tmp_path / "ckpt", tmp_path / "pwned"
    argv = ["--preset", "demo", "--fusion", "audio", "--epochs", "2", "--embed_dim", "32",
            "--data_root", str(tiny_demo.root), "--checkpoint_dir", str(ckpt)]  # fmt: skip
    cfg, _ = parse_config(argv)  # the run main() resumes: the same settings, or it would refuse them
    with pytest.raises(Interrupted):  # a real run's checkpoint after epoch 1, then one file swapped
        fit(cfg, tiny_demo, checkpoint_dir=ckpt, report=_stop_after_epoch_1)
    torch.save({"model": _Planted(marker)}, ckpt / planted)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    text = capsys.readouterr().err
    assert not marker.exists(), "the planted command ran"
    assert exit_.value.code == 2 and "Traceback" not in text and text.count("error:") == 1, text[-3000:]
    err = text.splitlines()[-1]  # the one line after the feature extraction's progress bar
    assert err.startswith(f"error: refusing to load checkpoint {ckpt / planted}: it holds more than tensors")
    assert "GLOBAL posix.system" in err or "GLOBAL os.system" in err, err


def _stop_after_epoch_1(metrics, _ckpt):
    if metrics["epoch"] == 1:
        raise Interrupted


def test_emo_never_imports_ray():
    """STYLE: imports point sweeps -> search_spaces -> emo; emo never imports ray, nor wandb unless asked."""
    code = "import sys, emo, emo.train, emo.models, emo.tracking, emo.data; print(sorted({'ray', 'wandb'} & set(sys.modules)))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-2000:])


@pytest.fixture(scope="module")
def cli_run(tiny_demo, tmp_path_factory):
    """`python -m emo.train ... --wandb` with WANDB_API_KEY set (and WANDB_MODE=offline): the command a
    user with a key runs. W&B's own folders (config, cache, data, artifacts) point into the same tmp
    folder, so everything the run wrote is under it."""
    tmp = tmp_path_factory.mktemp("cli")
    wandb_dirs = {f"WANDB_{d}_DIR": str(tmp / "wandb-home" / d) for d in ("CONFIG", "CACHE", "DATA", "ARTIFACT")}
    env = {**os.environ, "WANDB_API_KEY": FAKE_KEY, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **wandb_dirs}
    argv = "--preset demo --fusion concat --epochs 1 --embed-dim 32 --wandb".split()
    argv += ["--data-root", str(tiny_demo.root), "--results", str(tmp / "r.json"), "--checkpoint-dir", f"{tmp}/ckpt"]
    out = subprocess.run(
        [sys.executable, "-m", "emo.train", *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=600
    )
    return out, tmp


def test_cli_runs_and_writes_results(cli_run):
    out, tmp = cli_run
    assert out.returncode == 0, out.stderr[-2000:]
    assert "epoch   1" in out.stdout and "test Macro-F1" in out.stdout
    res = json.loads((tmp / "r.json").read_text())
    assert res["config"]["fusion"] == "concat" and len(res["history"]) == 1


def test_wandb_key_is_in_no_file_a_run_wrote(cli_run):
    """No file the run wrote (results, checkpoints, the offline W&B run, W&B's logs and folders) holds
    the API key, binary files included."""
    out, tmp = cli_run
    assert out.returncode == 0, out.stderr[-2000:]
    files = [f for f in tmp.rglob("*") if f.is_file() and not f.is_symlink()]
    assert [f for f in files if FAKE_KEY.encode() in f.read_bytes()] == []
    names = {f.name for f in files}
    assert {"r.json", "state.pt", "best.pt", "debug.log", "debug-internal.log"} <= names, names
    assert any(n.endswith(".wandb") for n in names), "the offline W&B run was written and checked"


def test_wandb_offline_run_is_written_and_reads_back(tiny_demo, tmp_path, monkeypatch):
    """No API key configured -> offline automatically; W&B's own reader finds val/f1 in the history."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # W&B stages the table there
    cfg = TrainConfig(fusion="gated", epochs=2, wandb=True, **FAST)
    res = fit(cfg, tiny_demo, checkpoint_dir=tmp_path / "ckpt")
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
    # The end of the run is in the summary: per-class F1, gate statistics, the confusion matrix as a table.
    summary = {}
    for r in records:
        if r.get("type") == "summary":
            summary |= r["summary"].get("update", {})
    names = class_names(8)
    assert summary["test/f1"] == pytest.approx(res["test/f1"]) and summary["epochs_run"] == 2
    assert [summary[f"test/f1/{n}"] for n in names] == pytest.approx(list(res["test/per_class_f1"].values()))
    assert summary["gate/test_mean"] == pytest.approx(res["gate"]["test_mean"])
    for n, g in res["gate"]["test_per_class"].items():
        assert summary[f"gate/test_per_class/{n}"] == pytest.approx(g)
    assert summary["test/confusion"]["_type"] == "table-file"
    table = json.loads((runs[0] / "files" / summary["test/confusion"]["path"]).read_text())
    assert table["columns"] == ["true", *names]
    assert table["data"] == [[n, *row] for n, row in zip(names, res["test/confusion"], strict=True)]


def test_fold_trains_and_tests_on_that_folds_actors(tiny_demo):
    from emo.data.splits import confirmation_folds

    folds = confirmation_folds(tiny_demo.actors, 2)
    for i in range(2):
        res = fit(TrainConfig(fusion="audio", epochs=1, folds=2, fold=i, **FAST), tiny_demo)
        assert res["split"]["test_actors"] == folds[i].test_actors
        assert set(tiny_demo.actors[res["test/recordings"]].tolist()) == set(folds[i].test_actors)


def test_precision_auto_uses_bf16_only_where_the_hardware_has_it(tiny_demo, monkeypatch):
    from emo.train import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", torch.device("cuda")) is torch.bfloat16
    for native in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert autocast_dtype("auto", cpu) is (torch.bfloat16 if native else None)
    # bf16 really autocasts the forward pass on a CPU: the same seed trains to another curve, still finite
    cfg = TrainConfig(fusion="gated", epochs=1, device="cpu", **FAST)
    f32, b16 = fit(cfg.replace(precision="fp32"), tiny_demo), fit(cfg.replace(precision="bf16"), tiny_demo)
    assert (f32["precision"], b16["precision"]) == ("fp32", "bf16")
    assert _curve(f32) != _curve(b16) and np.isfinite(b16["history"][0]["train/loss"])
