"""The sweep report: rank every fusion method against video-only, with the evidence a paper needs.

    python -m sweeps.report runs/NAME                       # one finished sweep (any methods)
    python -m sweeps.report runs/A runs/B --folds 4 --seeds 3 --wandb
    python -m sweeps.run all                                # sweeps every method, then writes this report

For each method the best configuration is the sweep trial with the highest validation Macro-F1 (test
clips never choose anything: sweep trials are never evaluated on test). That score is optimistic: it
was picked as the maximum of many. So each best configuration is retrained over k folds of actors
and several seeds, in parallel on Ray, and evaluated on each fold's held-out actors: every actor is a
test actor in exactly one fold (never seen in its training or validation), except the sweep's
validation actors, on which the configuration was chosen: they validate every fold and score none.
Methods are ranked by the paired difference to video-only on the same fold and seed, with a Wilcoxon
signed-rank test.

Writes OUT/report.html (self-contained), OUT/report.parquet (one row per method x variant x fold x
seed), OUT/summary.json and OUT/figures/*.png; with --wandb, a W&B run of job type `report`. Finished
confirmation runs are kept in OUT/runs/: a report that is stopped and started again reruns nothing
that finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import sweeps  # noqa: F401  (Ray's environment defaults, before ray is imported)
from emo.cli import Parser, add_flag, fail
from emo.config import OPERATIONAL_FIELDS, TrainConfig
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN
from emo.paths import atomic_write
from sweeps import analysis as A
from sweeps import cluster, store
from sweeps.spec import report_folds_seeds

_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m sweeps.report",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished sweep folders (STORAGE/NAME)")
    add_flag(p, "out", help="report folder (default: RUN_DIR/report of the first sweep, or ./reports/NAME for s3://)")
    add_flag(p, "folds", type=int, help="k-fold over actors (default: 4)")
    add_flag(p, "seeds", type=int, help="seeds per fold (default: 3 on real data, 2 on the demo set)")
    add_flag(p, "gpus-per-run", type=float, help="GPU share per confirmation run (default: the sweep's)")
    add_flag(p, "cpus-per-run", type=float, help="CPUs per confirmation run (default: the sweep's)")
    add_flag(
        p,
        "address",
        help="join a running Ray cluster from one of its nodes: auto or HOST:6379 (default: start Ray here)",
    )
    add_flag(p, "dashboard-host", default="127.0.0.1", help="where a locally started dashboard listens")
    add_flag(p, "wandb", action="store_true", help="log the report as a W&B run (job type report)")
    add_flag(p, "wandb-project", help="W&B project (default: the sweep's)")
    return p


# ----------------------------------------------------------------------------- reading the sweeps
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


def _same_data(sweeps_: list[dict]) -> None:
    keys = ("data_root", "preset", "num_classes", "video_backbone")
    first = sweeps_[0]["sweep"].fixed
    for s in sweeps_[1:]:
        other = s["sweep"].fixed
        diff = [k for k in keys if first.get(k) != other.get(k)]
        if diff:
            shown = ", ".join(f"{k}: {first.get(k)!r} vs {other.get(k)!r}" for k in diff)
            fail(f"{sweeps_[0]['dir']} and {s['dir']} ran on different settings ({shown}); report them separately")


def select(sweeps_: list[dict]) -> tuple[dict, dict]:
    """Per method: the trial with the best validation Macro-F1 over every given sweep (errors and
    unscored trials excluded), and every scored trial (for hyperparameter importance)."""
    from search_spaces import get_space

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
            params = {k: config.get(k) for k in get_space(m).pin(fixed).params}
            trials.setdefault(m, []).append({"params": params, "value": score, "sweep": s["sweep"].name})
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


# ----------------------------------------------------------------------------- confirmation runs
def plan(best: dict, sweeps_: list[dict], folds: int, seeds: int) -> list[dict]:
    """Every confirmation run: method x variant x fold x seed, each a full TrainConfig dict."""
    from search_spaces import get_space

    first = sweeps_[0]["sweep"]
    configs: list[tuple[str, str, dict]] = []
    for m, b in best.items():
        # Every field spelled out (a trial's config holds only what the sweep fixed or searched).
        configs.append((m, A.BEST, TrainConfig(**{k: v for k, v in b["config"].items() if k in _FIELDS}).to_dict()))
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


def _same_run(saved: dict, config: dict) -> bool:
    """Whether a finished run's saved config computes what `config` would: equal but for
    OPERATIONAL_FIELDS (a run saved before such a field existed lacks it, and stays valid)."""

    def result_fields(c: dict) -> str:
        return json.dumps({k: v for k, v in c.items() if k not in OPERATIONAL_FIELDS}, sort_keys=True, default=str)

    return result_fields(saved) == result_fields(config)


def _job_file(out: Path, job: dict) -> Path:
    variant = job["variant"].replace("=", "")
    return out / "runs" / f"{job['method']}-{variant}-f{job['fold']}-s{job['seed']}.json"


def _confirm(config: dict, data) -> dict:
    """One confirmation run on a Ray worker: fit's results, minus nothing the report needs."""
    from emo.train import fit

    cluster.torch_threads_from_ray()
    return fit(TrainConfig(**config), data)


