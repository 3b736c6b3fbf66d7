"""Which configurations the report confirms: reading the sweeps, choosing each method's best trial
by validation Macro-F1, and planning the confirmation runs (method x variant x fold x seed)."""

from __future__ import annotations

import dataclasses
import json

from emo.cli import fail
from emo.config import TrainConfig
from emo.metric_names import COSTS, OBJECTIVE_COLUMN
from sweeps import store
from sweeps.report import stats as A
from sweeps.results import cost_column
from sweeps.spec import report_folds_seeds

COST_COLUMNS = tuple(cost_column(name) for name in COSTS.values())

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def load_sweep(run_dir: str) -> dict:
    """sweep.json and results.parquet of one sweep folder (local or s3://), or a one-line error."""
    try:
        sweep = store.read_sweep(run_dir)
    except store.NotASweep:
        fail(f"{run_dir} is not a sweep folder (no {store.SWEEP_FILE}); pass STORAGE/NAME of a sweep")
    except ValueError as e:
        fail(str(e))
    resume = f"python -m sweeps.run --resume --name {sweep.name}"
    try:
        trials = store.read_results(run_dir)
    except store.NotASweep:
        fail(f"{run_dir} has no {store.RESULTS_FILE}: the sweep has not finished; finish it with: {resume}")
    except ValueError as e:
        fail(f"{e}; write it again from the trials with: {resume}")
    return {"dir": run_dir, "sweep": sweep, "trials": trials}


def same_data(sweeps_: list[dict]) -> None:
    keys = (
        "data_root",
        "preset",
        "num_classes",
        "video_backbone",
        "audio_frontend",
        "audio_encoder",
        "video_frontend",
        "video_encoder",
        "features",
    )

    def setting(fixed: dict, key: str):
        return (fixed.get(key) or {}) if key == "features" else fixed.get(key)  # no features given: {}

    first = sweeps_[0]["sweep"].fixed
    for s in sweeps_[1:]:
        other = s["sweep"].fixed
        diff = [k for k in keys if setting(first, k) != setting(other, k)]
        if diff:
            shown = ", ".join(f"{k}: {setting(first, k)!r} vs {setting(other, k)!r}" for k in diff)
            fail(f"{sweeps_[0]['dir']} and {s['dir']} ran on different settings ({shown}); report them separately")


def select(sweeps_: list[dict]) -> tuple[dict, dict]:
    """Per method: the trial with the best validation Macro-F1 over every given sweep (errors and
    unscored trials excluded), and every scored trial (for hyperparameter importance)."""
    from search_spaces import sweep_space

    best: dict[str, dict] = {}
    trials: dict[str, list[dict]] = {}
    for s in sweeps_:
        fixed = s["sweep"].fixed
        for t in s["trials"]:
            m, score = t["method"], t[OBJECTIVE_COLUMN]
            if t["status"] == "error" or score is None:
                continue
            diverged = t["status"] == "diverged"  # scored until it diverged: importance yes, selection no
            # The searched values, from the trial's full config (the config column): it holds every key
            # of every method, whatever the union of the config/ columns holds.
            config = json.loads(t["config"])
            params = {k: config.get(k) for k in sweep_space(m, fixed, s["sweep"].size).params}
            costs = {c: t[c] for c in COST_COLUMNS if t.get(c) is not None}
            trials.setdefault(m, []).append(
                {"params": params, "value": score, "sweep": s["sweep"].name, "trial_id": t["trial_id"],
                 "costs": costs, "pareto": bool(t.get("pareto")), "config": config}
            )  # fmt: skip
            if not diverged and (m not in best or score > best[m][OBJECTIVE_COLUMN]):
                best[m] = {
                    "sweep": s["sweep"].name,
                    "trial_id": t["trial_id"],
                    OBJECTIVE_COLUMN: score,
                    "best_epoch": t["best_epoch"],
                    "status": t["status"],
                    "epochs": t["epochs"],
                    "config": config,
                    "searched": params,
                }
    return best, trials


