"""Training speed per fusion method on a RAVDESS-size feature set (1,440 clips), against the
per-epoch-decoding baseline (the training guide's loop decoded every clip every epoch).

    uv run python -m benchmarks.train_speed                    # every method, this machine's device
    uv run python -m benchmarks.train_speed --methods gated --batches 5

Both sides in one run: the cached pipeline's training step (features already on the device, index
slices, augmentation on the device) timed over a few batches of each method and scaled to 1,440 clips;
and decoding + feature extraction of a sample of the set's recordings with every core, scaled the same
way. Baseline epoch = decoding + the same training. Needs the RAVDESS-size set of
`python -m benchmarks.data` (written once into the cache folder). Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import report, table
from emo.config import FUSIONS, FeatureConfig, TrainConfig
from emo.data.cache import extract_all, prepare
from emo.data.catalog import Catalog, discover
from emo.models import build_model
from emo.parallel import usable_cores
from emo.paths import cache_root
from emo.train import DeviceData, resolve_device

CLIPS = 1440


def train_clips_per_s(cfg: TrainConfig, dd: DeviceData, device, batches: int) -> float:
    """Training steps (forward, loss, backward, AdamW) exactly as emo.train.run_epoch does them."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    idx = torch.randperm(len(dd.labels), device=device)
    n, seconds = 0, 0.0
    for b in range(batches + 1):  # batch 0 warms up (allocations, cuDNN autotune)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a, v, y = dd.batch(idx[b * cfg.batch_size : (b + 1) * cfg.batch_size])
        with autocast:
            out = model(a, v)
        loss = F.cross_entropy(out["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if b:
            seconds += time.perf_counter() - t0
            n += len(y)
    return n / seconds


def decode_clips_per_s(root, sample: int, workers: int) -> float:
    """Decoding + features of `sample` recordings with `workers` processes (what a per-epoch-decoding
    loader does for every clip of every epoch)."""
    cat = discover(root)
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(cat.recordings), size=min(sample, len(cat.recordings)), replace=False))
    sub = Catalog(root=cat.root, recordings=[cat.recordings[i] for i in pick], skipped=[])
    t0 = time.perf_counter()
    extract_all(sub, FeatureConfig(), workers=workers, progress=False)
    return len(pick) / (time.perf_counter() - t0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(FUSIONS), choices=FUSIONS)
    p.add_argument("--batches", type=int, default=3, help="timed training batches per method (after 1 warm-up)")
    p.add_argument("--decode-sample", type=int, default=24, help="recordings decoded for the baseline")
    p.add_argument("--device", default="auto")
    p.add_argument("--video_backbone", default="resnet18", choices=("resnet18", "light"))
    ns = p.parse_args(argv)

    root = cache_root() / "bench-ravdess-size-24"
    if not root.is_dir():
        raise SystemExit(f"{root} is missing: run `uv run python -m benchmarks.data` once to write it")
    fs = prepare(root, progress=True)
    device = resolve_device(ns.device)
    cores = usable_cores()
    torch.set_num_threads(cores)
    dec = decode_clips_per_s(root, ns.decode_sample, cores)
    decode_epoch = CLIPS / dec
    rows = []
    for m in ns.methods:
        cfg = TrainConfig(fusion=m, video_backbone=ns.video_backbone, batch_size=16)
        dd = DeviceData(fs.arrays(), cfg, device)
        cps = train_clips_per_s(cfg, dd, device, ns.batches)
        epoch = CLIPS / cps
        base = decode_epoch + epoch
        rows.append([m, f"{cps:.1f}", f"{epoch:.0f}", f"{base:.0f}", f"{base / epoch:.1f}x"])
        del dd
        print(rows[-1], flush=True)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {cores} cores"
    body = table(["method", "train clips/s", "epoch s (cached)", "epoch s (decode every epoch)", "ratio"], rows)
    notes = (
        f"{where}; batch 16, fp32 on CPU (bf16 autocast on CUDA); audio: light CNN; video: "
        f"{ns.video_backbone} per frame on 16 frames of 112 px. Training: {ns.batches} timed batches per method "
        f"after a warm-up, scaled to {CLIPS} clips (one pass; a real epoch trains on the train actors and also "
        f"evaluates validation). Baseline: decoding + features of {ns.decode_sample} recordings of the set with "
        f"{cores} processes ({dec:.2f} clips/s), scaled to {CLIPS} clips ({decode_epoch:.0f} s), plus the same "
        "training. The training guide reports 2 / 5 / 8 / 15 minutes per epoch for audio / video / gated / xattn "
        "on an RTX 4090."
    )
    report(f"Training speed per method, {CLIPS} clips at RAVDESS size ({where})", body, notes)


if __name__ == "__main__":
    main()
