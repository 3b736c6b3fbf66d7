"""Packing: trials per hour with 1, 2, 4, 8 trials sharing one GPU (or the CPU cores of a machine without one).

    python -m benchmarks.packing                      # on a GPU machine: --gpus-per-trial 1, 1/2, 1/4, 1/8
    python -m benchmarks.packing --share 1 2          # CPU machine: 1 trial with every core vs 2 with half each
    python -m benchmarks.packing --runner processes   # the same work without Ray (see below)

`--runner ray` (default): each point is one `python -m sweeps.run` (FIFO, random search, the same
trial budget) with `--gpus-per-trial 1/N --max-concurrent N` on a GPU, or `--cpus-per-trial CORES/N`
without one (a trial's torch threads follow its CPUs). Trials per hour = trials / the command's wall
time, Ray start included. Small models leave a GPU mostly idle between kernels; packing fills it.

`--runner processes`: N plain processes share the device, each training its share of the trials
with `emo.train.fit` one after another (the recipe configuration with another seed per trial; no
searched key changes the work of an epoch), on the same demo set and settings as the sweep. A
fractional `--gpus-per-trial` does no more than this: Ray starts N workers that see the same GPU. It
exists for machines where Ray cannot be installed (the lent GPU machine takes at most 64 MiB of
wheels per call, and Ray's is 79 MB); Ray's own cost is measured by `benchmarks.ray_overhead`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report, table
from emo.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _ray_point(ns, n: int, gpu: bool, cores: int, tmp: Path) -> tuple[str, int, float, float]:
    """One `sweeps.run` with N trials at a time: (flags, trials, wall s, trial s per epoch)."""
    from benchmarks.sweep import sweep

    res = ["--gpus-per-trial", f"{1 / n:g}"] if gpu else ["--cpus-per-trial", f"{cores // n}"]
    argv = [ns.method, "--num-samples", str(ns.num_samples), "--max-epochs", str(ns.max_epochs)]
    argv += ["--scheduler", "fifo", "--search", "random", "--max-concurrent", str(n), *res, *ns.extra]
    df, wall = sweep(argv, tmp, f"share{n}")
    return " ".join(res), len(df), wall, df["wall_s"].sum() / max(int(df["epochs"].sum()), 1)


def _processes_point(ns, n: int, gpu: bool, cores: int) -> tuple[str, int, float, float]:
    """N processes training their share of `num_samples` trials each: (flags, trials, wall s, trial s per epoch)."""
    threads = 1 if gpu else cores // n
    shares = [ns.num_samples // n + (i < ns.num_samples % n) for i in range(n)]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.packing",
                "--worker",
                json.dumps(
                    {
                        "method": ns.method,
                        "trials": k,
                        "first_seed": sum(shares[:i]),
                        "epochs": ns.max_epochs,
                        "threads": threads,
                        "device": "cuda" if gpu else "cpu",
                    }
                ),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        for i, k in enumerate(shares)
        if k
    ]
    trial_s = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a packing worker failed (exit {p.returncode}):\n{out[-3000:]}")
        trial_s += json.loads(out.strip().splitlines()[-1])["trial_s"]
    wall = time.perf_counter() - t0
    return f"{n} processes, {threads} thread(s) each", len(trial_s), wall, sum(trial_s) / (len(trial_s) * ns.max_epochs)


def _worker(spec: dict) -> None:
    """One packing process: `trials` runs of fit on the demo set, one after another; prints their seconds."""
    import dataclasses

    import torch

    from emo.data import load_data
    from emo.train import fit
    from sweeps.spec import DEMO_FIXED

    torch.set_num_threads(spec["threads"])
    cfg = TrainConfig(fusion=spec["method"], epochs=spec["epochs"], device=spec["device"], **DEMO_FIXED)
    data = load_data(cfg, progress=False).arrays()
    trial_s = []
    for i in range(spec["trials"]):
        t = time.perf_counter()
        fit(dataclasses.replace(cfg, seed=spec["first_seed"] + i), data, evaluate_test=False)
        trial_s.append(time.perf_counter() - t)
        print(f"[pid {os.getpid()}] trial {i + 1}/{spec['trials']}: {trial_s[-1]:.1f} s", flush=True)
    print(json.dumps({"trial_s": trial_s}), flush=True)


def main(argv=None) -> None:
    import torch

    from emo.parallel import usable_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--share", type=int, nargs="+", default=[1, 2, 4, 8], help="trials sharing the device")
    p.add_argument("--method", default="gated")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--max-epochs", type=int, default=3)
    p.add_argument("--runner", choices=("ray", "processes"), default="ray", help="sweeps.run, or plain processes")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one process of --runner processes
    p.add_argument("extra", nargs="*", help="more sweeps.run flags (after --; --runner ray only)")
    ns = p.parse_args(argv)
    if ns.worker:
        return _worker(json.loads(ns.worker))
    if ns.runner == "processes" and ns.extra:
        raise SystemExit("--runner processes takes no sweeps.run flags")
    if ns.runner == "processes":
        from emo.data import load_data
        from sweeps.spec import DEMO_FIXED

        # Write the demo set and its feature cache once, here, not in N workers racing to (untimed).
        load_data(TrainConfig(**DEMO_FIXED))

    gpu = torch.cuda.is_available()
    cores = usable_cores()
    where = f"1 x {torch.cuda.get_device_name()}" if gpu else f"CPU only, {cores} cores"
    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns.share:
            if not gpu and cores % n:
                raise SystemExit(f"--share {n}: {cores} cores do not split into {n} equal trials")
            if ns.runner == "ray":
                flags, trials, wall, epoch_s = _ray_point(ns, n, gpu, cores, Path(tmp))
            else:
                flags, trials, wall, epoch_s = _processes_point(ns, n, gpu, cores)
            per_hour = trials * 3600 / wall
            base = base or per_hour
            row = [n, flags, trials, f"{wall:.0f}", f"{per_hour:.0f}", f"{per_hour / base:.2f}x", f"{epoch_s:.1f}"]
            rows.append(row)
            print(rows[-1], flush=True)
    body = table(
        ["trials sharing", "flags", "trials", "wall s", "trials / hour", "vs 1", "trial s per epoch (incl. setup)"],
        rows,
    )
    how = (
        f"`python -m sweeps.run {ns.method}` on the demo set unless flags say otherwise "
        f"({' '.join(ns.extra) or 'none'}), FIFO + random search"
        if ns.runner == "ray"
        else f"`emo.train.fit` ({ns.method}: the recipe with a seed per trial, the sweep's demo set and settings) in "
        "N plain processes, no Ray; wall time from starting the processes to the last one's exit (imports and data "
        "load included)"
    )
    notes = (
        f"{where}. {how}; {ns.num_samples} trials x {ns.max_epochs} epochs (every trial runs every epoch, so each "
        "point does the same work). Goal on one GPU: at least 3x more trials per hour from packing."
    )
    runner = "" if ns.runner == "ray" else ", plain processes"
    report(f"Packing: trials per hour sharing {'one GPU' if gpu else 'the CPU'} ({ns.method}{runner})", body, notes)


if __name__ == "__main__":
    main()
