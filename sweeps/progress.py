"""One line per epoch and per finished trial, instead of Ray's wide status tables."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ray.tune import Callback

from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE
from sweeps.trainable import checkpoint_epoch

# trial id -> seconds from the trial's start (as the driver saw it) to its first epoch's start, for
# the trials this driver process saw start. Module-level: a Tuner restored after a crash brings a
# pickled copy of its callbacks, and that copy must still feed the same table.
START_OVERHEAD_S: dict[str, float] = {}


class Progress(Callback):
    def __init__(self, method: str, num_samples: int, max_epochs: int):
        self.method, self.n, self.max_epochs = method, num_samples, max_epochs
        self.t0 = time.time()
        self.done = 0
        self.started: dict[str, float] = {}

    def _head(self, trial) -> str:
        return f"[{self.method} {time.time() - self.t0:6.0f}s] {trial.trial_id}"

    def setup(self, **info):
        self.t0 = time.time()  # also after a restore: the pickled t0 belongs to the crashed driver

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in START_OVERHEAD_S and trial.trial_id in self.started:
            # Trial start (as the driver sees it) to its first epoch's start: worker start or reuse,
            # data from the object store to the device, model build. What Ray and setup cost per trial.
            took = time.time() - self.started[trial.trial_id] - result.get("time/epoch_s", 0.0)
            START_OVERHEAD_S[trial.trial_id] = took
        print(
            f"{self._head(trial)} epoch {result.get('epoch', '?')}/{self.max_epochs}  "
            f"val/f1 {result.get(EPOCH_VAL_F1, float('nan')):.3f}  best {result.get(OBJECTIVE, float('nan')):.3f}  "
            f"{result.get('time/epoch_s', float('nan')):.1f}s",
            flush=True,
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        last = trial.last_result or {}
        epochs = last.get("epoch", 0)
        if last.get("diverged"):
            how = f"diverged ({last['diverged']})"
        elif epochs >= self.max_epochs:
            how = "ran all epochs"
        elif last.get("stopped_early"):
            how = "early-stopped (no val improvement)"
        else:
            how = "pruned by the scheduler"
        print(
            f"{self._head(trial)} finished ({self.done}/{self.n}): {how} after {epochs}, "
            f"best val/f1 {last.get(OBJECTIVE, float('nan')):.3f}",
            flush=True,
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"{self._head(trial)} {recover_message(trial)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        print(f"{self._head(trial)} failed: {trial.error_file or 'see the trial folder'}", flush=True)


def raised(error_file: str | None) -> str | None:
    """The exception a trial's own code raised last ("ValueError: ..."), from Tune's error file; None
    when its worker died instead (a lost node, a crash, the OOM killer), or there is no file. The file
    holds one block per failure, "Failure # N (occurred at ...)" then the error: for an exception in
    the trainable Ray's `ray::ImplicitFunc.train() (pid=...)` and the traceback, for a dead worker an
    actor error ("The actor died ...")."""
    try:
        text = re.sub(r"\x1b\[[0-9;]*m", "", Path(error_file).read_text(errors="replace"))
    except (OSError, TypeError):
        return None
    block = [x for x in text.split("Failure # ")[-1].splitlines()[1:] if x.strip()]
    return block[-1].strip() if block and block[0].lstrip().startswith("ray::") else None


def recover_message(trial) -> str:
    """Tune restarts a failed trial from its latest checkpoint, on any node with room: after its worker
    died (its node was lost or preempted, or it crashed) or its code raised (the error is named: the
    retry will likely raise it again). The epoch is the checkpoint's, not the last reported one: with
    --checkpoint_every N the retry repeats the epochs after it."""
    epoch = checkpoint_epoch(trial)
    where = f"its epoch-{epoch} checkpoint" if epoch else "the start (no checkpoint yet)"
    error = raised(trial.error_file)
    what = f"raised {error}" if error else "worker lost"
    return (
        f"{what}: retrying from {where} "
        f"(failure {trial.num_failures} of at most {trial.max_failures}): "
        f"{trial.error_file or 'see the trial folder'}"
    )