def confirm_row(job: dict, res: dict | None, error: str | None, labels_of, selection: dict) -> dict:
    cfg = job["config"]
    row = {
        "method": job["method"],
        "variant": job["variant"],
        "fold": job["fold"],
        "seed": job["seed"],
        "num_classes": cfg["num_classes"],
        "status": "ok" if res is not None else "error",
        "error": error,
        "selection_val_f1": selection.get(job["method"], {}).get(OBJECTIVE_COLUMN),
        "config": cfg,
    }
    if res is None:
        return row
    labels = labels_of(cfg["num_classes"])
    split = res["split"]
    row.update(
        test_f1=res["test/f1"],
        test_acc=res["test/acc"],
        val_f1=res[EPOCH_VAL_F1],
        best_epoch=res["best_epoch"],
        epochs_run=res["epochs_run"],
        train_actors=list(split["train_actors"]),
        val_actors=list(split["val_actors"]),
        test_actors=list(split["test_actors"]),
        recordings=res["test/recordings"],
        pred=res["test/pred"],
        labels=[int(labels[i]) for i in res["test/recordings"]],
        per_class_f1=res["test/per_class_f1"],
        confusion=res["test/confusion"],
        history=res["history"],
        gate_test_mean=res.get("gate", {}).get("test_mean"),
        gate_per_class=res.get("gate", {}).get("test_per_class", {}),
        seconds=res["seconds"],
    )
    return row


