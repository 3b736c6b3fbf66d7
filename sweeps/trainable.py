"""The Ray Tune trainable: one trial = one `emo.train.fit` call, reporting once per epoch.

No training code lives here. The trial builds its TrainConfig from the Tune config, restores fit's
checkpoint folder from Tune's last checkpoint (after a worker died or the driver restarted), and
passes a `report` that hands every epoch's metrics and checkpoint to `ray.tune.report`. When ASHA
stops the trial, that `tune.report` call ends the trial's thread (SystemExit): nothing after the
last report is guaranteed to run, which is why W&B is written by the driver (sweeps.tracking).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from ray import tune

from emo.config import TrainConfig
from emo.metric_names import OBJECTIVE
from emo.paths import scratch_dir
from search_spaces.common import plain
from sweeps.cluster import torch_threads_from_ray

TIME_ATTR = "epoch"  # ASHA's time unit: epochs completed (fit's metric of that name)


def train_trial(config: dict, data, costs: tuple[str, ...] = ()) -> None:
    """Tune function trainable; `data` (TrainingArrays) arrives through `tune.with_parameters`, a
    read-only view of the one copy in the object store. `costs`: what the model costs
    (emo.train.model_costs), measured once before training and reported with every epoch, for a
    multi-objective sweep."""
    from emo.train import fit, model_costs

    t0 = time.perf_counter()
    # Ray Train logs every persisted checkpoint at INFO, i.e. one line per epoch per trial.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    ctx = tune.get_context()
    torch_threads_from_ray()

    cfg = TrainConfig(**{k: plain(v) for k, v in config.items()})
    measured = model_costs(cfg, data, costs) if costs else {}
    # fit's own checkpoint folder: local scratch, outside the trial's working directory. Tune's
    # checkpoint of the last epoch is copied in to resume; each epoch's goes back out via report.
    # A trial whose worker is killed leaves its scratch behind (a RAVDESS-size gated checkpoint is
    # hundreds of MB); the next trial to start on the node removes it (emo.paths.scratch_dir).
    with scratch_dir(f"{ctx.get_trial_id()}-") as scratch:
        last = tune.get_checkpoint()
        if last is not None:
            last.to_directory(str(scratch))
        _fit(fit, cfg, data, scratch, t0, measured)


def _fit(fit, cfg: TrainConfig, data, scratch: Path, t0: float, costs: dict | None = None) -> None:
    """emo.train.fit with a `report` that hands every epoch to Tune, and divergence as a result."""
    first = [True]
    last_metrics: dict = {}

    def report(metrics: dict, ckpt_dir: str | None) -> None:
        if first[0]:
            # Trial start to the first epoch's start: data to the device, model build, restore.
            metrics["time/setup_s"] = time.perf_counter() - t0 - metrics["time/epoch_s"]
            first[0] = False
        metrics.update(costs or {})
        last_metrics.clear()
        last_metrics.update(metrics)
        # Every epoch reports (ASHA decides on each); the checkpoint comes every `checkpoint_every`.
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    try:
        # W&B is written by the driver (sweeps.tracking.WandbTrials), from these same reports. No
        # test pass: nothing in a sweep reads a trial's test score (configurations are chosen on
        # validation; the report tests the chosen ones over actor folds), and on the demo set it cost
        # each trial about 1.5 s after its last report, which the sweep waited for.
        fit(dataclasses.replace(cfg, wandb=False), data, report=report, checkpoint_dir=scratch, evaluate_test=False)
    except FloatingPointError as e:
        # The loss diverged (NaN or inf): this configuration cannot train. It ends as a result, not
        # an error: an error would be retried by FailureConfig from the last checkpoint, where the
        # same configuration diverges again, max_failures times over. The searcher is told it was
        # pruned (sweeps.search), results.parquet says `diverged` with this reason.
        tune.report(diverged_result(last_metrics, str(e)))


def checkpoint_epoch(trial) -> int:
    """The epoch of a Tune trial's latest checkpoint (what a retry or a resume continues from), from
    the metrics Tune keeps with it; 0 when it has none. With --checkpoint_every N it can be up to N-1
    epochs behind the trial's last result."""
    latest = trial.latest_checkpoint_result
    if latest is None or latest.checkpoint is None:
        return 0
    return int((latest.metrics or {}).get(TIME_ATTR) or 0)


def diverged_result(last: dict, reason: str) -> dict:
    """The final result of a diverged trial: its last epoch's metrics (or epoch 0 and score 0 when it
    diverged in the first), flagged with `diverged` = the reason."""
    out = {k: v for k, v in last.items() if k != "time/setup_s"}
    out.setdefault(TIME_ATTR, 0)
    out.setdefault(OBJECTIVE, 0.0)
    out["diverged"] = reason
    return out
