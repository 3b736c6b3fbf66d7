"""Packing: trials per hour with 1, 2, 4, 8 trials sharing one GPU (or the CPU cores of a machine without one).

    python -m benchmarks.packing                      # on a GPU machine: --gpus-per-trial 1, 1/2, 1/4, 1/8
    python -m benchmarks.packing --share 1 2          # CPU machine: 1 trial with every core vs 2 with half each

Each point is one `python -m sweeps.run` (FIFO, random search, the same trial budget) with
`--gpus-per-trial 1/N --max-concurrent N` on a GPU, or `--cpus-per-trial CORES/N` without one
(a trial's torch threads follow its CPUs). Trials per hour = trials / the command's wall time, Ray
start included. Small models leave a GPU mostly idle between kernels; packing fills it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import report, table
from benchmarks.sweep import sweep


def main(argv=None) -> None:
    import torch

    from emo.parallel import usable_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--share", type=int, nargs="+", default=[1, 2, 4, 8], help="trials sharing the device")
    p.add_argument("--method", default="gated")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--max-epochs", type=int, default=3)
    p.add_argument("extra", nargs="*", help="more sweeps.run flags (after --)")
    ns = p.parse_args(argv)

    gpu = torch.cuda.is_available()
    cores = usable_cores()
    where = f"1 x {torch.cuda.get_device_name()}" if gpu else f"CPU only, {cores} cores"
    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns.share:
            if not gpu and cores % n:
                raise SystemExit(f"--share {n}: {cores} cores do not split into {n} equal trials")
            res = ["--gpus-per-trial", f"{1 / n:g}"] if gpu else ["--cpus-per-trial", f"{cores // n}"]
            argv = [ns.method, "--num-samples", str(ns.num_samples), "--max-epochs", str(ns.max_epochs)]
            argv += ["--scheduler", "fifo", "--search", "random", "--max-concurrent", str(n), *res, *ns.extra]
            df, wall = sweep(argv, Path(tmp), f"share{n}")
            per_hour = len(df) * 3600 / wall
            base = base or per_hour
            epoch_s = df["wall_s"].sum() / max(int(df["epochs"].sum()), 1)
            rows.append([n, " ".join(res), len(df), f"{wall:.0f}", f"{per_hour:.0f}", f"{per_hour / base:.2f}x",
                         f"{epoch_s:.1f}"])  # fmt: skip
            print(rows[-1], flush=True)
    body = table(
        ["trials sharing", "flags", "trials", "wall s", "trials / hour", "vs 1", "trial s per epoch (incl. setup)"],
        rows,
    )
    notes = (
        f"{where}. `python -m sweeps.run {ns.method}` on the demo set unless flags say otherwise "
        f"({' '.join(ns.extra) or 'none'}), {ns.num_samples} trials x {ns.max_epochs} epochs, FIFO + random search "
        "(every trial runs every epoch, so each point does the same work). Goal on one GPU: at least 3x more trials "
        "per hour from packing."
    )
    report(f"Packing: trials per hour sharing {'one GPU' if gpu else 'the CPU'} ({ns.method})", body, notes)


if __name__ == "__main__":
    main()
