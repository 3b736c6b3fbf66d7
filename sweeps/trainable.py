"""The Ray Tune trainable: one trial = one `emo.train.fit` call, reporting once per epoch.

No training code lives here. The trial builds its TrainConfig from the Tune config, restores fit's
checkpoint folder from Tune's last checkpoint (after a worker died or the driver restarted), and
passes a `report` that hands every epoch's metrics and checkpoint to `ray.tune.report`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import ray
from ray import tune

from emo.config import TrainConfig

# The number the searcher maximises and ASHA compares at its rungs: the trial's best validation
# Macro-F1 so far. It is the score of the weights fit keeps (best.pt) and evaluates on test, and,
# unlike the last epoch's val/f1, does not punish a trial for one noisy epoch on a small val set.
OBJECTIVE = "best/val_f1"
TIME_ATTR = "epoch"  # ASHA's time unit: epochs completed (fit's metric of that name)


def wandb_run_id(sweep: str, trial_id: str) -> str:
    """W&B run ids allow letters, digits, '-' and '_' (at most 64 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sweep}-{trial_id}")[-64:]


def train_trial(config: dict, data, sweep: str = "") -> None:
    """Tune function trainable; `data` (TrainingArrays) arrives through `tune.with_parameters`, a
    read-only view of the one copy in the object store."""
    import torch

    from emo.train import fit

    t0 = time.perf_counter()
    # Ray Train logs every persisted checkpoint at INFO, i.e. one line per epoch per trial.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    ctx = tune.get_context()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))  # a reused worker keeps torch; threads follow the trial's CPUs

    cfg = TrainConfig(**{k: v.item() if hasattr(v, "item") else v for k, v in config.items()})
    if cfg.wandb:
        # W&B's per-run banner and summary, times every trial, would bury the sweep's own progress;
        # the driver prints where the runs are and how to sync them at the end.
        os.environ.setdefault("WANDB_SILENT", "true")
    if cfg.wandb and "WANDB_MODE" not in os.environ:
        from emo.tracking import wandb_mode

        os.environ["WANDB_MODE"] = wandb_mode()  # before wandb is imported in this worker

    # fit's own checkpoint folder: local scratch, outside the trial's working directory (which is
    # synced to storage as artifacts). Tune's checkpoint of the last epoch is copied in to resume.
    scratch = Path(tempfile.mkdtemp(prefix=f"emo-{ctx.get_trial_id()}-"))
    last = tune.get_checkpoint()
    if last is not None:
        last.to_directory(str(scratch))

    first = [True]

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        if first[0]:
            # Trial start to the first epoch's start: data to the device, model build, restore.
            metrics["time/setup_s"] = time.perf_counter() - t0 - metrics["time/epoch_s"]
            first[0] = False
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))

    extra = None
    if cfg.wandb:
        extra = {
            "name": ctx.get_trial_name(),
            "group": sweep or ctx.get_experiment_name(),
            "tags": (cfg.fusion, "sweep"),
            # The trial's working directory (Tune changes into it): one fixed folder per trial, so a
            # reused worker cannot mix two trials' runs up, synced into the trial's folder in storage
            # next to its results (SyncConfig(sync_artifacts=True) in sweeps.run).
            "directory": os.getcwd(),
            # A run id derived from the trial: a trial restarted before its first checkpoint continues
            # its W&B run instead of opening a second one.
            "run_id": wandb_run_id(sweep or ctx.get_experiment_name(), ctx.get_trial_id()),
        }
    try:
        fit(cfg, data, report=report, checkpoint_dir=scratch, tracking=extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if cfg.wandb:
            # Stop this worker's W&B service now, while it is alive: left to the interpreter's exit,
            # its teardown races Ray killing the worker at the end of the sweep and prints a
            # ConnectionResetError traceback. The next trial on a reused worker starts a new one.
            import wandb

            wandb.teardown()
