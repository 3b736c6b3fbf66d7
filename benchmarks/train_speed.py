"""Training speed per fusion method on a RAVDESS-size feature set (1,440 clips), against the
per-epoch-decoding baseline (the training guide's loop decoded every clip every epoch).

    uv run python -m benchmarks.train_speed                    # every method, this machine's device
    uv run python -m benchmarks.train_speed --methods gated --batches 5
    uv run python -m benchmarks.train_speed --precisions fp32 bf16 --compile   # on a GPU

Each row also gives the model's FLOPs per training clip (forward + backward, counted by
`torch.utils.flop_counter`) and the TFLOP/s the timed steps achieved, against the GPU's dense bf16
peak where the GPU is known (`--peak-tflops` otherwise). `--compile` adds rows with the model
wrapped in `torch.compile` (compilation happens in the untimed warm-up batches).

Both sides in one run: the cached pipeline's training step (features already on the device, index
slices, augmentation on the device) timed over a few batches of each method and scaled to 1,440 clips;
and decoding + feature extraction of a sample of the set's recordings with every core, scaled the same
way. Baseline epoch = decoding + the same training. Reads the RAVDESS-size set of
`python -m benchmarks.data` (24 actors, written once into the cache folder; here too when missing).
`--actors 2` writes and reads a 2-actor set instead (120 recordings, a few minutes to generate)
whose features are repeated to 1,440 clips: for a machine with no time to generate the whole set,
such as a borrowed GPU. Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import report, table
from benchmarks.data import ravdess_size_set
from emo.config import FUSIONS, FeatureConfig, TrainConfig
from emo.data.cache import TrainingArrays, extract_all, prepare
from emo.data.catalog import Catalog, discover
from emo.models import build_model
from emo.parallel import usable_cores
from emo.paths import cache_root
from emo.train import DeviceData, resolve_device

CLIPS = 1440
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, by device name.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.2, "A10G": 70.0}


def flops_per_clip(cfg: TrainConfig, dd: DeviceData, device) -> float:
    """FLOPs of one training step (forward + backward) per clip, counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg).to(device).train()
    a, v, y = dd.batch(torch.arange(min(cfg.batch_size, len(dd.labels)), device=device))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(a, v)["logits"].float(), y).backward()
    return counter.get_total_flops() / len(y)


def train_clips_per_s(
    cfg: TrainConfig, dd: DeviceData, device, batches: int, bf16: bool = False, compile: bool = False
) -> float:
    """Training steps (forward, loss, backward, AdamW) exactly as emo.train.run_epoch does them."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step_model = torch.compile(model) if compile else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    idx = torch.randperm(len(dd.labels), device=device)
    warmup = 3 if compile else 1  # compiling (and recompiling once for the backward) happens here
    n, seconds = 0, 0.0
    for b in range(batches + warmup):  # warm-up batches: allocations, cuDNN autotune, compilation
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a, v, y = dd.batch(idx[b * cfg.batch_size : (b + 1) * cfg.batch_size])
        with autocast:
            out = step_model(a, v)
        loss = F.cross_entropy(out["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if b >= warmup:
            seconds += time.perf_counter() - t0
            n += len(y)
    return n / seconds


def clips_of(arrays: TrainingArrays, n: int) -> TrainingArrays:
    """`arrays` with exactly `n` clips: repeated in order when there are fewer (a smaller set whose
    features stand in for the full one's: same shapes, same bytes on the device)."""
    if len(arrays) == n:
        return arrays
    idx = np.arange(n) % len(arrays)
    return TrainingArrays(**{f.name: None if getattr(arrays, f.name) is None else getattr(arrays, f.name)[idx]
                             for f in dataclasses.fields(arrays)})  # fmt: skip


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
    p.add_argument(
        "--actors", type=int, default=24, help="actors of the RAVDESS-size set (60 recordings each); under 24, "
        f"their features are repeated to {CLIPS} clips: what a training step costs does not depend on the clip",
    )  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--video_backbone", default="resnet18", choices=("resnet18", "light"))
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), help="default: fp32 on CPU, bf16 on CUDA")
    p.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, when it is not in the table")
    ns = p.parse_args(argv)

    root = cache_root() / f"bench-ravdess-size-{ns.actors}"
    if not root.is_dir():
        print(f"writing the {ns.actors}-actor RAVDESS-size set into {root} (once)", flush=True)
        ravdess_size_set(ns.actors)
    fs = prepare(root, progress=True)
    arrays = clips_of(fs.arrays(), CLIPS)
    device = resolve_device(ns.device)
    cores = usable_cores()
    torch.set_num_threads(cores)
    dec = decode_clips_per_s(root, ns.decode_sample, cores)
    decode_epoch = CLIPS / dec
    precisions = ns.precisions or (["bf16"] if device.type == "cuda" else ["fp32"])
    name = torch.cuda.get_device_name() if device.type == "cuda" else ""
    peak = ns.peak_tflops or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    rows = []
    for m in ns.methods:
        cfg = TrainConfig(fusion=m, video_backbone=ns.video_backbone, batch_size=16)
        dd = DeviceData(arrays, cfg, device)
        flops = flops_per_clip(cfg, dd, device)
        for prec in precisions:
            for compiled in (False, True) if ns.compile else (False,):
                cps = train_clips_per_s(cfg, dd, device, ns.batches, bf16=prec == "bf16", compile=compiled)
                tflops = flops * cps / 1e12
                of_peak = f"{100 * tflops / peak:.1f}%" if peak and prec == "bf16" else "-"
                epoch = CLIPS / cps
                base = decode_epoch + epoch
                rows.append(
                    [m, prec, "yes" if compiled else "no", f"{cps:.1f}", f"{flops / 1e9:.1f}", f"{tflops:.3f}",
                     of_peak, f"{epoch:.1f}", f"{base:.0f}", f"{base / epoch:.1f}x"]
                )  # fmt: skip
                print(rows[-1], flush=True)
        del dd
    where = name or f"CPU, {cores} cores"
    body = table(
        ["method", "precision", "compiled", "train clips/s", "GFLOP per clip (fwd+bwd)", "achieved TFLOP/s",
         "of bf16 peak", "epoch s (cached)", "epoch s (decode every epoch)", "ratio"],
        rows,
    )  # fmt: skip
    repeated = "" if len(fs) >= CLIPS else f" on the features of {len(fs)} recordings repeated to {CLIPS}"
    peak_text = f"{peak:g} TFLOP/s dense bf16" if peak else "unknown here"
    notes = (
        f"{where}; batch 16; audio: light CNN; video: {ns.video_backbone} per frame on 16 frames of 112 px. "
        f"Training: {ns.batches} timed batches per method after a warm-up, scaled to {CLIPS} clips (one pass; a "
        f"real epoch trains on the train actors and also evaluates validation){repeated}. Baseline: decoding + "
        f"features of {ns.decode_sample} recordings of the set with {cores} processes ({dec:.2f} clips/s), scaled "
        f"to {CLIPS} clips ({decode_epoch:.0f} s), plus the same training. FLOPs: `torch.utils.flop_counter` over "
        "one forward + backward (matmuls and convolutions; the optimiser step is not counted). "
        f"Peak: {peak_text}. The training guide reports 2 / 5 / 8 / 15 minutes per epoch for audio / video / "
        "gated / xattn on an RTX 4090."
    )
    report(f"Training speed per method, {CLIPS} clips at RAVDESS size ({where})", body, notes)


if __name__ == "__main__":
    main()
