"""Stage one of head-only training: the audio-only and video-only runs whose encoders, frozen, fusion
heads then read (`--audio_frontend own --audio_encoder OUT/audio-{split}`, the same for video).

    python -m emo.train_encoders --out runs/encoders                 # the demo set: its split and 4 folds
    python -m emo.train_encoders --out runs/encoders --data_root data --lr 5e-4 --use_resnet_audio
    python -m sweeps.run gated --audio_frontend own --audio_encoder 'runs/encoders/audio-{split}' \\
        --video_frontend own --video_encoder 'runs/encoders/video-{split}'

One run per stream and split: the actor split a sweep selects on (`OUT/audio-actor`) and each of the
report's `--folds` confirmation folds (`OUT/audio-fold0`, ...), each trained without the actors its
split validates and tests on, so that no head is scored on a voice or a face its encoder learnt
(`{split}` in an encoder path is the run's split: `actor`, or `fold0`... in a report). Runs go to worker
processes (one per core, one torch thread each); each folder is its run's checkpoint, so stopping and
running the command again resumes every run where it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from emo.config import DEMO_TRAIN, TrainConfig

STREAMS = ("audio", "video")
# The demo recipe, but colour frames: encoders that fusion heads read frozen. Heads over colour-frame
# encoders scored higher than over luminance ones at 8 classes for every method (late +0.032, concat
# +0.009, gated +0.037, cross-attention +0.016; at 4 classes -0.005 to +0.010), over 4 folds x 2 seeds
# (BENCHMARKS.md, "Training quality compared", 2026-12-08, 00:46 against 00:17 entries). End to end the
# demo recipe keeps luminance: colour measured no better over every method there (2026-12-07, 19:19).
DEMO_ENCODERS = {**DEMO_TRAIN, "video_gray": False}
# Settings that are this command's to choose: which run, on which split, read through which front end.
_OWN = ("fusion", "split_mode", "folds", "fold", "audio_frontend", "video_frontend", "audio_encoder", "video_encoder")


def plan(base: dict, streams, folds: int) -> list[TrainConfig]:
    """Every run: each stream on the actor split, then on each of `folds` folds."""
    splits = [{"split_mode": "actor"}] + [{"split_mode": "actor", "folds": folds, "fold": k} for k in range(folds)]
    return [TrainConfig(**{**base, **s, "fusion": stream}) for stream in streams for s in splits]


def run_one(cfg: TrainConfig, folder: str) -> dict:
    from emo.data import load_data
    from emo.train import fit

    res = fit(cfg, load_data(cfg, progress=False), checkpoint_dir=folder)
    return {"folder": folder, "best_epoch": res["best_epoch"], "val_f1": res["val/f1"], "test_f1": res["test/f1"]}


def main(argv: list[str] | None = None) -> int:
    from emo.cli import Parser, add_dataclass_flags, add_feature_flags, add_flag, fail, given, given_features

    p = Parser(prog="python -m emo.train_encoders", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_flag(p, "out", required=True, help="a folder: one checkpoint folder per run inside, STREAM-SPLIT")
    add_flag(p, "streams", nargs="+", choices=STREAMS, default=list(STREAMS), help="encoders to train (default: both)")
    add_flag(p, "folds", type=int, default=4, help="the report's confirmation folds (sweeps.run --report-folds)")
    add_flag(p, "workers", type=int, default=0, help="processes, one torch thread each (default: every usable core)")
    g = p.add_argument_group("TrainConfig (every run)")
    fields = add_dataclass_flags(g, TrainConfig, skip=_OWN)
    feature_fields = add_feature_flags(p)  # the heads' sweep must pass the same ones
    args = p.parse_args(argv)
    flags = {**given(args, fields), **given_features(args, feature_fields)}
    if flags.get("data_root") is None:
        flags = {**DEMO_ENCODERS, **flags}
    if args.folds < 2:
        fail(f"--folds must be >= 2 (the report's confirmation folds), got {args.folds}")
    try:
        runs = plan(flags, args.streams, args.folds)
        from emo.data import load_data

        data = load_data(runs[0])  # builds the feature cache once, before the workers read it
        from emo.data.splits import confirmation_folds

        confirmation_folds(data.actors, args.folds)
    except ValueError as e:
        fail(str(e))
    from concurrent.futures import as_completed

    from emo.parallel import one_thread, process_pool, usable_cores

    out = Path(args.out)
    folders = {str(out / f"{cfg.fusion}-{cfg.split_name}"): cfg for cfg in runs}
    workers = args.workers or usable_cores()
    print(f"{len(runs)} runs ({', '.join(args.streams)} x the actor split and {args.folds} folds) on {workers} "
          f"worker(s) into {out}", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    failed = 0
    with process_pool(workers, initializer=one_thread) as pool:
        futures = {pool.submit(run_one, cfg, folder): folder for folder, cfg in folders.items()}
        for i, fut in enumerate(as_completed(futures), 1):
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 - one failed run is reported; the others go on
                failed += 1
                print(f"[{i}/{len(runs)}] {futures[fut]}: FAILED: {type(e).__name__}: {e}", flush=True)
                continue
            print(
                f"[{i}/{len(runs)} {(time.perf_counter() - t0) / 60:.1f} min] {r['folder']}: best epoch "
                f"{r['best_epoch']}, val Macro-F1 {r['val_f1']:.3f}, test Macro-F1 {r['test_f1']:.3f}",
                flush=True,
            )
    if failed:
        fail(f"{failed} of {len(runs)} runs failed (above); run the command again to retry them")
    use = " ".join(f"--{s}_frontend own --{s}_encoder '{out}/{s}-{{split}}'" for s in args.streams)
    print(f"encoders in {out}. Heads over them: python -m sweeps.run gated {use}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
