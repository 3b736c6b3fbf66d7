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
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emo.checkpoint import Progress, restore, save_checkpoint
from emo.config import DEMO_TRAIN, TrainConfig
from emo.data.cache import load_data
from emo.data.embeddings import check_actors, describe
from emo.data.labels import class_names
from emo.data.splits import make_split
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE
from emo.metrics import accuracy, confusion_matrix, macro_f1, per_class_f1
from emo.models import build_model
from emo.paths import atomic_write

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


def rows_with_streams(data, cfg: TrainConfig) -> np.ndarray:
    """The rows of `data` that have every stream `cfg.fusion` reads; ValueError when none has."""
    need = np.ones(len(data.actors), dtype=bool)
    if "audio" in cfg.streams:
        need &= data.has_audio
    if "video" in cfg.streams:
        need &= data.has_video
    rows = np.flatnonzero(need)
    if rows.size == 0:
        raise ValueError(f"no clip has the stream(s) {cfg.fusion!r} needs ({' and '.join(cfg.streams)})")
    return rows


def embedding_dims(cfg: TrainConfig, data) -> dict[str, tuple[int, ...]]:
    """One clip's embedding shape for each frozen stream of `data` (what its projection reads)."""
    return {s: tuple(int(d) for d in getattr(data, s).shape[1:]) for s in cfg.streams if cfg.frozen(s)}


def check_frontends(cfg: TrainConfig, data) -> None:
    """What `fit(cfg, data)` checks first about frozen front ends (emo.data.embeddings.check_actors) on
    the split it would make, without training: a sweep's driver asks before it starts any trial."""
    rows = rows_with_streams(data, cfg)
    actors = np.asarray(data.actors)[rows]
    split = make_split(cfg.split_mode, actors, data.labels(cfg.num_classes)[rows], cfg.seed, cfg.folds, cfg.fold)
    check_actors(getattr(data, "frontends", {}), cfg, actors[split.val], actors[split.test])


class DeviceData:
    """The rows a run uses, on the device once: audio (N, F, T) float32, video (N, T, S, S, 3) uint8,
    labels (N,). Batches are index slices of these tensors."""

    def __init__(self, data, cfg: TrainConfig, device: torch.device):
        self.rows = rows_with_streams(data, cfg)
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


class _Tally:
    """What a pass over some rows adds up: the loss, the predictions and the gate values, per batch."""

    def __init__(self) -> None:
        self.loss, self.n, self.preds, self.gates = 0.0, 0, [], []

    def add(self, loss: torch.Tensor, out: dict, y: torch.Tensor) -> None:
        self.loss += loss.item() * len(y)
        self.n += len(y)
        self.preds.append(out["logits"].argmax(-1))
        if "gate" in out:
            self.gates.append(out["gate"].detach().float())

    def result(self, dd: DeviceData, order: torch.Tensor, num_classes: int) -> dict:
        pred = torch.cat(self.preds)
        cm = confusion_matrix(dd.labels[order], pred, num_classes)
        res = {
            "loss": self.loss / max(self.n, 1),
            "f1": macro_f1(cm),
            "acc": accuracy(cm),
            "cm": cm,
            "pred": pred.cpu(),
            "order": order.cpu(),
        }
        if self.gates:
            res["gate"] = torch.cat(self.gates).cpu()
        return res


def _autocast(cfg: TrainConfig, device: torch.device):
    dtype = autocast_dtype(cfg.precision, device)
    # fp32 needs no context (autocast warns when handed float32 on a CPU)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def mixup_pairs(alpha: float, n: int, device: torch.device) -> tuple[float, torch.Tensor | None]:
    """mixup (Zhang et al. 2018): a blend weight lam ~ Beta(alpha, alpha), folded to >= 0.5 so that each
    clip stays the larger part of its blend (its own label the one the training metrics count), and
    the partner of each clip in the batch. (1.0, None) when mixup is off or the batch has one clip.
    Draws from torch's global RNG, which the run seeds and checkpoints."""
    if not alpha or n < 2:
        return 1.0, None
    lam = torch.distributions.Beta(alpha, alpha).sample().item()
    return max(lam, 1 - lam), torch.randperm(n).to(device)


