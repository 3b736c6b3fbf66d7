"""Ray overhead: what a trial pays to get its data, and what the driver costs a whole sweep.

    python -m benchmarks.ray_overhead latency   # trial start -> 1st epoch: object store vs loading per trial
    python -m benchmarks.ray_overhead sweep     # a 32-trial sweep: the share of wall time not spent in epochs
    python -m benchmarks.ray_overhead checkpoint  # what checkpointing every epoch costs at RAVDESS model size

`latency` runs the product's trainable (`sweeps.trainable.train_trial`) in Ray Tune on the RAVDESS-size
feature set (1,440 clips, default features, ~950 MiB; `python -m benchmarks.data` makes it), one trial
at a time on reused workers, two ways: the sweep's way (the driver puts the arrays in the object
store once, `tune.with_parameters`, and each trial maps that copy) and a baseline where each trial
loads the feature cache itself (`emo.data.prepare`: catalogue the folder, map the cache file).

`sweep` runs `python -m sweeps.run` as a user would and compares its wall time with the seconds its
trials spent inside epochs (`time/epoch_s` in every trial's result.json). Nothing else heavy should
run meanwhile.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import sweeps  # noqa: F401  (Ray's environment defaults, before anything imports ray)
from benchmarks.common import report, table
from emo.config import TrainConfig


def _load_then_train(config: dict, root: str, fcfg) -> None:
    """The baseline trainable: the trial loads the feature cache itself, then trains as a sweep trial does."""
    from emo.data import prepare
    from sweeps.trainable import train_trial

    train_trial(config, prepare(root, fcfg, progress=False).arrays())


def _tune(trainable, config: dict, trials: int, storage: Path, name: str) -> tuple[list[dict], float]:
    from ray import tune

    from sweeps.progress import START_OVERHEAD_S, Progress

    t0 = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={**config, "seed": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), callbacks=[Progress(name, trials, config["epochs"])], verbose=0
        ),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    rows = []
    for r in grid:
        if r.error is not None:
            raise SystemExit(f"{name}: a trial failed: {r.error}")
        tid = r.metrics["trial_id"]
        rows.append({"trial": tid, "driver_s": START_OVERHEAD_S[tid], "in_trial_s": r.metrics["time/setup_s"]})
    return sorted(rows, key=lambda x: x["trial"]), wall


def latency(ns) -> None:
    import ray
    from ray import tune

    from emo.config import FeatureConfig
    from emo.data import prepare
    from emo.paths import cache_root
    from sweeps.trainable import train_trial

    root = cache_root() / "bench-ravdess-size-24"
    if not root.is_dir():
        raise SystemExit(f"{root} is missing: run `python -m benchmarks.data` first (it writes the set)")
    fcfg = FeatureConfig()
    t0 = time.perf_counter()
    fs = prepare(root, fcfg, progress=True)
    load_s = time.perf_counter() - t0
    nbytes = sum(a.nbytes for a in (fs.audio, fs.video) if a is not None)
    # The light audio CNN: an epoch short enough to run several trials; the data a trial receives
    # (audio and video arrays) is the same whatever the model.
    config = dataclasses.asdict(
        TrainConfig(data_root=str(root), fusion=ns.fusion, video_backbone="light", epochs=1, device="cpu")
    )
    ray.init(num_cpus=2, object_store_memory=int(nbytes * 1.5) + 2**30, include_dashboard=False)
    rows, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shared = tune.with_parameters(train_trial, data=fs.arrays())  # the driver's one ray.put
        put_s = time.perf_counter() - t0
        rows["object store (the sweep's way)"], walls["object store (the sweep's way)"] = _tune(
            shared, config, ns.trials, Path(tmp), "shared"
        )
        per_trial = tune.with_parameters(_load_then_train, root=str(root), fcfg=fcfg)
        rows["loaded in each trial"], walls["loaded in each trial"] = _tune(
            per_trial, config, ns.trials, Path(tmp), "per_trial"
        )
    ray.shutdown()

    out = []
    for how, rs in rows.items():
        first, rest = rs[0], rs[1:]  # the first trial also starts the worker process

        def med(key, rs=rest):
            return f"{statistics.median(r[key] for r in rs):.2f}" if rs else "-"

        out.append([how, f"{first['driver_s']:.1f}", med("driver_s"), med("in_trial_s"), f"{walls[how]:.0f}"])
    body = table(
        ["data", "1st trial: start -> 1st epoch s", "later trials: start -> 1st epoch s (median)",
         "later trials: in-trial setup s (median)", "Tune wall s"],
        out,
    )  # fmt: skip
    notes = (
        f"{len(fs.table)} clips, `FeatureConfig()` ({nbytes / 2**20:.0f} MiB of arrays); the driver loaded the cache "
        f"in {load_s:.2f} s and put it in the object store in {put_s:.2f} s (once per sweep). `{ns.fusion}` with the "
        f"light CNNs, 1 epoch, {ns.trials} trials one at a time on a reused worker (`reuse_actors=True`), "
        "`ray.init(num_cpus=2)`. *start -> 1st epoch*: from Tune starting the trial (driver clock) to its first "
        "epoch starting. *in-trial setup*: the same, measured inside the trainable. The first trial also pays "
        "for starting the worker process (torch import)."
    )
    report("Ray overhead: trial start latency, object store vs loading per trial", body, notes)
    print(json.dumps(rows))


def sweep(ns) -> None:
    from benchmarks.sweep import sweep as run_sweep

    argv = [ns.method, "--num-samples", str(ns.num_samples), "--max-epochs", str(ns.max_epochs)]
    argv += ["--scheduler", "fifo", "--search", "random", "--max-concurrent", "1", *ns.extra]
    with tempfile.TemporaryDirectory() as tmp:
        df, wall = run_sweep(argv, Path(tmp), "overhead")
        epoch_s = 0.0
        for path in df["path"]:
            for line in Path(path, "result.json").read_text().splitlines():
                epoch_s += json.loads(line)["time/epoch_s"]
    start = df["start_overhead_s"].dropna()
    trial_wall = df["wall_s"].sum()
    body = table(
        ["trials", "epochs", "sweep wall s (command)", "in epochs s", "not in epochs s", "overhead share",
         "trial start -> 1st epoch s (median / max)", "sum of trial wall s"],
        [[len(df), int(df["epochs"].sum()), f"{wall:.0f}", f"{epoch_s:.0f}", f"{wall - epoch_s:.0f}",
          f"{100 * (wall - epoch_s) / wall:.1f}%", f"{start.median():.2f} / {start.max():.2f}", f"{trial_wall:.0f}"]],
    )  # fmt: skip
    notes = (
        f"`python -m sweeps.run {' '.join(argv)}` on the demo set: {ns.num_samples} trials x {ns.max_epochs} epochs, "
        "one trial at a time (so wall time and epoch time compare directly), FIFO + random search. *not in epochs*: "
        "everything else the command spent: Python and Ray start, loading the feature cache and putting it in the "
        "object store, starting and reusing workers, per-trial setup, Tune's bookkeeping and checkpoints, the "
        "results table. Goal: under 5% of sweep wall time."
    )
    report(f"Ray overhead: a {ns.num_samples}-trial sweep ({ns.method})", body, notes)


def _checkpoint_trial(config: dict, log: str, epochs: int) -> None:
    """Tune trainable: the model of `config` with its optimizer state, checkpointed `epochs` times
    exactly as a sweep trial does after each epoch (emo.checkpoint.save_checkpoint into local scratch,
    then tune.report with the folder, which Tune copies to the trial's storage before it returns).
    No training: the cost measured is the checkpoint's alone."""
    import torch
    from ray import tune

    from emo.checkpoint import Progress, save_checkpoint
    from emo.models import build_model

    torch.set_num_threads(1)
    cfg = TrainConfig(**config)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for p in model.parameters():  # one step: AdamW then holds both moments, as after any epoch
        p.grad = torch.zeros_like(p)
    opt.step()
    scratch = Path(tempfile.mkdtemp(prefix="emo-ckpt-bench-"))
    rows = []
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            # An improving epoch, the costlier case: fit copies the weights and writes best.pt too.
            progress = Progress()
            progress.record(0.5, epoch, model)  # copies the weights, as fit does
            save_checkpoint(scratch, cfg, model, opt, None, None, progress, write_best=True)
            t1 = time.perf_counter()
            tune.report({"epoch": epoch + 1}, checkpoint=tune.Checkpoint.from_directory(str(scratch)))
            t2 = time.perf_counter()
            mb = sum(f.stat().st_size for f in scratch.iterdir()) / 2**20
            rows.append({"save_s": t1 - t0, "report_s": t2 - t1, "mb": mb})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        Path(log).write_text(json.dumps(rows))


def checkpoint(ns) -> None:
    import ray
    from ray import tune

    rows = []
    ray.init(num_cpus=2, include_dashboard=False)
    with tempfile.TemporaryDirectory() as tmp:
        for method in ns.methods:
            cfg = TrainConfig(fusion=method, use_resnet_audio=True, video_backbone="resnet18", device="cpu")
            log = Path(tmp, f"{method}.json")
            tuner = tune.Tuner(
                tune.with_parameters(_checkpoint_trial, log=str(log), epochs=ns.epochs),
                param_space=dataclasses.asdict(cfg),
                run_config=tune.RunConfig(
                    name=method, storage_path=tmp, checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=0
                ),
            )
            if tuner.fit()[0].error is not None:
                raise SystemExit(f"{method}: the trial failed")
            got = json.loads(log.read_text())[1:]  # the first also pays for first-touch allocations
            save, rep = statistics.median(r["save_s"] for r in got), statistics.median(r["report_s"] for r in got)
            rows.append([method, f"{got[0]['mb']:.0f}", f"{save:.2f}", f"{rep:.2f}", f"{save + rep:.2f}",
                         f"{100 * (save + rep) / ns.epoch_s:.0f}%"])  # fmt: skip
    ray.shutdown()
    body = table(
        ["method", "checkpoint MiB (state.pt + best.pt)", "save s (median)", "tune.report s (median)",
         "per epoch s", f"of a {ns.epoch_s:g} s epoch"],
        rows,
    )  # fmt: skip
    notes = (
        f"The RAVDESS recipe's models (ResNet18 audio on the log-mel, ResNet18 per video frame), with AdamW's state, "
        f"checkpointed {ns.epochs} times the way a sweep trial does after every epoch (median of all but the first): "
        "`emo.checkpoint.save_checkpoint` writes state.pt and, on an improving epoch, best.pt into local scratch; "
        "`tune.report` then copies the folder to the trial's storage (a local folder here) before it returns. "
        f"The last column compares with a {ns.epoch_s:g} s epoch (`--epoch-s`; the H100 goal for gated)."
    )
    report("Ray overhead: checkpoint cost per epoch at RAVDESS model size", body, notes)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--trials", type=int, default=4)
    lat.add_argument("--fusion", default="audio")
    sw = sub.add_parser("sweep")
    sw.add_argument("--method", default="gated")
    sw.add_argument("--num-samples", type=int, default=32)
    sw.add_argument("--max-epochs", type=int, default=2)
    sw.add_argument("extra", nargs="*", help="more sweeps.run flags (after --)")
    ck = sub.add_parser("checkpoint")
    ck.add_argument("--methods", nargs="+", default=["gated"])
    ck.add_argument("--epochs", type=int, default=6)
    ck.add_argument("--epoch-s", type=float, default=2.0, help="the epoch time to compare with")
    ns = p.parse_args(argv)
    {"latency": latency, "sweep": sweep, "checkpoint": checkpoint}[ns.what](ns)


if __name__ == "__main__":
    main()
