"""The Tune layer: one method's experiment built from a `SweepSpec`: the searcher (Optuna TPE or
random, through `sweeps.search`), the scheduler (ASHA or FIFO), the trainable (`sweeps.trainable`)
with its resources, and starting or restoring the experiment.

Below the entry points (`sweeps.run`, `sweeps.report`), above `spec`, `store` and `cluster`.
"""

from __future__ import annotations

from pathlib import Path

from emo.config import TrainConfig
from emo.metric_names import COSTS, MODE, OBJECTIVE
from sweeps import cluster, store
from sweeps.spec import SweepSpec


class ResumeError(ValueError):
    """A sweep's Tune state in storage cannot be resumed (`--resume` says why)."""


def max_concurrent(sweep: SweepSpec, gpus: float, cpus: float) -> int:
    """Trials at a time: --max-concurrent, else as many as the cluster's resources hold now."""
    import ray

    if sweep.max_concurrent:
        return min(sweep.max_concurrent, sweep.num_samples)
    return cluster.trials_that_fit(ray.cluster_resources(), gpus, cpus, sweep.num_samples)


def searcher(sweep: SweepSpec, method: str, sp, seed: int, stage: int = 0):
    """Optuna through Tune: TPE (or random) over the method's space, the training guide's recipe as the
    first trial, pruned trials told to Optuna as pruned (sweeps.search), the study named `method` in
    the sweep's journal (sweeps.study)."""
    import optuna

    from sweeps import study
    from sweeps.search import PrunedAwareOptunaSearch

    n = sweep.num_samples
    if sweep.search == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif sweep.search == "nsga2":
        # a generation of a quarter of the budget (at least 4): Optuna's default of 50 is more than most sweeps
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, n // 4))
    else:
        # Optuna's default of 10 random start-up trials would leave a small sweep with no TPE at all.
        # TPE is multi-objective too (MOTPE) when there are costs.
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n // 4)), constant_liar=True)
    metric, mode = objectives(sweep)
    return PrunedAwareOptunaSearch(
        metric=metric,
        mode=mode,
        sampler=sampler,
        points_to_evaluate=[sp.recipe] if sp.params else None,  # the training guide's recipe first
        max_epochs=sweep.max_epochs,
        journal=str(study.journal_path(sweep)),
        identity=study.identity(sweep),
        study_name=method,
        experiment=store.experiment_name(method, stage),
    )


def objectives(sweep: SweepSpec) -> tuple[str | list[str], str | list[str]]:
    """The searcher's metric(s) and mode(s): OBJECTIVE alone, or OBJECTIVE (max) and each cost (min)."""
    if not sweep.costs:
        return OBJECTIVE, MODE
    return [OBJECTIVE, *(COSTS[c] for c in sweep.costs)], [MODE, *("min" for _ in sweep.costs)]


def optuna_space(sp) -> dict:
    """A method's search space as OptunaSearch gives it to Optuna (distributions by name)."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch.convert_search_space(sp.param_space())


def scheduler(sweep: SweepSpec):
    """ASHA over epochs (grace period and reduction factor from the spec), or FIFO: every trial runs out."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from sweeps.trainable import TIME_ATTR

    if sweep.scheduler != "asha":
        return FIFOScheduler()
    # With costs, the searcher's metric is a list, which Tune's TuneConfig cannot take: ASHA is then
    # given its own (validation Macro-F1; Optuna has no multi-objective pruning, optuna#3450).
    own = {"metric": OBJECTIVE, "mode": MODE} if sweep.costs else {}
    return ASHAScheduler(
        **own,
        time_attr=TIME_ATTR,
        max_t=sweep.max_epochs,
        grace_period=sweep.grace_period,
        reduction_factor=sweep.reduction_factor,
    )


def trainable(data_ref, cpus: float, gpus: float, costs: tuple[str, ...] = ()):
    """The trial function with the data (one object-store copy, mapped by every trial), the costs it
    measures and reports (emo.train.model_costs), and its resources."""
    from ray import tune

    from sweeps.trainable import train_trial

    trial = tune.with_parameters(train_trial, data=data_ref, costs=tuple(costs))
    return tune.with_resources(trial, {"cpu": cpus, "gpu": gpus})


def trial_name(trial) -> str:
    """The trial's name and folder: `store.trial_folder`."""
    return store.trial_folder(trial.config.get("fusion", "trial"), trial.trial_id)


def run_method(method: str, sweep: SweepSpec, trial, resume: bool, stage: int = 0):
    """One Tune experiment (STORAGE/NAME/METHOD, or METHOD.growN for a growth's trials: `stage`) of
    `trial` (see `trainable`): start it, or restore it with searcher and scheduler state, finished
    trials kept and unfinished ones continued from their checkpoints. Every stage's searcher works on
    the method's one study (sweeps.study), so a growth's proposals learn from every earlier trial.
    Returns Tune's result grid and the method's search space. ResumeError when the stored state
    cannot be resumed."""
    from ray import tune

    from search_spaces import sweep_space
    from sweeps.progress import Progress

    sp = sweep_space(method, sweep.trial_fixed, sweep.size)
    experiment = store.experiment_name(method, stage)
    exp_path = f"{store.sweep_dir(sweep.storage, sweep.name)}/{experiment}"
    if resume and "://" not in exp_path and Path(exp_path).is_dir():
        # Tune copies its state files into storage non-atomically: one cut off by the crash would
        # make Tune start the experiment over (sweeps.tune_state).
        from sweeps.tune_state import StateError, repair

        try:
            for line in repair(exp_path, experiment):
                print(f"[{experiment}] {line}", flush=True)
        except StateError as e:
            raise ResumeError(str(e)) from None
    if resume and tune.Tuner.can_restore(exp_path):
        print(f"[{experiment}] resuming {exp_path}", flush=True)
        tuner = tune.Tuner.restore(exp_path, trial, resume_unfinished=True, resume_errored=True)
        return tuner.fit(), sp
    seed = int(sweep.fixed.get("seed", 0)) + stage  # a growth draws anew, not the first run's draws again
    n = sweep.stage_sizes[stage]
    callbacks = [Progress(experiment, n, sweep.max_epochs)]
    if "://" in sweep.storage:
        from sweeps.search import UploadJournal

        callbacks.append(UploadJournal(sweep))
    if sweep.fixed.get("wandb"):
        from sweeps.tracking import WandbTrials

        project = sweep.fixed.get("wandb_project") or TrainConfig().wandb_project
        staging = str(Path.home() / ".cache" / "emo-sweeps" / "wandb")  # for s3:// storage only
        callbacks.append(WandbTrials(sweep.name, method, project, staging=staging))
    tuner = tune.Tuner(
        trial,
        param_space=sp.param_space(),
        tune_config=tune.TuneConfig(
            metric=None if sweep.costs else OBJECTIVE,  # with costs: the searcher's and ASHA's own
            mode=None if sweep.costs else MODE,
            search_alg=searcher(sweep, method, sp, seed, stage),
            scheduler=scheduler(sweep),
            num_samples=n,
            max_concurrent_trials=min(sweep.concurrent or n, n),
            # A fresh worker per trial costs ~14 s on 2 cores (torch import, first model build);
            # reusing workers took 8 short demo trials from 58 s to 12 s there.
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=store.sweep_dir(sweep.storage, sweep.name),
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            # Keep the newest checkpoint only: it is all a retry or a resume needs (state.pt + best.pt).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=callbacks,
            verbose=0,  # Progress prints one line per epoch instead of Ray's wide status tables
        ),
    )
    return tuner.fit(), sp
