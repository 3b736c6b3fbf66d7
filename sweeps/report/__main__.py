"""`python -m sweeps.report RUN_DIR...`: see the package's docstring."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sweeps  # noqa: F401  (Ray's environment defaults, before ray is imported)
from emo.cli import Parser, add_flag, fail
from sweeps import cluster
from sweeps.report import __doc__ as DOC
from sweeps.report.build import make_report
from sweeps.report.selection import load_sweep, same_data


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m sweeps.report",
        description=DOC.split("\n\n")[0],
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
    same_data(sweeps_)
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
