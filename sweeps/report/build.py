"""Writing the report: the analysis of the confirmed runs (summary.json), report.parquet, the page and
its figures, and the W&B report run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from emo.cli import fail
from emo.config import TrainConfig
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN
from emo.paths import atomic_write
from sweeps import store
from sweeps.report import page
from sweeps.report import stats as A
from sweeps.report.confirm import confirm_row, run_confirmations
from sweeps.report.selection import FIELDS, check_report_folds, distributions, front, plan, same_data, select


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
        imp, why = A.importance(ts, distributions(m, fixed, searched, sweeps_[0]["sweep"].size))
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

    t0 = time.perf_counter()
    same_data(sweeps_)
    run_dirs = [s["dir"] for s in sweeps_]
    first = sweeps_[0]["sweep"]
    if out is None:
        d = run_dirs[0]
        out = Path("reports", first.name) if "://" in d else Path(d) / "report"
    out = Path(out)
    best, trials = select(sweeps_)
    if not best:
        fail(f"no trial of {', '.join(run_dirs)} has a validation score (every trial failed?); nothing to report")
    fixed_cfg = TrainConfig(**{k: v for k, v in first.fixed.items() if k in FIELDS})
    frozen = any(fixed_cfg.frozen(s) for s in ("audio", "video"))
    if data is None or frozen:
        from emo.data import load_data
        from emo.data.embeddings import features_config

        # Frozen front ends: each fold reads its own encoder's embeddings of these features (below).
        data = load_data(features_config(fixed_cfg) if frozen else fixed_cfg)
    folds, seeds = check_report_folds(data, folds, seeds, demo=first.demo)
    fronts = front(trials, best)
    jobs = plan(best, sweeps_, folds, seeds, fronts)
    resources = resources or first.resources or {"cpu": 1.0, "gpu": 0.0}
    print(
        f"[report] {', '.join(best)}: best configs by validation Macro-F1; {folds} folds x {seeds} seeds; "
        f"{len(jobs)} runs -> {out}",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    if frozen:
        from emo.data.embeddings import fold_arrays

        try:
            arrays = fold_arrays(fixed_cfg, data, folds)
        except ValueError as e:
            fail(f"the report's confirmation folds need their own frozen encoders: {e}")
    else:
        arrays = data_ref if data_ref is not None else data.arrays() if hasattr(data, "arrays") else data
    results = run_confirmations(jobs, arrays, out, resources)
    rows = [confirm_row(job, res, err, data.labels, best) for job, res, err in results]
    order = {(j["method"], j["variant"], j["fold"], j["seed"]): i for i, j in enumerate(jobs)}
    rows.sort(key=lambda r: order[(r["method"], r["variant"], r["fold"], r["seed"])])

    nc = int(first.fixed.get("num_classes", TrainConfig().num_classes))
    files = _file_names(data)
    summary = analyse(rows, best, trials, sweeps_, files, list(class_names(nc)))
    summary["front"] = _front_summary(rows, fronts, trials)
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
        # Streams read through frozen encoders: which, as the sweep named them ({split} unresolved).
        "frontends": [
            {
                "stream": s,
                "frontend": getattr(fixed_cfg, f"{s}_frontend"),
                "fusion": next(iter(arrays.values())).frontends[s].get("encoder_fusion"),
                "encoder": getattr(fixed_cfg, f"{s}_encoder"),
            }
            for s in ("audio", "video")
            if frozen and fixed_cfg.frozen(s)
        ],  # fmt: skip
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": round(time.perf_counter() - t0, 1),  # this invocation (runs read back cost nothing)
        "run_seconds": round(sum(r.get("seconds") or 0 for r in rows), 1),  # every run's own training time
    }
    figures = page.figures(summary, out / "figures")
    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(A.to_json(summary)))
    write_parquet(rows, out / "report.parquet", summary["meta"])
    html = page.render(summary, figures)
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
    print(page.text_table(summary), flush=True)
    print(f"\nreport: {out / 'report.html'}", flush=True)
    if wandb:
        project = wandb_project or first.fixed.get("wandb_project") or TrainConfig().wandb_project
        _log_wandb(summary, figures, out, project, first.name)
    return out


def _front_summary(rows: list[dict], fronts: dict, trials: dict) -> dict:
    """Per method of a multi-objective sweep: every trial's validation Macro-F1 and costs (the figure's
    grey points) and each Pareto configuration with its confirmed test Macro-F1 over folds x seeds."""
    out = {}
    for m, on in fronts.items():
        confirmed = []
        for t in on:
            runs = A.runs_of(rows, m, t["variant"])
            f1, sd = A.mean_std(r["test_f1"] for r in runs)
            confirmed.append({"trial_id": t["trial_id"], "variant": t["variant"], "val_f1": t["value"],
                              "costs": t["costs"], "test_f1": f1, "test_f1_std": sd, "runs": len(runs)})  # fmt: skip
        every = [{"val_f1": t["value"], "costs": t["costs"], "pareto": t["pareto"]} for t in trials[m]]
        out[m] = {"front": confirmed, "trials": every}
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