def _why(e) -> str:
    """One line for a failed run: the run's own exception (e.g. a diverging loss), or Ray's error
    when the worker or its node died more often than max_retries."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"


def run_confirmations(jobs: list[dict], data, out: Path, resources: dict) -> list[tuple[dict, dict | None, str | None]]:
    """Run every job not already finished in OUT/runs, on Ray, `resources` each; one progress line per
    finished run. `data`: TrainingArrays, or the ObjectRef of ones already in the object store. A run
    that raises (e.g. a diverging loss) is recorded with its error; a worker that dies is retried by
    Ray (max_retries)."""
    import ray

    done: list[tuple[dict, dict | None, str | None]] = []
    todo = []
    for job in jobs:
        f = _job_file(out, job)
        if f.exists():
            saved = json.loads(f.read_text())
            if _same_run(saved.get("job", {}).get("config") or {}, job["config"]):
                done.append((job, saved["result"], None))
                continue
        todo.append(job)
    if done:
        print(f"[report] {len(done)} of {len(jobs)} confirmation runs already finished in {out / 'runs'}", flush=True)
    if not todo:
        return done
    remote = ray.remote(_confirm).options(
        num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=2, name="confirm"
    )
    # One copy in the object store, shared by every run (Ray passes a task the object a top-level
    # ObjectRef argument names, mapped read-only from the node's shared memory).
    data_ref = data if isinstance(data, ray.ObjectRef) else ray.put(data)
    t0 = time.perf_counter()
    pending = {remote.remote(job["config"], data_ref): job for job in todo}
    print(
        f"[report] {len(todo)} confirmation runs ({resources['cpu']:g} CPU, {resources['gpu']:g} GPU each)", flush=True
    )
    n = len(done)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        n += 1
        what = f"{job['method']} {job['variant']} fold {job['fold']} seed {job['seed']}"
        try:
            res = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            msg = _why(e)
            print(f"[report {time.perf_counter() - t0:5.0f}s] {n}/{len(jobs)} {what}: FAILED {msg}", flush=True)
            done.append((job, None, msg))
            continue
        payload = json.dumps(A.clean({"job": job, "result": res}), default=str)
        f = _job_file(out, job)
        atomic_write(f, lambda tmp, text=payload: Path(tmp).write_text(text))
        print(
            f"[report {time.perf_counter() - t0:5.0f}s] {n}/{len(jobs)} {what}: test Macro-F1 {res['test/f1']:.3f} "
            f"({res['epochs_run']} epochs, {res['seconds']:.0f} s)",
            flush=True,
        )
        done.append((job, res, None))
    return done


# ----------------------------------------------------------------------------- the report
def _distributions(method: str, fixed: dict, names: list[str]) -> dict:
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space

    params = get_space(method).pin(fixed).params
    return OptunaSearch.convert_search_space({k: v for k, v in params.items() if k in names})


def analyse(rows: list[dict], best: dict, trials: dict, sweeps_: list[dict], files: dict, names: list[str]) -> dict:
    """Everything the report shows, as one JSON-able dict (summary.json)."""
    rank = A.ranking(rows, best)
    fixed = sweeps_[0]["sweep"].fixed
    importance, importance_notes = {}, {}
    for m, ts in trials.items():
        searched = sorted({k for t in ts for k in t["params"]})
        if not searched:
            importance_notes[m] = "nothing was searched"
            continue
        imp, why = A.importance(ts, _distributions(m, fixed, searched))
        if imp:
            importance[m] = imp
        else:
            importance_notes[m] = why
    errors = A.error_cases(A.runs_of(rows, "audio"), A.runs_of(rows, "video"), names, files)
    gated = A.runs_of(rows, "gated")
    gate = A.gate_behaviour(gated, names, gated[0]["config"].get("gate_bias") if gated else None)
    methods = [line["method"] for line in rank]
    curves = {m: A.curves(A.runs_of(rows, m), ("train/loss", "val/loss", "train/f1", EPOCH_VAL_F1)) for m in methods}
    curves = {m: c for m, c in curves.items() if c}
    confusion = {}
    for m in methods:
        runs = A.runs_of(rows, m)
        if runs:
            total = [[sum(r["confusion"][i][j] for r in runs) for j in range(len(names))] for i in range(len(names))]
            confusion[m] = total
    figures = {"curves": list(curves), "confusion": list(confusion)}
    return {
        "ranking": rank,
        "checklist": A.checklist(rows, rank, figures, errors),
        "selection": {
            m: {k: b[k] for k in ("sweep", "trial_id", OBJECTIVE_COLUMN, "best_epoch", "status", "epochs", "searched")}
            for m, b in best.items()
        },
        "importance": importance,
        "importance_notes": importance_notes,
        "error_cases": errors,
        "gate": gate,
        "curves": curves,
        "confusion": confusion,
        "class_names": names,
        "failed_runs": [
            {k: r[k] for k in ("method", "variant", "fold", "seed", "error")} for r in rows if r["status"] != "ok"
        ],
        "variants": _variants(rows),
    }


def _variants(rows: list[dict]) -> list[dict]:
    """Mean +- std test Macro-F1 of every method x variant (the checklist's comparisons in full)."""
    out = []
    for m, v in dict.fromkeys((r["method"], r["variant"]) for r in rows):
        runs = A.runs_of(rows, m, v)
        f1, sd = A.mean_std(r["test_f1"] for r in runs)
        acc, acc_sd = A.mean_std(r["test_acc"] for r in runs)
        nc = runs[0]["num_classes"] if runs else None
        out.append({"method": m, "variant": v, "num_classes": nc, "runs": len(runs), "test_f1": f1,
                    "test_f1_std": sd, "test_acc": acc, "test_acc_std": acc_sd})  # fmt: skip
    return out


def write_parquet(rows: list[dict], path: Path, meta: dict) -> None:
    import pyarrow.parquet as pq

    flat = []
    for r in rows:
        f = {
            k: v for k, v in r.items() if k not in ("config", "history", "per_class_f1", "confusion", "gate_per_class")
        }
        for k in ("config", "history", "per_class_f1", "confusion", "gate_per_class"):
            f[k] = json.dumps(A.clean(r.get(k)))
        flat.append(f)
    table = store.table_of(flat).replace_schema_metadata({b"emo.report": A.to_json(meta).encode()})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def make_report(
    sweeps_: list[dict],
    out: str | Path | None = None,
    *,
    folds: int | None = None,
    seeds: int | None = None,
    resources: dict | None = None,
    wandb: bool = False,
    wandb_project: str | None = None,
    data=None,
    data_ref=None,
) -> Path:
    """Run the confirmations of `sweeps_` (`load_sweep` of each folder) on the Ray instance already
    started and write the report. `data` is the sweeps' FeatureSet when the caller has it loaded
    (`sweeps.run all`), and `data_ref` the ObjectRef of its `arrays()` when the caller has already
    put them in the object store (the sweep's trials read that copy; a second would double the
    store's share of memory on every node, about 1 GB at RAVDESS size)."""
    from emo.data.labels import class_names
    from sweeps import report_html

    t0 = time.perf_counter()
    _same_data(sweeps_)
    run_dirs = [s["dir"] for s in sweeps_]
    first = sweeps_[0]["sweep"]
    if out is None:
        d = run_dirs[0]
        out = Path("reports", first.name) if "://" in d else Path(d) / "report"
    out = Path(out)
    best, trials = select(sweeps_)
    if not best:
        fail(f"no trial of {', '.join(run_dirs)} has a validation score (every trial failed?); nothing to report")
    if data is None:
        from emo.data import load_data

        data = load_data(TrainConfig(**{k: v for k, v in first.fixed.items() if k in _FIELDS}))
    folds, seeds = check_report_folds(data, folds, seeds, demo=first.demo)
    jobs = plan(best, sweeps_, folds, seeds)
    resources = resources or first.resources or {"cpu": 1.0, "gpu": 0.0}
    print(
        f"[report] {', '.join(best)}: best configs by validation Macro-F1; {folds} folds x {seeds} seeds; "
        f"{len(jobs)} runs -> {out}",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    arrays = data_ref if data_ref is not None else data.arrays() if hasattr(data, "arrays") else data
    results = run_confirmations(jobs, arrays, out, resources)
    rows = [confirm_row(job, res, err, data.labels, best) for job, res, err in results]
    order = {(j["method"], j["variant"], j["fold"], j["seed"]): i for i, j in enumerate(jobs)}
    rows.sort(key=lambda r: order[(r["method"], r["variant"], r["fold"], r["seed"])])

    nc = int(first.fixed.get("num_classes", TrainConfig().num_classes))
    files = _file_names(data)
    summary = analyse(rows, best, trials, sweeps_, files, list(class_names(nc)))
    fold_actors: dict[int, dict] = {}
    for r in rows:
        if r["status"] == "ok" and r["fold"] not in fold_actors:
            fold_actors[r["fold"]] = {"train": r["train_actors"], "val": r["val_actors"], "test": r["test_actors"]}
    from emo.data.splits import selection_actors

    summary["meta"] = {
        "sweeps": [{"name": s["sweep"].name, "dir": s["dir"], "methods": list(s["sweep"].methods)} for s in sweeps_],
        "data": first.fixed.get("data_root") or "the built-in demo set",
        "clips": len(data),
        "num_classes": nc,
        "folds": folds,
        "seeds": seeds,
        "runs": len(rows),
        "fold_actors": [fold_actors[f] for f in sorted(fold_actors)],
        # The sweeps chose configurations on these actors' clips: no fold tests on them.
        "selection_actors": list(selection_actors(data.actors)),
        "selection_note": _selection_note(sweeps_),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": round(time.perf_counter() - t0, 1),  # this invocation (runs read back cost nothing)
        "run_seconds": round(sum(r.get("seconds") or 0 for r in rows), 1),  # every run's own training time
    }
    figures = report_html.figures(summary, out / "figures")
    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(A.to_json(summary)))
    write_parquet(rows, out / "report.parquet", summary["meta"])
    html = report_html.render(summary, figures)
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
    print(report_html.text_table(summary), flush=True)
    print(f"\nreport: {out / 'report.html'}", flush=True)
    if wandb:
        project = wandb_project or first.fixed.get("wandb_project") or TrainConfig().wandb_project
        _log_wandb(summary, figures, out, project, first.name)
    return out


def _selection_note(sweeps_: list[dict]) -> str | None:
    """Why the confirmed test scores may not be free of the selection, when a sweep did not choose on
    the default actor split's validation actors (which the confirmation folds keep out of testing)."""
    odd = [
        s["sweep"].name
        for s in sweeps_
        if s["sweep"].fixed.get("split_mode", "actor") != "actor" or s["sweep"].fixed.get("folds")
    ]
    if not odd:
        return None
    return (
        f"sweep(s) {', '.join(odd)} chose configurations on another split than the actor split (stratified "
        f"validation clips come from every actor): the confirmation folds' test actors may have helped choose"
    )


def _file_names(data) -> dict[int, str]:
    """Data row -> the clip's file(s), for the error cases."""
    table = getattr(data, "table", None)
    if table is None or "audio_file" not in table.column_names:
        return {}
    audio, video = table.column("audio_file").to_pylist(), table.column("video_file").to_pylist()
    return {
        i: " + ".join(dict.fromkeys(f for f in (a, v) if f)) for i, (a, v) in enumerate(zip(audio, video, strict=True))
    }


def _log_wandb(summary: dict, figures: dict[str, Path], out: Path, project: str, group: str) -> None:
    import wandb

    from emo.tracking import start_run, wandb_mode
    from sweeps.tracking import wandb_run_id

    meta = summary["meta"]
    run = start_run(
        {k: meta[k] for k in ("folds", "seeds", "num_classes", "data", "clips")}
        | {"sweeps": [s["name"] for s in meta["sweeps"]]},
        project=project,
        name=f"report-{group}",
        group=group,
        tags=("report",),
        job_type="report",
        # One report run per sweep: writing the report again continues it (online) instead of adding
        # a second one; offline, the newest folder is the one to sync.
        run_id=wandb_run_id(group, "report"),
        directory=out,
    )
    try:
        cols = ["rank", "method", "variant", "runs", "selection_val_f1", "test_f1", "test_f1_std", "test_acc",
                "delta", "delta_std", "p_value"]  # fmt: skip
        ranking = wandb.Table(columns=cols, data=[[A.clean(line.get(c)) for c in cols] for line in summary["ranking"]])
        check = wandb.Table(
            columns=["item", "status", "value", "detail"],
            data=[[c["item"], c["status"], A.clean(c["value"]), c["detail"]] for c in summary["checklist"]],
        )
        run.log(
            {
                "ranking": ranking,
                "checklist": check,
                **{f"figures/{k}": wandb.Image(str(p)) for k, p in figures.items()},
            }
        )
        for line in summary["ranking"]:
            run.summary[f"test_f1/{line['method']}"] = A.clean(line["test_f1"])
            if line.get("delta") is not None:
                run.summary[f"delta_vs_video/{line['method']}"] = line["delta"]
        run.summary["checklist_passed"] = sum(c["status"] == "pass" for c in summary["checklist"])
    finally:
        run.finish()
    where = Path(run.dir).parent if run.dir else out
    note = f"; upload with: wandb sync {where}" if wandb_mode() == "offline" else ""
    print(f"W&B report run: {where}{note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cluster.token_auth_for_address(argv)
    args = build_parser().parse_args(argv)
    cluster.check_address(args.address)
    if args.folds is not None and args.folds < 2:
        fail(f"--folds must be >= 2, got {args.folds}")
    if args.seeds is not None and args.seeds < 1:
        fail(f"--seeds must be >= 1, got {args.seeds}")
    sweeps_ = [load_sweep(d) for d in args.run_dirs]  # fail on a wrong folder before Ray starts
    _same_data(sweeps_)
    root = sweeps_[0]["sweep"].fixed.get("data_root")
    if root and "://" not in root and not Path(root).expanduser().is_dir():
        fail(
            f"the sweep's data_root {root!r} is not a folder here (relative paths are taken from "
            f"{Path.cwd()}): the report retrains on the sweep's data; run it where that folder is"
        )
    resources = dict(sweeps_[0]["sweep"].resources or {"cpu": 1.0, "gpu": None})
    if args.cpus_per_run is not None:
        resources["cpu"] = args.cpus_per_run
    if args.gpus_per_run is not None:
        resources["gpu"] = args.gpus_per_run

    import ray

    started, url = cluster.start_ray(args.address, args.dashboard_host)
    try:
        if url:
            print(f"Ray dashboard: {url}", flush=True)
        gpus = ray.cluster_resources().get("GPU", 0)
        if resources.get("gpu") and not gpus:
            # E.g. a sweep run on a GPU box, reported on a laptop: tasks asking for a GPU would wait forever.
            print(f"note: Ray sees no GPU here; the runs use {resources['cpu']:g} CPU each instead", flush=True)
            resources["gpu"] = 0.0
        elif resources.get("gpu") is None:
            resources["gpu"] = 1.0 if gpus >= 1 else 0.0
        make_report(
            sweeps_,
            args.out,
            folds=args.folds,
            seeds=args.seeds,
            resources=resources,
            wandb=args.wandb,
            wandb_project=args.wandb_project,
        )
    finally:
        if started:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
