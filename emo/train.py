"""Train one model: `fit(cfg, data)` is the loop every sweep trial runs; this module's CLI is one run.

    python -m emo.train                                        # gated fusion on the built-in demo set
    python -m emo.train --data_root data --num_classes 8 --fusion gated --split_mode actor \\
        --use_resnet_audio --use_cosine_annealing --weight_decay 1e-4 \\
        --early_stopping_patience 10 --epochs 20 --batch_size 16 --lr 5e-4 --wandb
    python -m emo.train --fusion audio --checkpoint_dir runs/a    # stop it, run again: it resumes

The whole feature set goes to the device once; a batch is an index slice; SpecAugment and modality
dropout run on the device; bf16 autocast on CUDA and bf16-capable CPUs (`precision`). No decoding,
no DataLoader workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pickle
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emo.config import DEMO_TRAIN, OPERATIONAL_FIELDS, TrainConfig
from emo.data.cache import load_data
from emo.data.labels import class_names
from emo.data.splits import make_split
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE
from emo.metrics import accuracy, confusion_matrix, macro_f1, per_class_f1
from emo.models import build_model
from emo.paths import atomic_write

STATE_FILE = "state.pt"  # everything needed to resume, written every `checkpoint_every` epochs
BEST_FILE = "best.pt"  # the model weights at the best validation epoch

Report = Callable[[dict, str | None], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the forward pass autocasts to, None for plain fp32. `auto` picks bf16 where the hardware
    computes it natively: CUDA, and CPUs with AVX512-BF16 or AMX, where an audio ResNet18 epoch on real
    speech ran 2.05x faster than in fp32 (BENCHMARKS.md, "CPU precision"). Other CPUs have no bf16
    instructions for it to use, so auto stays in fp32 there."""
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    # torch.cpu's own probes are private: a torch without them reads as a CPU without native bf16.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return torch.bfloat16 if device.type == "cpu" and native else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """Every generator's state as tensors and plain Python values, which `weights_only` loading accepts
    (numpy's key array is kept as a tensor: an ndarray would need numpy's unpickler)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: Path) -> dict:
    """A checkpoint file, read with `weights_only=True`: tensors and plain data only. A trial's
    checkpoint comes back from shared storage, or from a scratch folder on a shared machine, and a full
    unpickle would run whatever code a planted file names. One ValueError line when it is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a paragraph; the line naming what was refused ("GLOBAL posix.system") is enough.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        refused = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[-1] if lines else "")
        raise ValueError(
            f"refusing to load checkpoint {path}: it holds more than tensors and plain data ({refused}); "
            "a file planted there, or one written by an older emo-sweeps: use a new --checkpoint_dir"
        ) from None


def cpu_weights(model) -> dict:
    """A copy of the model's weights on the CPU: what fit keeps of the best validation epoch."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_checkpoint(
    ckpt: Path, cfg: TrainConfig, model, optimizer, scheduler, epoch: int, best: dict, history: list,
    wandb_id: str | None, best_state: dict | None = None, ema=None,
) -> None:  # fmt: skip
    """What fit writes after an epoch: `best_state` to best.pt when the epoch improved on validation,
    and everything a resume needs to state.pt (weights, optimizer, scheduler, RNG, history)."""
    if best_state is not None:
        _atomic_save(best_state, ckpt / BEST_FILE)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "best": best,
        "history": history,
        "rng": _rng_state(),
        "config": cfg.to_dict(),
        "wandb_id": wandb_id,
    }
    _atomic_save(state, ckpt / STATE_FILE)