def train_one_epoch(
    model, dd: DeviceData, idx: np.ndarray, cfg: TrainConfig, device: torch.device, optimizer,
    scheduler=None, weight: torch.Tensor | None = None, ema=None,
) -> dict:  # fmt: skip
    """One training pass over rows `idx` in a random order, `cfg.batch_size` at a time: forward under
    the run's autocast, cross-entropy with class `weight` and label smoothing, AdamW step, then the
    per-batch `scheduler` step and `ema` update. Returns the training loss, Macro-F1, accuracy, confusion
    matrix, predictions in the order trained (`order`) and the gate values when the model has one."""
    model.train()
    order = torch.as_tensor(idx, device=device)
    order = order[torch.randperm(len(order)).to(device)]  # global RNG: seeded and checkpointed
    tally, autocast = _Tally(), _autocast(cfg, device)
    for start in range(0, len(order), cfg.batch_size):
        a, v, y = dd.batch(order[start : start + cfg.batch_size])
        lam, partner = mixup_pairs(cfg.mixup, len(y), device)
        if partner is not None:
            a, v = (None if x is None else lam * x.float() + (1 - lam) * x[partner].float() for x in (a, v))
        with autocast:
            out = model(a, v)
        logits = out["logits"].float()
        loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=cfg.label_smoothing)
        if partner is not None:
            loss = lam * loss + (1 - lam) * F.cross_entropy(
                logits, y[partner], weight=weight, label_smoothing=cfg.label_smoothing
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} (lr {cfg.lr} too high?)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        tally.add(loss, out, y)
    return tally.result(dd, order, cfg.num_classes)


@torch.no_grad()
def evaluate(model, dd: DeviceData, idx: np.ndarray, cfg: TrainConfig, device: torch.device) -> dict:
    """`model` in eval mode over rows `idx` in order: plain cross-entropy, Macro-F1, accuracy, confusion
    matrix, predictions (`order`: the rows they belong to) and the gate values when the model has one."""
    model.eval()
    order = torch.as_tensor(idx, device=device)
    tally, autocast = _Tally(), _autocast(cfg, device)
    for start in range(0, len(order), cfg.batch_size):
        a, v, y = dd.batch(order[start : start + cfg.batch_size])
        with autocast:
            out = model(a, v)
        tally.add(F.cross_entropy(out["logits"].float(), y), out, y)
    return tally.result(dd, order, cfg.num_classes)


@torch.no_grad()
def model_costs(cfg: TrainConfig, data, which: tuple[str, ...] | list[str]) -> dict[str, float]:
    """What `cfg`'s model costs (emo.metric_names.COSTS, by name in `which`): its parameters, the FLOPs
    of one clip's forward pass (torch's FlopCounterMode: a multiply-add counts 2), and the milliseconds
    per clip in eval mode, one clip at a time, on cfg's device and precision (median of at least 20
    passes after 3 to warm up). Architecture only: a fresh model, no training."""
    from torch.utils.flop_counter import FlopCounterMode

    from emo.metric_names import COSTS

    unknown = [w for w in which if w not in COSTS]
    if unknown:
        raise ValueError(f"unknown cost(s) {', '.join(unknown)}; choose from {', '.join(COSTS)}")
    device = resolve_device(cfg.device)
    model = build_model(cfg, embedding_dims(cfg, data)).to(device).eval()
    r = int(rows_with_streams(data, cfg)[0])
    a = torch.from_numpy(np.array(data.audio[r : r + 1])).to(device) if "audio" in cfg.streams else None
    v = torch.from_numpy(np.array(data.video[r : r + 1])).to(device) if "video" in cfg.streams else None
    out: dict[str, float] = {}
    if "params" in which:
        out[COSTS["params"]] = float(sum(p.numel() for p in model.parameters()))
    autocast = _autocast(cfg, device)
    if "flops" in which:
        with FlopCounterMode(display=False) as counter, autocast:
            model(a, v)
        out[COSTS["flops"]] = float(counter.get_total_flops())
    if "latency" in which:
        times = []
        with autocast:
            for i in range(3 + 200):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                model(a, v)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= 3:
                    times.append(time.perf_counter() - t0)
                if len(times) >= 20 and sum(times) >= 0.2:
                    break
        out[COSTS["latency"]] = float(np.median(times) * 1000)
    return out