def front(trials: dict, best: dict) -> dict[str, list[dict]]:
    """Per method of a multi-objective sweep: its Pareto front (results.parquet's `pareto`), best
    validation Macro-F1 first, each with the report variant that confirms it (`best` for the selected
    trial, `front ID` for the others). Empty for single-objective sweeps."""
    out = {}
    for m, ts in trials.items():
        on = sorted((t for t in ts if t["pareto"]), key=lambda t: -t["value"])
        if on and m in best:
            out[m] = [{**t, "variant": A.BEST if t["trial_id"] == best[m]["trial_id"] else A.FRONT + t["trial_id"]}
                      for t in on]  # fmt: skip
    return out


def plan(best: dict, sweeps_: list[dict], folds: int, seeds: int, fronts: dict | None = None) -> list[dict]:
    """Every confirmation run: method x variant x fold x seed, each a full TrainConfig dict; with
    `fronts` (see `front`), each Pareto configuration besides the best too."""
    from search_spaces import get_space

    first = sweeps_[0]["sweep"]
    configs: list[tuple[str, str, dict]] = []
    for m, b in best.items():
        # Every field spelled out (a trial's config holds only what the sweep fixed or searched).
        configs.append((m, A.BEST, TrainConfig(**{k: v for k, v in b["config"].items() if k in FIELDS}).to_dict()))
    for m, on in (fronts or {}).items():
        for t in on:
            if t["variant"] != A.BEST:
                cfg = TrainConfig(**{k: v for k, v in t["config"].items() if k in FIELDS}).to_dict()
                configs.append((m, t["variant"], cfg))
    if A.BASELINE not in best:  # the baseline nobody swept: the training guide's recipe for it
        sp = get_space(A.BASELINE).pin(first.trial_fixed)
        recipe = sp.config(sp.recipe).to_dict()
        configs.append((A.BASELINE, A.RECIPE, recipe))
    main = {m: cfg for m, v, cfg in configs}
    if "gated" in main and main["gated"]["modality_dropout"] > 0:
        configs.append(("gated", A.NO_MODALITY_DROPOUT, {**main["gated"], "modality_dropout": 0.0}))
    for m in ("video", "gated"):  # the 4-class vs 8-class line: the baseline and the guide's method
        if m in main:
            other = 4 if main[m]["num_classes"] == 8 else 8
            configs.append((m, f"num_classes={other}", {**main[m], "num_classes": other}))
    jobs = []
    for m, variant, cfg in configs:
        for fold in range(folds):
            for seed in range(seeds):
                c = {**cfg, "split_mode": "actor", "folds": folds, "fold": fold, "seed": seed, "wandb": False}
                c = TrainConfig(**c).to_dict()  # every field spelled out; invalid values fail here
                jobs.append({"method": m, "variant": variant, "fold": fold, "seed": seed, "config": c})
    return jobs


def check_report_folds(data, folds: int | None, seeds: int | None, demo: bool) -> tuple[int, int]:
    """The folds and seeds to use (defaults filled in), or a one-line error if the data cannot have them."""
    from emo.data.splits import SplitError, confirmation_folds

    d_folds, d_seeds = report_folds_seeds(demo)
    folds, seeds = folds or d_folds, seeds or d_seeds
    if folds < 2 or seeds < 1:
        fail(f"report folds must be >= 2 and seeds >= 1, got {folds} and {seeds}")
    try:
        confirmation_folds(data.actors, folds)
    except SplitError as e:
        fail(f"the report's {e}: ask for fewer (sweeps.report --folds, sweeps.run --report-folds) or --no-report")
    return folds, seeds


def distributions(method: str, fixed: dict, names: list[str], size: tuple[str, ...] = ()) -> dict:
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import sweep_space

    params = sweep_space(method, fixed, size).params
    return OptunaSearch.convert_search_space({k: v for k, v in params.items() if k in names})