class DeviceData:
    """The rows a run uses, on the device once: audio (N, F, T) float32, video (N, T, S, S, 3) uint8,
    labels (N,). Batches are index slices of these tensors."""

    def __init__(self, data, cfg: TrainConfig, device: torch.device):
        need = np.ones(len(data.actors), dtype=bool)
        if "audio" in cfg.streams:
            need &= data.has_audio
        if "video" in cfg.streams:
            need &= data.has_video
        self.rows = np.flatnonzero(need)
        if self.rows.size == 0:
            raise ValueError(f"no clip has the stream(s) {cfg.fusion!r} needs ({' and '.join(cfg.streams)})")
        self.actors = data.actors[self.rows]
        self.labels_np = data.labels(cfg.num_classes)[self.rows]
        self.labels = torch.from_numpy(self.labels_np).to(device)
        # Fancy indexing copies out of the read-only memory map: the tensors own their memory.
        self.audio = torch.from_numpy(data.audio[self.rows]).to(device) if "audio" in cfg.streams else None
        self.video = torch.from_numpy(data.video[self.rows]).to(device) if "video" in cfg.streams else None

    def batch(self, idx: torch.Tensor):
        a = self.audio[idx] if self.audio is not None else None
        v = self.video[idx] if self.video is not None else None
        return a, v, self.labels[idx]


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule, stepped after every batch: a linear warmup over `warmup_epochs`, then
    (with `use_cosine_annealing`) a cosine decay that reaches 0 at the end of `epochs`. None: constant."""
    if not cfg.use_cosine_annealing and not cfg.warmup_epochs:
        return None
    total = cfg.epochs * steps_per_epoch
    warm = round(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cfg.use_cosine_annealing:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def weight_average(model, cfg: TrainConfig, steps_per_epoch: int):
    """An exponential moving average of the weights (and BatchNorm statistics) over about `ema_epochs`
    epochs of steps, updated after every optimiser step: what validation, checkpoint selection and test
    read. It smooths out the epoch-to-epoch swings a small validation set sees. None when ema_epochs = 0."""
    if not cfg.ema_epochs:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    decay = 1 - 1 / max(1.0, cfg.ema_epochs * steps_per_epoch)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def class_weights(labels: np.ndarray, num_classes: int, device) -> torch.Tensor:
    """Inverse class frequency, normalised so that a balanced set weighs every clip 1 (sklearn's
    'balanced'); a class the training rows lack gets 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32, device=device)