def feature_settings(data) -> dict:
    """The FeatureConfig (as a dict) `data` was made with: a FeatureSet's, or TrainingArrays' record of
    it; {} for data that does not say."""
    config = getattr(data, "config", None)
    return config.to_dict() if config is not None else dict(getattr(data, "features", None) or {})


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
    check_actors(getattr(data, "frontends", {}), cfg, dd.actors[split.val], dd.actors[split.test])
    train_actors = sorted({int(a) for a in dd.actors[split.train]})
    model = build_model(cfg, embedding_dims(cfg, dd)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(split.train) / cfg.batch_size)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    ema = weight_average(model, cfg, steps_per_epoch)
    evaluated = ema.module if ema is not None else model  # the weights validation and test score
    weight = class_weights(dd.labels_np[split.train], cfg.num_classes, device) if cfg.class_balance else None
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    progress = restore(ckpt, cfg, device, model, optimizer, scheduler, ema) if ckpt is not None else Progress()
    run = _start_wandb(cfg, ckpt, tracking, progress) if cfg.wandb else None
    try:
        best_unsaved = False  # a better epoch since the last checkpoint: best.pt is behind
        for epoch in range(progress.next_epoch, cfg.epochs):
            if progress.stopped_early(cfg.early_stopping_patience):
                break
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            tr = train_one_epoch(model, dd, split.train, cfg, device, optimizer, scheduler, weight, ema)
            va = evaluate(evaluated, dd, split.val, cfg, device)
            improved = progress.record(va["f1"], epoch, evaluated)
            progress.history.append(_epoch_metrics(epoch, tr, va, lr, progress, cfg, time.perf_counter() - t0))
            metrics = progress.history[-1]
            best_unsaved = best_unsaved or improved
            saved = ckpt is not None and (
                (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs or metrics["stopped_early"]
            )
            if saved:
                save_checkpoint(
                    ckpt, cfg, model, optimizer, scheduler, ema, progress, write_best=best_unsaved,
                    train_actors=train_actors, features=feature_settings(data),
                )  # fmt: skip
                best_unsaved = False
            if run is not None:
                run.log(metrics, step=epoch + 1)
            if report is not None:
                report(dict(metrics), str(ckpt) if saved else None)

        results = _results(cfg, device, split, progress)
        if evaluate_test:
            # Test once, with the best validation epoch's weights: test clips never choose anything.
            if progress.best_state is not None:
                model.load_state_dict(progress.best_state)
            results |= _test_results(evaluate(model, dd, split.test, cfg, device), dd, cfg)
        results["seconds"] = time.perf_counter() - t_start
        if run is not None:
            run.summary.update(wandb_summary(results, class_names(cfg.num_classes)))
        return results
    finally:
        # Also when the loop is cut short: a sweep scheduler stopping the trial ends the `report` call
        # with SystemExit, and the W&B run must still be closed and its files flushed.
        if run is not None:
            run.finish()


def _start_wandb(cfg: TrainConfig, ckpt: Path | None, tracking: dict | None, progress: Progress):
    from emo.tracking import start_run

    opts = {"project": cfg.wandb_project, "tags": (cfg.fusion,), "directory": ckpt, **(tracking or {})}
    if progress.wandb_id:  # resuming: continue the run this checkpoint logged to
        opts["run_id"] = progress.wandb_id
    run = start_run(cfg.to_dict(), **opts)
    progress.wandb_id = run.id
    return run


def _epoch_metrics(epoch: int, tr: dict, va: dict, lr: float, progress: Progress, cfg: TrainConfig,
                   seconds: float) -> dict:  # fmt: skip
    """One epoch's row of the history: what W&B logs, Tune receives and the checkpoint keeps."""
    metrics = {
        "epoch": epoch + 1,  # epochs completed: the unit ASHA counts in
        "train/loss": tr["loss"],
        "val/loss": va["loss"],
        "train/f1": tr["f1"],
        EPOCH_VAL_F1: va["f1"],
        "train/acc": tr["acc"],
        "val/acc": va["acc"],
        "lr": lr,
        OBJECTIVE: progress.best["f1"],
        "best/epoch": progress.best["epoch"] + 1,
        "time/epoch_s": seconds,
        # this was the last epoch: no val improvement for `patience`
        "stopped_early": progress.best["bad_epochs"] >= cfg.early_stopping_patience > 0,
    }
    if "gate" in tr:
        metrics["gate/train_mean"] = float(tr["gate"].mean())
        metrics["gate/val_mean"] = float(va["gate"].mean())
    return metrics


def _results(cfg: TrainConfig, device: torch.device, split, progress: Progress) -> dict:
    return {
        "fusion": cfg.fusion,
        "num_classes": cfg.num_classes,
        "epochs_run": len(progress.history),
        "stopped_early": progress.stopped_early(cfg.early_stopping_patience),
        "best_epoch": progress.best["epoch"] + 1,
        EPOCH_VAL_F1: progress.best["f1"],  # the best epoch's: the weights tested and kept
        "precision": "bf16" if autocast_dtype(cfg.precision, device) == torch.bfloat16 else "fp32",
        "split": {
            **split.sizes(),
            "train_actors": split.train_actors,
            "val_actors": split.val_actors,
            "test_actors": split.test_actors,
        },
        "history": progress.history,
    }


def _test_results(te: dict, dd: DeviceData, cfg: TrainConfig) -> dict:
    names = class_names(cfg.num_classes)
    out = {
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
        out["gate"] = {
            "test_mean": float(g.mean()),
            "test_per_class": {names[c]: float(g[y == c].mean()) for c in np.unique(y)},
        }
    return out


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


def _print_epoch(metrics: dict, _ckpt) -> None:
    gate = f"  gate {metrics['gate/val_mean']:.3f}" if "gate/val_mean" in metrics else ""
    print(
        f"epoch {metrics['epoch']:3d}  train loss {metrics['train/loss']:.3f} f1 {metrics['train/f1']:.3f}  "
        f"val loss {metrics['val/loss']:.3f} f1 {metrics['val/f1']:.3f} acc {metrics['val/acc']:.3f}  "
        f"lr {metrics['lr']:.2e}  {metrics['time/epoch_s']:.1f}s{gate}",
        flush=True,
    )


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    from emo.cli import Parser, add_dataclass_flags, add_feature_flags, add_flag, given, given_features

    parser = Parser(
        prog="python -m emo.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fields = add_dataclass_flags(parser, TrainConfig)
    add_flag(parser, "checkpoint_dir", help="save state here every epoch; resume if it holds a checkpoint")
    add_flag(parser, "results", help="write the final metrics to this JSON file")
    feature_fields = add_feature_flags(parser)
    args = parser.parse_args(argv)
    flags = {**given(args, fields), **given_features(args, feature_fields)}
    if flags.get("data_root") is None:  # the built-in demo set: its recipe, under the flags given
        flags = {**DEMO_TRAIN, **flags}
    return TrainConfig(**flags), args


def main(argv: list[str] | None = None) -> int:
    from emo.cli import fail
    from emo.data.catalog import DataRootError

    try:
        cfg, args = parse_config(argv)
        device = resolve_device(cfg.device)  # before the data: a wrong device fails in a second
        if cfg.video_weights == "imagenet" and "video" in cfg.streams and not cfg.frozen("video"):
            from emo.models.encoders import resnet18

            resnet18("imagenet")  # downloads the weights (once) before the data loads: no internet fails fast
        data = load_data(cfg)
        print(
            f"{cfg.fusion}: {len(data)} clips, {cfg.num_classes} classes, split {cfg.split_mode}, device {device}",
            flush=True,
        )
        if cfg.features:
            print("features: the preset's, with " + ", ".join(f"{k}={v}" for k, v in cfg.features.items()))
        for stream, rec in data.frontends.items():
            print(
                f"{stream}: {describe(rec)}; embeddings {'x'.join(map(str, getattr(data, stream).shape[1:]))} "
                f"per clip, cached in {rec['path']}",
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
