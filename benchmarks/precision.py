"""CPU training precision: fp32 against bf16 autocast, whole epochs of `emo.train.fit`, side by side.

    uv run python -m benchmarks.precision                      # speech16k audio ResNet18, demo gated and video
    uv run python -m benchmarks.precision --sets demo --methods gated --reps 3

What `TrainConfig.precision="auto"` decides on a CPU with native bf16 (AVX512-BF16 or AMX). Each row
trains the quality benchmark's default recipe (`benchmarks.quality`, fold 0 of its 4 actor folds) for
`--epochs` epochs in fp32 and in bf16, alternating `--reps` times in one process with `--threads`
torch threads (1, as the quality benchmark's workers run), and reports the median seconds per epoch
(training + validation; each fit's first epoch, which allocates, left out) and their ratio. Accuracy
under bf16 is the quality benchmark's job: these fits are too short to say anything about it.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from benchmarks.common import report, table
from benchmarks.quality import SPEECH16K, recipe
from emo.config import FUSIONS, TrainConfig
from emo.train import autocast_dtype, fit


def epoch_seconds(cfg: TrainConfig, data, epochs: int) -> list[float]:
    res = fit(cfg.replace(epochs=epochs, early_stopping_patience=0), data, evaluate_test=False)
    return [h["time/epoch_s"] for h in res["history"][1:]]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=["speech16k", "demo"], choices=("speech16k", "demo"))
    p.add_argument("--methods", nargs="+", default=["gated", "video"], choices=FUSIONS,
                   help="methods on the demo set (speech16k is audio-only ResNet18)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is not timed)")
    p.add_argument("--reps", type=int, default=2, help="fp32 / bf16 fits per row, alternating")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--speech-root", default=str(SPEECH16K))
    ns = p.parse_args(argv)
    if ns.epochs < 2:
        raise SystemExit("error: --epochs must be >= 2 (the first epoch of each fit is not timed)")
    torch.set_num_threads(ns.threads)
    native = autocast_dtype("auto", torch.device("cpu")) is not None
    from emo.data import load_data

    rows = []
    for set_name in ns.sets:
        if set_name == "speech16k" and not Path(ns.speech_root).is_dir():
            print(f"skipping speech16k: {ns.speech_root} not found (the real RAVDESS speech set beside the checkout)")
            continue
        methods = ["audio"] if set_name == "speech16k" else ns.methods
        for method in methods:
            cfg = TrainConfig(**{**recipe(set_name, Path(ns.speech_root)), "fusion": method, "folds": 4, "fold": 0,
                                 "device": "cpu"})  # fmt: skip
            data = load_data(cfg, progress=False)
            times: dict[str, list[float]] = {"fp32": [], "bf16": []}
            for rep in range(ns.reps):
                for prec in ("fp32", "bf16"):
                    times[prec] += epoch_seconds(cfg.replace(precision=prec), data, ns.epochs)
                    print(f"{set_name} {method} {prec} rep {rep + 1}: {times[prec][-1]:.2f} s/epoch", flush=True)
            f32, b16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
            rows.append([set_name, method, len(times["fp32"]), f"{f32:.2f}", f"{b16:.2f}", f"{f32 / b16:.2f}x"])
    if not rows:
        raise SystemExit("error: nothing to run")
    body = table(["set", "method", "epochs timed (each)", "fp32 s / epoch", "bf16 s / epoch", "fp32 / bf16"], rows)
    notes = (
        f"CPU {'with' if native else 'without'} native bf16 (what precision=auto checks: AVX512-BF16 or AMX), "
        f"{ns.threads} torch thread(s); each set's default recipe (benchmarks.quality), fold 0 of 4; {ns.reps} fits "
        f"of {ns.epochs} epochs per precision, alternating, the first epoch of each fit not timed. Seconds per "
        "epoch: training plus validation, median."
    )
    report(f"CPU precision: fp32 vs bf16 autocast ({', '.join(ns.sets)})", body, notes)


if __name__ == "__main__":
    main()
