"""Head-only training over frozen encoders' cached embeddings against end-to-end training: whole epochs
at RAVDESS size, side by side in one run.

    uv run python -m benchmarks.head_only                                   # gated, 1,440 clips
    uv run python -m benchmarks.head_only --methods gated xattn --clips 96 --actors 2

The frozen encoders are the audio encoder of an audio-only run and the video encoder of a video-only
run of the real-data recipe (light audio CNN, ResNet18 per frame on 16 frames of 112 px), each trained
for one epoch on the RAVDESS-size set and saved by `emo.train.fit` (`--audio_frontend own`: their
weights do not change the cost of a head's epoch). Their embeddings are computed once through
`emo.data.embeddings.embed`, the path every run takes (the one-off cost is a column of its own). Both
sides then time one whole epoch of `emo.train.train_one_epoch` over `--clips` clips (recordings repeat
when the set has fewer), after a warm-up of 3 batches: end to end on the log-mels and frames, and head
only on the embeddings. Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import report, table
from benchmarks.data import ravdess_size_features
from benchmarks.train_speed import cached_epoch_s, take_rows
from emo.config import FUSIONS, TrainConfig
from emo.data.embeddings import embed
from emo.models import build_model
from emo.parallel import usable_cores
from emo.train import DeviceData, autocast_dtype, embedding_dims, fit, resolve_device


def _params(cfg: TrainConfig, dims: dict) -> int:
    return sum(p.numel() for p in build_model(cfg, dims).parameters())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=["gated"], choices=FUSIONS)
    p.add_argument("--clips", type=int, default=1440, help="clips per timed epoch (RAVDESS audio-visual: 1,440)")
    p.add_argument("--actors", type=int, default=2, help="actors of the RAVDESS-size set (60 recordings each)")
    p.add_argument("--device", default="auto")
    ns = p.parse_args(argv)

    fs = ravdess_size_features(ns.actors)
    root = fs.root
    device = resolve_device(ns.device)
    cores = usable_cores()
    torch.set_num_threads(cores)
    recipe = dict(data_root=str(root), split_mode="stratified", device=ns.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="head-only-") as tmp:
        for stream in ("audio", "video"):
            print(f"training the {stream} encoder for one epoch", flush=True)
            fit(
                TrainConfig(fusion=stream, epochs=1, **recipe),
                fs,
                checkpoint_dir=Path(tmp) / stream,
                evaluate_test=False,
            )
        own = dict(audio_frontend="own", audio_encoder=str(Path(tmp) / "audio"), video_frontend="own",
                   video_encoder=str(Path(tmp) / "video"))  # fmt: skip
        t0 = time.perf_counter()
        emb = embed(TrainConfig(fusion="gated", **recipe, **own), fs)
        extract_s = time.perf_counter() - t0
        rows_idx = np.arange(ns.clips) % len(fs)
        full, heads = take_rows(fs.arrays(), rows_idx), take_rows(emb.arrays(), rows_idx)
        shapes = {s: "x".join(map(str, getattr(emb, s).shape[1:])) for s in ("audio", "video")}
        for m in ns.methods:
            e2e_cfg = TrainConfig(fusion=m, **recipe)
            head_cfg = TrainConfig(
                fusion=m, **recipe, **{k: v for k, v in own.items() if k.split("_")[0] in e2e_cfg.streams}
            )
            dd = DeviceData(full, e2e_cfg, device)
            e2e = cached_epoch_s(e2e_cfg, dd, device)
            del dd
            dh = DeviceData(heads, head_cfg, device)
            head = cached_epoch_s(head_cfg, dh, device)
            used = "bf16" if autocast_dtype(e2e_cfg.precision, device) == torch.bfloat16 else "fp32"
            rows.append(
                [m, used, f"{e2e:.2f}", f"{head:.3f}", f"{e2e / head:.0f}x", f"{_params(e2e_cfg, {}):,}",
                 f"{_params(head_cfg, embedding_dims(head_cfg, dh)):,}"]
            )  # fmt: skip
            print(rows[-1], flush=True)
            del dh
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {cores} cores"
    body = table(
        ["method", "precision", "epoch s (end to end)", "epoch s (head only)", "ratio",
         "parameters trained (end to end)", "parameters trained (head only)"],
        rows,
    )  # fmt: skip
    repeated = "" if len(fs) >= ns.clips else f", {len(fs)} recordings repeated to {ns.clips} clips"
    notes = (
        f"{where}; batch 16; {ns.actors}-actor RAVDESS-size set{repeated}. End to end: light audio CNN on 64 x 351 "
        "log-mels and ResNet18 per frame on 16 frames of 112 px, trained. Head only: the same methods over the "
        f"frozen encoders' cached embeddings (audio {shapes['audio']}, video {shapes['video']} per clip), a "
        "LayerNorm and projection per stream and the head trained. Each figure is one whole timed epoch of "
        f"`emo.train.train_one_epoch` over {ns.clips} clips (training only) after a warm-up of 3 batches. The "
        f"embeddings of the {len(fs)} recordings took {extract_s:.1f} s to compute and cache, once (both encoders)."
    )
    report(
        f"Head-only epochs over frozen encoders vs end to end, {ns.clips} clips at RAVDESS size ({where})", body, notes
    )


if __name__ == "__main__":
    main()
