"""Ray Tune's OptunaSearch, telling Optuna which trials ASHA pruned, with the study kept in the
sweep's journal (sweeps.study).

Stock OptunaSearch reports a trial ASHA stopped at epoch 2 as COMPLETE with its epoch-2 score, as if
that were what the configuration can do. Optuna's TPE has a notion for exactly this case: a PRUNED
trial carries its intermediate values, and TPE ranks pruned trials below completed ones, the ones
that got further ahead of the ones stopped sooner. So a trial stopped by the scheduler is told as
PRUNED; a trial that ran to max_t, or ended by fit's own early stopping, is COMPLETE with its score.
A trial whose loss diverged (sweeps.trainable) is PRUNED too: TPE ranks it below every trial that
trained, the stronger signal for "not there" than a FAIL, which TPE ignores.

Intermediate values are the objective (emo.metric_names.OBJECTIVE, the best epoch so far: what ASHA
ranks) at step = epoch, not Tune's training_iteration, which a trial retried from an earlier
checkpoint counts on from where it was. A multi-objective study (Macro-F1 and costs) has none:
Optuna does not keep them for more than one objective.

With a journal, Tune's pickles of the searcher (its experiment state, what --resume restores) keep
the study's name and trial numbers, not the storage: a restored searcher reopens the journal its
driver opened (sweeps.study.current), wherever the sweep folder is now.
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from sweeps import study
from sweeps.trainable import TIME_ATTR

logger = logging.getLogger(__name__)


class PrunedAwareOptunaSearch(OptunaSearch):
    def __init__(
        self,
        *args,
        max_epochs: int,
        journal: str | None = None,
        identity: dict | None = None,
        experiment: str = "",
        **kwargs,
    ):
        self._max_epochs = max_epochs
        self._experiment = experiment  # the Tune experiment (sweeps.store.experiment_name) asking
        self._journal = journal  # sweeps.study's journal file; None: an in-memory study
        self._identity = identity or {}  # sweeps.study.identity of the sweep
        self._reported: dict[str, int] = {}  # trial id -> last epoch reported as an intermediate value
        if journal:
            kwargs["storage"] = study.storage(journal)
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode) -> None:
        if self.__dict__.get("_journal") and self._has_trials():
            # The study ran before (a sweep grown, an experiment started over): its recipe trial did too.
            self._points_to_evaluate = []
        super()._setup_study(mode)
        if self.__dict__.get("_journal"):
            if study.IDENTITY not in self._ot_study.user_attrs:
                space = study.space_json(self._space) if isinstance(self._space, dict) else None
                self._ot_study.set_user_attr(study.IDENTITY, {**self._identity, "space": space})
                # the dashboard's axes and columns say best/val_f1, cost/params, ... not "Objective 0"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ExperimentalWarning
                    self._ot_study.set_metric_names(self.metric if isinstance(self.metric, list) else [self.metric])
            self._fail_lost(known=set())

    def _has_trials(self) -> bool:
        import optuna

        try:
            found = optuna.load_study(study_name=self._study_name, storage=self._storage)
            return bool(found.get_trials(deepcopy=False))
        except KeyError:  # no such study yet
            return False

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if self.__dict__.get("_journal") and trial_id in self._ot_trials:
            # which Tune trial (results.parquet's trial_id) and experiment each Optuna trial is
            ot = self._ot_trials[trial_id]
            if "trial_id" not in ot.user_attrs:
                ot.set_user_attr("trial_id", trial_id)
                ot.set_user_attr("experiment", self._experiment)
        return config

    def _fail_lost(self, known: set[int]) -> None:
        """Trials of this experiment the study holds as running that no Tune trial continues (asked just
        before the driver stopped, after the last saved experiment state) end as FAIL, marked lost:
        otherwise they would stay running in the study and the dashboard for ever. Another
        experiment's running trials (a growth of the sweep, restored after this one) are its own."""
        st = self._ot_study._storage
        for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t._trial_id not in known and t.user_attrs.get("experiment", self._experiment) == self._experiment:
                st.set_trial_user_attr(t._trial_id, study.LOST, "asked before the driver stopped; never ran")
                st.set_trial_state_values(t._trial_id, TrialState.FAIL)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list):
            return  # Optuna keeps no intermediate values for a multi-objective study
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get(TIME_ATTR)
        if value is None or step is None or step <= self._reported.get(trial_id, 0):
            return  # a retried trial trains again epochs it reported already
        self._reported[trial_id] = int(step)
        self._ot_trials[trial_id].report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error:  # Tune hands a trial's last result to this call, not to on_trial_result
            self.on_trial_result(trial_id, result)
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

    # Tune pickles the searcher with the Tuner and saves its state with the experiment (`save`).
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if state.get("_journal"):
            state["_had_study"] = self._ot_study is not None
            state["_storage"] = state["_ot_study"] = None
            state["_ot_trials"] = {tid: t._trial_id for tid, t in self._ot_trials.items()}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_reported", {})
        self.__dict__.setdefault("_experiment", "")
        if not state.get("_journal"):
            return  # an in-memory study pickles whole (and sweeps started before the journal)
        import optuna

        self._journal = study.current(self._identity, self._journal)
        self._storage = study.storage(self._journal)
        if not state.get("_had_study"):
            return
        self._ot_study = optuna.load_study(
            study_name=self._study_name, storage=self._storage, sampler=self._sampler, pruner=optuna.pruners.NopPruner()
        )
        ids = self._ot_trials
        self._ot_trials = {tid: optuna.trial.Trial(self._ot_study, i) for tid, i in ids.items()}
        self._fail_lost(known=set(ids.values()))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if not isinstance(state, dict):
            super().restore(checkpoint_path)
            return
        self.__setstate__(state)


class UploadJournal(Callback):
    """s3:// storage: the driver's journal copied to STORAGE/NAME/optuna.journal when a trial ends,
    when the experiment ends, and at most every `every_s` seconds between (sweeps.study.upload)."""

    def __init__(self, sweep, every_s: float = 60.0):
        self.sweep, self.every_s, self._last = sweep, every_s, 0.0

    def _upload(self) -> None:
        try:
            study.upload(self.sweep)
        except OSError as e:  # the next upload tries again; the local journal has everything
            logger.warning("could not copy the Optuna journal to %s: %s", self.sweep.storage, e)
        self._last = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.monotonic() - self._last >= self.every_s:
            self._upload()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._upload()

    def on_experiment_end(self, trials, **info):
        self._upload()
