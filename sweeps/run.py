"""Sweep fusion methods' hyperparameters with Ray Tune, Optuna (TPE) and ASHA; log trials to W&B.

    python -m sweeps.run gated                        # the built-in demo set, every CPU/GPU Ray sees
    python -m sweeps.run gated audio video --data_root ~/data/RAVDESS --num-samples 32 --max-epochs 20
    python -m sweeps.run all --data_root /shared/RAVDESS --gpus-per-trial 0.25 --storage-path s3://b/runs
    python -m sweeps.run --resume --name NAME         # continue an interrupted sweep

Each method is one Tune experiment under STORAGE/NAME/METHOD. The driver builds or loads the feature
cache once and puts it in Ray's object store once; every trial reads that shared copy. At the end it
prints a leaderboard and writes STORAGE/NAME/results.parquet (one row per trial). With `all` (or
--report) it then writes the sweep report (sweeps.report) to STORAGE/NAME/report/.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import sweeps  # noqa: F401  (sets Ray's environment defaults before ray is imported)
from emo.cli import Parser, add_dataclass_flags, add_feature_flags, add_flag, fail, given, given_features
from emo.config import TrainConfig
from sweeps import cluster, store
from sweeps.spec import DATA_BUDGET, DEFAULTS, DEFINING, DEMO_BUDGET, SpecError, SweepSpec


def build_parser() -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """The parser, the TrainConfig fields it has flags for, and the FeatureConfig ones."""
    from search_spaces import METHODS

    p = Parser(
        prog="python -m sweeps.run",
        description=__doc__.split("\n\n")[0],
        epilog="Every flag works with underscores or hyphens (--num_classes, --num-classes). TrainConfig "
        "flags (--lr, --dropout, ...) pin that value for every trial and take it out of the search.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("methods", nargs="*", metavar="METHOD", help=f"one or more of {', '.join(METHODS)}, or all")
    g = p.add_argument_group("budget and search")
    add_flag(
        g,
        "num-samples",
        type=int,
        help=f"trials per method (default: {DEMO_BUDGET['num_samples']} on the demo set, "
        f"{DATA_BUDGET['num_samples']} on real data)",
    )
    add_flag(
        g,
        "max-epochs",
        type=int,
        help=f"epochs a trial may run: ASHA's max_t (default: {DEMO_BUDGET['max_epochs']} demo, "
        f"{DATA_BUDGET['max_epochs']} data)",
    )
    add_flag(g, "grace-period", type=int, help=f"ASHA: epochs every trial runs (default: {DEFAULTS['grace_period']})")
    add_flag(g, "reduction-factor", type=int, help="ASHA: keep 1/this at each rung (default: 2)")
    add_flag(g, "scheduler", choices=("asha", "fifo"), help="asha (default) or fifo: no early stopping")
    add_flag(g, "search", choices=("tpe", "random", "nsga2"), help="Optuna sampler (default: tpe; nsga2: costs)")
    add_flag(
        g,
        "objectives",
        help="f1 (default), or f1 and costs to minimise: f1,params / f1,latency / f1,flops / f1,params,latency,...: "
        "a multi-objective search (Pareto front in results.parquet); ASHA still prunes on f1",
    )
    add_flag(g, "max-concurrent", type=int, help="trials at once (default: what the cluster's CPUs/GPUs hold)")
    g = p.add_argument_group("resources and cluster")
    add_flag(g, "gpus-per-trial", type=float, help="GPU share per trial, 0.25 packs 4 on a GPU (default: 1 if any)")
    add_flag(g, "cpus-per-trial", type=float, help="CPUs per trial (default: 1)")
    add_flag(
        g,
        "address",
        help="join a running Ray cluster from one of its nodes: auto or HOST:6379 (default: start Ray here); "
        "from elsewhere, submit the driver with `ray job submit`",
    )
    add_flag(g, "dashboard-host", default="127.0.0.1", help="where a locally started dashboard listens")
    add_flag(g, "max-failures", type=int, help="retries of a trial whose worker died, from its checkpoint (default: 3)")
    g = p.add_argument_group("storage")
    add_flag(g, "storage-path", default="runs", help="where sweeps are written (shared path or s3:// on a cluster)")
    add_flag(g, "name", help="the sweep's folder under --storage-path (default: METHODS-DATE-TIME)")
    add_flag(g, "resume", action="store_true", help="continue the sweep --name (default: the newest one)")
    add_flag(g, "top", type=int, default=5, help="leaderboard rows per method")
    g = p.add_argument_group("report (python -m sweeps.report, run at the end)")
    g.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the sweep report when the sweep ends (default: on for `all`, off otherwise)",
    )
    add_flag(g, "report-folds", type=int, help="report: k-fold over actors (default: 4)")
    add_flag(g, "report-seeds", type=int, help="report: seeds per fold (default: 3 on real data, 2 on the demo set)")
    g = p.add_argument_group("TrainConfig (fixed for every trial unless searched)")
    fields = add_dataclass_flags(g, TrainConfig, skip=("fusion", "epochs"))
    return p, fields, add_feature_flags(p)


def _read_sweep(storage_path: str, name: str | None) -> SweepSpec:
    """The sweep.json --resume continues: of --name, or of the newest sweep in the storage folder."""
    name = name or store.newest_sweep(storage_path)
    if name is None:
        fail(f"--resume: no sweep found in {storage_path} (a sweep folder holds {store.SWEEP_FILE}); pass --name")
    try:
        return store.read_sweep(store.sweep_dir(storage_path, name))
    except store.NotASweep:
        fail(f"--resume: {storage_path}/{name} holds no sweep (no {store.SWEEP_FILE}); start one without --resume")
    except ValueError as e:
        fail(f"--resume: {e}")


def resolve(argv: list[str] | None) -> dict:
    """Parse and check everything before Ray starts: a mistake costs a second, not a cluster start."""
    from search_spaces import METHODS, SearchSpaceError, sweep_space

    parser, fields, feature_fields = build_parser()
    args = parser.parse_args(argv)
    cluster.check_address(args.address)
    if args.name is not None:
        check_name(args.name)
    if not cluster.joins_cluster(args.address):
        cluster.check_dashboard_host(args.dashboard_host)
    base = {**given(args, fields), **given_features(args, feature_fields)}
    flags = {k: getattr(args, k) for k in DEFINING}
    if args.resume:
        saved = _read_sweep(args.storage_path, args.name)
        # the name picks the folders the restored sweep writes to
        check_name(saved.name, f"the name in {store.SWEEP_FILE}")
        # --num-samples grows the sweep (its trials beyond today's are a new Tune experiment per method,
        # whose searcher learns from every earlier trial); every other defining flag is refused.
        # --max-failures too: Tune restores the FailureConfig it pickled with the experiment, and each
        # restored trial keeps its own retry limit, so a new value would be silently ignored.
        grow_to = flags.pop("num_samples")
        given_flags = [k for k in base if k != "features"] + list(base.get("features", {}))  # each by its flag
        changed = [*given_flags, *(k for k, v in flags.items() if v is not None)]
        changed += ["methods"] if args.methods and tuple(args.methods) != saved.methods else []
        if changed:
            fail(
                f"--resume continues sweep {saved.name!r} with its own settings; drop "
                + ", ".join(f"--{k.replace('_', '-')}" for k in changed)
            )
        # Continue where sweep.json was found, not at the path saved in it: a sweep folder that was
        # moved or copied (another disk, another machine, a bucket) would otherwise be restored from,
        # or started afresh at, its old place. Tune's restore takes the folder it is given.
        here = store.storage_root(args.storage_path)
        if saved.storage and saved.storage.rstrip("/") != here:
            print(f"note: sweep {saved.name!r} was written under {saved.storage}; continuing it in {here}")
        sweep = saved.replace(storage=here)
        if grow_to is not None:
            try:
                sweep = sweep.grow(grow_to)
            except SpecError as e:
                fail(str(e))
            if sweep.num_samples > saved.num_samples:
                print(
                    f"growing sweep {sweep.name!r} from {saved.num_samples} to {sweep.num_samples} trials per method: "
                    f"the {sweep.num_samples - saved.num_samples} new ones are proposed by a searcher that knows every "
                    "earlier trial (its Optuna study); nothing earlier is run again",
                    flush=True,
                )
    else:
        if not args.methods:
            fail(f"name a method to sweep: {', '.join(METHODS)}, or all")
        methods = list(METHODS) if args.methods == ["all"] else list(dict.fromkeys(args.methods))
        try:
            sweep = SweepSpec.from_flags(methods, base, flags, args.name, store.storage_root(args.storage_path))
        except SpecError as e:
            fail(str(e))
    try:
        for m in sweep.methods:
            sp = sweep_space(m, sweep.trial_fixed, sweep.size)
            sp.config(sp.recipe)  # the fixed values are valid too
    except (SearchSpaceError, ValueError) as e:
        fail(str(e))
    return {"args": args, "sweep": sweep}


# A sweep's name is one folder under --storage-path, never a path: "../x" or "/x" would write elsewhere.
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def check_name(name: str, what: str = "--name") -> None:
    if not _NAME.fullmatch(name) or set(name) == {"."}:
        fail(
            f"{what} {name!r}: a sweep's name is one folder under --storage-path, made of letters, digits, "
            "'.', '_' and '-' (not '.' or '..')"
        )


def check_study(sweep: SweepSpec, journal: str) -> None:
    """--resume: the journal holds the study of every method that started, and each was searched over
    the space the method's search space gives now (search_spaces/ edited since would mix two spaces in
    one study and one ranking). A growth needs the study: its searcher learns from it. StudyError."""
    from pathlib import Path

    import optuna

    from search_spaces import sweep_space
    from sweeps import study, tuner

    if not Path(journal).is_file():
        if sweep.grown:
            raise study.StudyError(
                f"sweep {sweep.name!r} has no Optuna study ({study.JOURNAL_FILE}): it was started by an emo-sweeps "
                "that did not keep one, so a growth's searcher could not learn from its trials; start a new sweep"
            )
        return
    st = study.storage(journal)
    names = {s.study_name: s for s in optuna.get_all_study_summaries(st, include_best_trial=False)}
    for m in sweep.methods:
        if m not in names:
            continue
        then = (names[m].user_attrs.get(study.IDENTITY) or {}).get("space")
        now = study.space_json(tuner.optuna_space(sweep_space(m, sweep.trial_fixed, sweep.size)))
        if then is not None and then != now:
            diff = sorted(k for k in {*then, *now} if then.get(k) != now.get(k))
            shown = "; ".join(
                f"{k}: {then.get(k, 'not searched')} then, {now.get(k, 'not searched')} now" for k in diff
            )
            raise study.StudyError(
                f"sweep {sweep.name!r} searched {m} over another space than search_spaces/ gives now ({shown}); "
                "restore the search space it ran with, or start a new sweep"
            )


def run_stage(sweep: SweepSpec, method: str, stage: int, trial, resume: bool) -> list[dict]:
    """One Tune experiment of a method (its first run, or a growth's trials) run or restored; its rows."""
    from sweeps import tuner
    from sweeps.results import trial_row

    experiment = store.experiment_name(method, stage)
    t0 = time.perf_counter()
    try:
        grid, sp = tuner.run_method(method, sweep, trial, resume, stage)
    except tuner.ResumeError as e:
        fail(f"--resume: {e}")
    rows = [trial_row(res_, sweep.name, method, list(sp.params), sweep.max_epochs) for res_ in grid]
    if resume and sweep.fixed.get("wandb"):
        from sweeps.tracking import supersede_lost_trials

        kept = {r["trial_id"] for r in rows}
        for tid in supersede_lost_trials(sweep.storage, sweep.name, method, kept, experiment):
            print(
                f"[{experiment}] trial {tid} started before the crash but is not in Tune's saved state (another "
                f"trial took its place); its W&B run moved to {store.trial_folder(method, tid)}/wandb/superseded/",
                flush=True,
            )
    print(f"[{experiment}] {len(rows)} trials in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from emo.data.catalog import DataRootError

    argv = sys.argv[1:] if argv is None else list(argv)
    cluster.token_auth_for_address(argv)
    r = resolve(argv)
    args, sweep = r["args"], r["sweep"]
    resume = args.resume
    from sweeps import study

    try:
        journal = study.open_for(sweep)
        if resume:
            check_study(sweep, journal)
    except (study.StudyError, OSError) as e:
        fail(str(e))

    cfg = TrainConfig(**sweep.trial_fixed)
    from emo.data import load_data

    try:
        data = load_data(cfg)
    except (DataRootError, ValueError) as e:
        fail(str(e))
    summary = data.summary()
    where = cfg.data_root or "the built-in demo set"
    print(f"{len(data)} clips from {where}; {len(summary['skipped'])} files skipped", flush=True)
    for s in summary["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")
    if cfg.features:
        print("features: the preset's, with " + ", ".join(f"{k}={v}" for k, v in cfg.features.items()), flush=True)
    from emo.data.embeddings import describe

    for stream, rec in data.frontends.items():
        print(f"{stream}: {describe(rec)}; trials train heads")
    if data.frontends:  # a trial would fail on it, and Tune retry it max_failures times: say it once now
        from emo.train import check_frontends

        try:
            for m in sweep.methods:
                check_frontends(cfg.replace(fusion=m), data)
        except ValueError as e:
            fail(str(e))

    from search_spaces import METHODS

    report = args.report or (args.report is None and set(sweep.methods) == set(METHODS))
    if not report and (args.report_folds or args.report_seeds):
        fail("--report-folds and --report-seeds need --report (the report runs by itself only for `all`)")
    if report:  # a report that cannot run must fail now, not after the sweep
        from sweeps.report.selection import check_report_folds

        folds, _ = check_report_folds(data, args.report_folds, args.report_seeds, demo=cfg.data_root is None)
        from emo.data.embeddings import frontend_key

        try:  # each confirmation fold reads its own frozen encoders: they must be there before the sweep
            for k in range(folds):
                for stream in (s for s in cfg.streams if cfg.frozen(s)):
                    frontend_key(cfg.replace(split_mode="actor", folds=folds, fold=k), stream)
        except ValueError as e:
            fail(f"the report's fold {k} has no frozen {stream} encoder: {e}")

    import ray

    from sweeps import tuner
    from sweeps.results import leaderboard

    started, url = cluster.start_ray(args.address, args.dashboard_host)
    try:
        if url:
            token = Path.home() / ".ray" / "auth_token"
            note = f" (it asks for the token in {token})" if token.exists() else ""
            print(f"Ray dashboard: {url}{note}", flush=True)
        res = ray.cluster_resources()
        if sweep.resources:  # --resume: the share the sweep started with, whatever Ray sees now
            gpus = sweep.resources["gpu"]
        else:
            try:
                joined = cluster.joins_cluster(args.address)
                gpus = cluster.gpu_share(sweep.gpus_per_trial, res.get("GPU", 0), joined)
            except ValueError as e:
                fail(str(e))
        cpus = sweep.cpus_per_trial or 1.0
        if gpus and res.get("GPU", 0) < gpus and not sweep.max_concurrent and not sweep.concurrent:
            # An autoscaling cluster starts with no GPU worker: what fits now is not what it will hold.
            print(
                f"note: the cluster has {res.get('GPU', 0):g} GPUs now; trials wait for the autoscaler, "
                "one at a time unless you pass --max-concurrent (e.g. max GPU workers / --gpus-per-trial)",
                flush=True,
            )
        sweep = sweep.replace(
            concurrent=sweep.concurrent or tuner.max_concurrent(sweep, gpus, cpus), resources={"cpu": cpus, "gpu": gpus}
        )
        store.write_sweep(sweep.storage, sweep)
        print(f"Optuna study: {journal} (python -m sweeps.dashboard {sweep.name} shows it)", flush=True)
        print(
            f"sweep {sweep.name}: {', '.join(sweep.methods)}; {sweep.num_samples} trials each, "
            f"up to {sweep.max_epochs} epochs, {sweep.scheduler} + {sweep.search}; "
            f"{sweep.concurrent} at a time ({cpus:g} CPU, {gpus:g} GPU each); "
            f"cluster {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs",
            flush=True,
        )
        # Into the object store once; every trial of every method, and the report's confirmation runs,
        # map this one copy (with_parameters keeps an ObjectRef as it is and hands trials its object).
        data_ref = ray.put(data.arrays())
        trial = tuner.trainable(data_ref, cpus, gpus, sweep.costs)
        rows = []
        for method in sweep.methods:
            for stage in range(len(sweep.stage_sizes)):
                rows += run_stage(sweep, method, stage, trial, resume)
                experiment = store.experiment_name(method, stage)
                if experiment not in sweep.finished:
                    sweep = sweep.replace(finished=(*sweep.finished, experiment))
                    store.write_sweep(sweep.storage, sweep)
        if sweep.costs:
            from sweeps.results import mark_pareto

            mark_pareto(rows, sweep.costs)
        meta = {
            "sweep": sweep.to_json(),
            "data": {k: summary[k] for k in ("clips", "per_class", "per_modality", "skipped", "cache_path")},
        }
        out = store.write_results(rows, sweep.storage, sweep.name, meta)
        print()
        print(leaderboard(rows, top=args.top))
        if sweep.costs:
            from sweeps.results import pareto_table

            print()
            print(pareto_table(rows, sweep.costs))
        print(f"\nresults: {out}", flush=True)
        if report:
            from sweeps.report.build import make_report
            from sweeps.report.selection import load_sweep

            print(flush=True)
            make_report(
                [load_sweep(store.sweep_dir(sweep.storage, sweep.name))],
                folds=args.report_folds,
                seeds=args.report_seeds,
                resources=sweep.resources,
                wandb=bool(sweep.fixed.get("wandb")),
                data=data,
                data_ref=data_ref,
            )
    finally:
        if started:
            ray.shutdown()

    if sweep.fixed.get("wandb"):
        from emo.tracking import wandb_mode

        if wandb_mode() == "offline":
            runs = f"{store.sweep_dir(sweep.storage, sweep.name)}/*/*/wandb/offline-run-*"
            print(f"W&B runs are offline; upload them with: wandb sync {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
