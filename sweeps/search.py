"""Ray Tune's OptunaSearch, telling Optuna which trials ASHA pruned.

Stock OptunaSearch reports a trial ASHA stopped at epoch 2 as COMPLETE with its epoch-2 score, as if
that were what the configuration can do. Optuna's TPE has a notion for exactly this case: a PRUNED
trial carries its intermediate values, and TPE ranks pruned trials below completed ones, the ones
that got further ahead of the ones stopped sooner. So a trial stopped by the scheduler is told as
PRUNED; a trial that ran to max_t, or ended by fit's own early stopping, is COMPLETE with its score.
A trial whose loss diverged (sweeps.trainable) is PRUNED too: TPE ranks it below every trial that
trained, the stronger signal for "not there" than a FAIL, which TPE ignores.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class PrunedAwareOptunaSearch(OptunaSearch):
    def __init__(self, *args, max_epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pruned = (
            not error
            and result is not None
            and trial_id in self._ot_trials
            and trial_id not in self._completed_trials
            and (
                bool(result.get("diverged"))
                or (result.get("epoch", self._max_epochs) < self._max_epochs and not result.get("stopped_early", False))
            )
        )
        if not pruned:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        try:  # the intermediate values were reported epoch by epoch in on_trial_result
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001 - OptunaSearch itself only warns here
            logger.warning(exc)
        self._completed_trials.add(trial_id)