def run_epoch(
    model, dd: DeviceData, idx: np.ndarray, cfg: TrainConfig, device, optimizer=None, scheduler=None,
    weight: torch.Tensor | None = None, ema=None,
) -> dict:  # fmt: skip
    """One pass over rows `idx` (training if an optimizer is given; then `scheduler` steps per batch, the
    loss uses `weight` and label smoothing, and `ema` averages the weights after every step). Returns
    loss, f1, acc, confusion matrix, predictions and the mean gate value when the model has one. The
    loss reported is the training loss in training, plain cross-entropy otherwise."""
    train = optimizer is not None
    model.train(train)
    idx_t = torch.as_tensor(idx, device=device)
    if train:
        idx_t = idx_t[torch.randperm(len(idx_t)).to(device)]  # global RNG: seeded and checkpointed
    losses, preds, gates, n = 0.0, [], [], 0
    dtype = autocast_dtype(cfg.precision, device)
    # fp32 needs no context (autocast warns when handed float32 on a CPU)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.set_grad_enabled(train):
        for start in range(0, len(idx_t), cfg.batch_size):
            a, v, y = dd.batch(idx_t[start : start + cfg.batch_size])
            with autocast:
                out = model(a, v)
            if train:
                loss = F.cross_entropy(out["logits"].float(), y, weight=weight, label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss is {loss.item()} (lr {cfg.lr} too high?)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
            else:
                loss = F.cross_entropy(out["logits"].float(), y)
            losses += loss.item() * len(y)
            n += len(y)
            preds.append(out["logits"].argmax(-1))
            if "gate" in out:
                gates.append(out["gate"].detach().float())
    pred = torch.cat(preds)
    cm = confusion_matrix(dd.labels[idx_t], pred, cfg.num_classes)
    res = {
        "loss": losses / max(n, 1),
        "f1": macro_f1(cm),
        "acc": accuracy(cm),
        "cm": cm,
        "pred": pred.cpu(),
        "order": idx_t.cpu(),
    }
    if gates:
        res["gate"] = torch.cat(gates).cpu()
    return res


def fit(
    cfg: TrainConfig,
    data,
    report: Report | None = None,
    checkpoint_dir: str | Path | None = None,
    tracking: dict | None = None,
    evaluate_test: bool = True,
) -> dict:
    """Train `cfg.fusion` on `data` (a `emo.data.FeatureSet`, or anything with its `audio`, `video`,
    `actors`, `has_audio`, `has_video` and `labels(num_classes)`), return the metrics.

    AdamW, optional cosine annealing, early stopping on validation Macro-F1, and the test set evaluated
    once, with the weights of the best validation epoch. `report(metrics, checkpoint_dir)` is called
    after every epoch (the Ray Tune trainable passes `ray.tune.report` through it), with the checkpoint
    folder on the epochs that saved one, else None. With `checkpoint_dir`, the full state is saved
    there every `cfg.checkpoint_every` epochs and after the last, and a run started on a folder
    that holds one resumes from it and ends exactly as if it had never stopped. `tracking` holds extra
    `emo.tracking.start_run` arguments for the W&B run (a sweep sets name, group, tags and directory).
    `evaluate_test=False` skips the test pass (no `test/*` keys): a sweep trial chooses by validation
    only, and the report's confirmation runs test the chosen configurations.
    """
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    dd = DeviceData(data, cfg, device)
    split = make_split(cfg.split_mode, dd.actors, dd.labels_np, cfg.seed, cfg.folds, cfg.fold)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(split.train) / cfg.batch_size)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    ema = weight_average(model, cfg, steps_per_epoch)
    evaluated = ema.module if ema is not None else model  # the weights validation and test score
    weight = class_weights(dd.labels_np[split.train], cfg.num_classes, device) if cfg.class_balance else None

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history: list[dict] = []
    best = {"f1": -1.0, "epoch": -1, "bad_epochs": 0}
    best_state = None
    best_unsaved = False  # a better epoch since the last checkpoint: best.pt is behind
    start_epoch, wandb_id = 0, None
    if ckpt is not None and (ckpt / STATE_FILE).exists():
        # On the CPU (load_checkpoint): the RNG states must stay CPU tensors; load_state_dict moves weights.
        state = load_checkpoint(ckpt / STATE_FILE)
        # A checkpoint from before `precision` existed trained in bf16 on CUDA and in fp32 elsewhere.
        state["config"].setdefault("precision", "auto" if device.type == "cuda" else "fp32")
        _check_resumable(cfg, state["config"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history, best, wandb_id = state["history"], state["best"], state.get("wandb_id")
        start_epoch = state["epoch"] + 1
        best_state = load_checkpoint(ckpt / BEST_FILE)
        _set_rng_state(state["rng"])
    elif ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)

    run = None
    if cfg.wandb:
        from emo.tracking import start_run

        opts = {"project": cfg.wandb_project, "tags": (cfg.fusion,), "directory": ckpt, **(tracking or {})}
        if wandb_id:  # resuming: continue the run this checkpoint logged to
            opts["run_id"] = wandb_id
        run = start_run(cfg.to_dict(), **opts)
        wandb_id = run.id
    try:
        stopped_early = bool(history) and best["bad_epochs"] >= cfg.early_stopping_patience > 0
        for epoch in range(start_epoch, cfg.epochs):
            if stopped_early:
                break
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            tr = run_epoch(model, dd, split.train, cfg, device, optimizer, scheduler, weight, ema)
            va = run_epoch(evaluated, dd, split.val, cfg, device)
            improved = va["f1"] > best["f1"]
            if improved:
                best = {"f1": va["f1"], "epoch": epoch, "bad_epochs": 0}
                best_state = cpu_weights(evaluated)
            else:
                best["bad_epochs"] += 1
            stopped_early = best["bad_epochs"] >= cfg.early_stopping_patience > 0
            metrics = {
                "epoch": epoch + 1,  # epochs completed: the unit ASHA counts in
                "train/loss": tr["loss"],
                "val/loss": va["loss"],
                "train/f1": tr["f1"],
                EPOCH_VAL_F1: va["f1"],
                "train/acc": tr["acc"],
                "val/acc": va["acc"],
                "lr": lr,
                OBJECTIVE: best["f1"],
                "best/epoch": best["epoch"] + 1,
                "time/epoch_s": time.perf_counter() - t0,
                "stopped_early": stopped_early,  # this was the last epoch: no val improvement for `patience`
            }
            if "gate" in tr:
                metrics["gate/train_mean"] = float(tr["gate"].mean())
                metrics["gate/val_mean"] = float(va["gate"].mean())
            history.append(metrics)
            best_unsaved = best_unsaved or improved
            saved = ckpt is not None and (
                (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs or stopped_early
            )
            if saved:
                save_checkpoint(ckpt, cfg, model, optimizer, scheduler, epoch, best, history, wandb_id,
                                best_state=best_state if best_unsaved else None, ema=ema)  # fmt: skip
                best_unsaved = False
            if run is not None:
                run.log(metrics, step=epoch + 1)
            if report is not None:
                report(dict(metrics), str(ckpt) if saved else None)

        names = class_names(cfg.num_classes)
        results = {
            "fusion": cfg.fusion,
            "num_classes": cfg.num_classes,
            "epochs_run": len(history),
            "stopped_early": stopped_early,
            "best_epoch": best["epoch"] + 1,
            EPOCH_VAL_F1: best["f1"],  # the best epoch's: the weights tested and kept
            "precision": "bf16" if autocast_dtype(cfg.precision, device) == torch.bfloat16 else "fp32",
            "split": {
                **split.sizes(),
                "train_actors": split.train_actors,
                "val_actors": split.val_actors,
                "test_actors": split.test_actors,
            },
            "history": history,
        }
        if evaluate_test:
            # Test once, with the best validation epoch's weights: test clips never choose anything.
            if best_state is not None:
                model.load_state_dict(best_state)
            te = run_epoch(model, dd, split.test, cfg, device)
            results |= {
                "test/f1": te["f1"],
                "test/acc": te["acc"],
                "test/loss": te["loss"],
                "test/per_class_f1": dict(zip(names, per_class_f1(te["cm"]).tolist(), strict=True)),
                "test/confusion": te["cm"].tolist(),
                "test/recordings": [int(dd.rows[i]) for i in te["order"].tolist()],
                "test/pred": te["pred"].tolist(),
            }
            if "gate" in te:
                y = dd.labels_np[te["order"].numpy()]
                g = te["gate"].numpy()
                results["gate"] = {
                    "test_mean": float(g.mean()),
                    "test_per_class": {names[c]: float(g[y == c].mean()) for c in np.unique(y)},
                }
        results["seconds"] = time.perf_counter() - t_start
        if run is not None:
            run.summary.update(wandb_summary(results, names))
        return results
    finally:
        # Also when the loop is cut short: a sweep scheduler stopping the trial ends the `report` call
        # with SystemExit, and the W&B run must still be closed and its files flushed.
        if run is not None:
            run.finish()


def wandb_summary(results: dict, names: tuple[str, ...]) -> dict:
    """fit's results as W&B summary values: every number, nested ones flattened (`test/f1/<class>`,
    `gate/test_mean`, `gate/test_per_class/<class>`, `split/train`), and the test confusion matrix as a
    table (a row per true class, a column per predicted one). The per-epoch history is W&B's history
    already; per-clip lists (predictions, recordings) stay out."""
    import wandb

    out: dict = {}

    def add(key: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{key}/{k}", v)
        elif isinstance(value, int | float):  # bools too (stopped_early)
            out[key] = value

    for key, value in results.items():
        add("test/f1" if key == "test/per_class_f1" else key, value)
    if "test/confusion" in results:
        rows = [[name, *counts] for name, counts in zip(names, results["test/confusion"], strict=True)]
        out["test/confusion"] = wandb.Table(columns=["true", *names], data=rows)
    return out


_RESUME_MAY_DIFFER = {"epochs", "device", "early_stopping_patience"} | OPERATIONAL_FIELDS


def _check_resumable(cfg: TrainConfig, saved: dict) -> None:
    diff = sorted(k for k, v in cfg.to_dict().items() if k not in _RESUME_MAY_DIFFER and saved.get(k) != v)
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}" for k in diff)
        raise ValueError(f"the checkpoint was written with other settings ({shown}); use a new --checkpoint_dir")
    if cfg.use_cosine_annealing and saved.get("epochs") != cfg.epochs:
        # The saved scheduler anneals over the old epoch count (its length in steps); continuing it over another
        # count would end at neither schedule. Without cosine annealing, more epochs just train longer.
        raise ValueError(
            f"the checkpoint's cosine learning-rate schedule runs over {saved.get('epochs')} epochs, not "
            f"--epochs {cfg.epochs}; resume with --epochs {saved.get('epochs')} or use a new --checkpoint_dir"
        )


def _print_epoch(metrics: dict, _ckpt) -> None:
    gate = f"  gate {metrics['gate/val_mean']:.3f}" if "gate/val_mean" in metrics else ""
    print(
        f"epoch {metrics['epoch']:3d}  train loss {metrics['train/loss']:.3f} f1 {metrics['train/f1']:.3f}  "
        f"val loss {metrics['val/loss']:.3f} f1 {metrics['val/f1']:.3f} acc {metrics['val/acc']:.3f}  "
        f"lr {metrics['lr']:.2e}  {metrics['time/epoch_s']:.1f}s{gate}",
        flush=True,
    )


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    from emo.cli import Parser, add_dataclass_flags, add_flag, given

    parser = Parser(
        prog="python -m emo.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fields = add_dataclass_flags(parser, TrainConfig)
    add_flag(parser, "checkpoint_dir", help="save state here every epoch; resume if it holds a checkpoint")
    add_flag(parser, "results", help="write the final metrics to this JSON file")
    args = parser.parse_args(argv)
    flags = given(args, fields)
    if flags.get("data_root") is None:  # the built-in demo set: its recipe, under the flags given
        flags = {**DEMO_TRAIN, **flags}
    return TrainConfig(**flags), args


def main(argv: list[str] | None = None) -> int:
    from emo.cli import fail
    from emo.data.catalog import DataRootError

    try:
        cfg, args = parse_config(argv)
        device = resolve_device(cfg.device)  # before the data: a wrong device fails in a second
        if cfg.video_weights == "imagenet" and "video" in cfg.streams:
            build_model(cfg)  # downloads the weights (once) before the data loads: no internet fails fast
        data = load_data(cfg)
        print(
            f"{cfg.fusion}: {len(data)} clips, {cfg.num_classes} classes, split {cfg.split_mode}, device {device}",
            flush=True,
        )
        results = fit(cfg, data, report=_print_epoch, checkpoint_dir=args.checkpoint_dir)
    except (ValueError, DataRootError, FloatingPointError) as e:
        fail(str(e))
    print(
        f"best epoch {results['best_epoch']}: val Macro-F1 {results[EPOCH_VAL_F1]:.3f}; "
        f"test Macro-F1 {results['test/f1']:.3f}, accuracy {results['test/acc']:.3f}"
    )
    print("test per-class F1: " + ", ".join(f"{k} {v:.2f}" for k, v in results["test/per_class_f1"].items()))
    if "gate" in results:
        print(f"mean gate on audio (test): {results['gate']['test_mean']:.3f}")
    if args.results:
        text = json.dumps({"config": cfg.to_dict(), **results}, indent=1)
        atomic_write(args.results, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
