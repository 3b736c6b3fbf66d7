"""A training run's checkpoints: what `emo.train.fit` saves after an epoch and how a run resumes from it.

A checkpoint folder holds `state.pt` (everything a resume needs: weights, optimizer, scheduler, the
weight average, every RNG, the history and the configuration) and `best.pt` (the weights of the best
validation epoch). Both are written atomically and read with `weights_only=True`.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emo.config import OPERATIONAL_FIELDS, TrainConfig
from emo.paths import atomic_write

STATE_FILE = "state.pt"  # everything needed to resume, written every `checkpoint_every` epochs
BEST_FILE = "best.pt"  # the model weights at the best validation epoch

# Settings a run may resume under although it was saved with others: none of them changes what the
# epochs already run computed.
_RESUME_MAY_DIFFER = {"epochs", "device", "early_stopping_patience"} | OPERATIONAL_FIELDS


@dataclass
class Progress:
    """Where a run stands after its last completed epoch, beside the tensors: the per-epoch metrics, the
    best validation epoch (its Macro-F1, 0-based index, and the epochs since) and its weights on the CPU,
    and the W&B run it logs to."""

    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"f1": -1.0, "epoch": -1, "bad_epochs": 0})
    best_state: dict | None = None
    wandb_id: str | None = None

    @property
    def next_epoch(self) -> int:
        return len(self.history)

    def record(self, val_f1: float, epoch: int, weights) -> bool:
        """Count validation epoch `epoch`; a better Macro-F1 than the best so far keeps a CPU copy of
        `weights` (a model) and returns True."""
        if val_f1 > self.best["f1"]:
            self.best = {"f1": val_f1, "epoch": epoch, "bad_epochs": 0}
            self.best_state = cpu_weights(weights)
            return True
        self.best["bad_epochs"] += 1
        return False

    def stopped_early(self, patience: int) -> bool:
        """No better validation epoch for `patience` epochs (0: never stops early)."""
        return bool(self.history) and self.best["bad_epochs"] >= patience > 0


def cpu_weights(model) -> dict:
    """A copy of the model's weights on the CPU: what a run keeps of its best validation epoch."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


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


def save_checkpoint(
    ckpt: Path, cfg: TrainConfig, model, optimizer, scheduler, ema, progress: Progress, write_best: bool,
    train_actors: list[int] | None = None, features: dict | None = None,
) -> None:  # fmt: skip
    """After an epoch: `progress.best_state` to best.pt when `write_best` (the best epoch changed since
    the last save), then everything a resume needs to state.pt, the actors the run trains on (a head
    over this run's frozen encoder must not be validated or tested on them) and the FeatureConfig of its
    data (a head must feed the encoder the same features)."""
    if write_best and progress.best_state is not None:
        _atomic_save(progress.best_state, ckpt / BEST_FILE)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": progress.next_epoch - 1,  # the last completed epoch, 0-based
        "best": progress.best,
        "history": progress.history,
        "rng": _rng_state(),
        "config": cfg.to_dict(),
        "wandb_id": progress.wandb_id,
        "split": {"train_actors": list(train_actors or [])},
        "features": dict(features or {}),
    }
    _atomic_save(state, ckpt / STATE_FILE)


def restore(ckpt: Path, cfg: TrainConfig, device: torch.device, model, optimizer, scheduler, ema) -> Progress:
    """Resume from `ckpt` when it holds a checkpoint: load the saved state into the given objects, set
    every RNG, and return the run's progress. A folder without one is created and starts a fresh run.
    A checkpoint saved with settings that change what the run computes is refused (ValueError)."""
    if not (ckpt / STATE_FILE).exists():
        ckpt.mkdir(parents=True, exist_ok=True)
        return Progress()
    # On the CPU (load_checkpoint): the RNG states must stay CPU tensors; load_state_dict moves weights.
    state = load_checkpoint(ckpt / STATE_FILE)
    # A checkpoint from before `precision` existed trained in bf16 on CUDA and in fp32 elsewhere.
    state["config"].setdefault("precision", "auto" if device.type == "cuda" else "fp32")
    state["config"].setdefault("features", {})  # saved before TrainConfig.features: the preset's
    check_resumable(cfg, state["config"])
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    _set_rng_state(state["rng"])
    return Progress(state["history"], state["best"], load_checkpoint(ckpt / BEST_FILE), state.get("wandb_id"))


def check_resumable(cfg: TrainConfig, saved: dict) -> None:
    """ValueError naming every setting that differs from the checkpoint's `saved` configuration in a way
    that changes what the run computes, and the flag to resume with."""
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


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
