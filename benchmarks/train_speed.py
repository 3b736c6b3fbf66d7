"""Training speed per fusion method on a RAVDESS-size feature set: whole epochs of `emo.train`'s own
`train_one_epoch`, on the cached, device-resident pipeline and in a loop that decodes every clip every
epoch (the training guide's loop), side by side in one run.

    uv run python -m benchmarks.train_speed                          # every method, 1,440 clips
    uv run python -m benchmarks.train_speed --methods audio gated --clips 160 --actors 2
    uv run python -m benchmarks.train_speed --precisions fp32 bf16 --compile   # on a GPU

Cached: the features of `--clips` clips go to the device once (`emo.train.DeviceData`), and one whole
epoch of `train_one_epoch` over them is timed, after a warm-up pass over 3 batches (allocations,
cuDNN autotune, `torch.compile`). Decode every epoch: a `torch.utils.data.DataLoader` whose workers
(one per core) decode and featurise each clip from its mp4 and wav (`emo.data.features`), and the
same `train_one_epoch` on each batch as it arrives: one whole epoch, timed the same way. The
baseline runs once per method, in the first precision and uncompiled.

Each row also gives the model's FLOPs per training clip (forward + backward, counted by
`torch.utils.flop_counter`) and the TFLOP/s the cached epoch achieved, against the GPU's dense bf16
peak where the GPU is known (`--peak-tflops` otherwise). Reads the RAVDESS-size set of
`python -m benchmarks.data` (`--actors` x 60 recordings, written once into the cache folder, here too
when missing); with fewer recordings than `--clips`, recordings repeat (the same features on the
cached side, the same files decoded again on the other). Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import report, table
from benchmarks.data import ravdess_size_features
from emo.config import FUSIONS, FeatureConfig, TrainConfig
from emo.data.cache import TrainingArrays
from emo.data.catalog import discover
from emo.data.features import extract_recording
from emo.models import build_model
from emo.parallel import usable_cores
from emo.train import DeviceData, autocast_dtype, embedding_dims, resolve_device, train_one_epoch

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, by device name.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.2, "A10G": 70.0}
WARMUP_BATCHES = 3


def flops_per_clip(cfg: TrainConfig, dd: DeviceData, device) -> float:
    """FLOPs of one training step (forward + backward) per clip, counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg).to(device).train()
    a, v, y = dd.batch(torch.arange(min(cfg.batch_size, len(dd.labels)), device=device))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(a, v)["logits"].float(), y).backward()
    return counter.get_total_flops() / len(y)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model_and_optimizer(cfg: TrainConfig, dims: dict, device, compile: bool):
    torch.manual_seed(0)
    model = build_model(cfg, dims).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return (torch.compile(model) if compile else model), opt


def cached_epoch_s(cfg: TrainConfig, dd: DeviceData, device, compile: bool = False) -> float:
    """Seconds of one whole `train_one_epoch` over every row of `dd`, after a warm-up pass."""
    model, opt = _model_and_optimizer(cfg, embedding_dims(cfg, dd), device, compile)
    rows = np.arange(len(dd.labels))
    train_one_epoch(model, dd, rows[: WARMUP_BATCHES * cfg.batch_size], cfg, device, opt)
    _sync(device)
    t0 = time.perf_counter()
    train_one_epoch(model, dd, rows, cfg, device, opt)
    _sync(device)
    return time.perf_counter() - t0


class DecodingSet(torch.utils.data.Dataset):
    """Clip i of the epoch, decoded and featurised from its files on every access: recording
    `i % len(arrays)` of the set, labelled from the cache's row for it."""

    def __init__(self, root, arrays: TrainingArrays, clips: int, features: FeatureConfig):
        by_id = {r.recording: r for r in discover(root).recordings}
        self.recs = [by_id[str(r)] for r in arrays.recordings]
        self.arrays, self.clips, self.features = arrays, clips, features

    def __len__(self) -> int:
        return self.clips

    def __getitem__(self, i: int):
        j = i % len(self.recs)
        rec = self.recs[j]
        audio = [str(p) for p in rec.audio_sources()]
        video = [str(p) for p in rec.video_sources()]
        clip = extract_recording(rec.recording, audio, video, self.features, decode_threads=1)
        if clip.audio is None or clip.video is None:
            raise RuntimeError(f"{rec.recording}: {clip.problems}")
        return clip.audio, clip.video, j


def _collate(items, arrays: TrainingArrays) -> TrainingArrays:
    """A decoded batch shaped like the cache's arrays (labels and ids from the cache's rows for the same
    recordings), so that DeviceData takes it as it is."""
    audio, video, rows = zip(*items, strict=True)
    rows = np.asarray(rows)
    rest = [f.name for f in dataclasses.fields(arrays) if f.name not in ("audio", "video")]
    ids = take_rows(TrainingArrays(audio=None, video=None, **{n: getattr(arrays, n) for n in rest}), rows)
    return dataclasses.replace(ids, audio=np.stack(audio), video=np.stack(video))


def take_rows(arrays: TrainingArrays, rows: np.ndarray) -> TrainingArrays:
    """`rows` of every per-clip array (the rest, e.g. `frontends`, as it is)."""

    def take(v):
        return v[rows] if isinstance(v, np.ndarray) else v

    return TrainingArrays(**{f.name: take(getattr(arrays, f.name)) for f in dataclasses.fields(arrays)})


def decoding_epoch_s(cfg: TrainConfig, root, arrays: TrainingArrays, clips: int, workers: int, device) -> float:
    """Seconds of one whole epoch of the decode-every-epoch loop: `workers` DataLoader processes decode
    each batch while the main process trains on the one before, with the same `train_one_epoch` step."""
    model, opt = _model_and_optimizer(cfg, {}, device, compile=False)
    loader = torch.utils.data.DataLoader(
        DecodingSet(root, arrays, clips, FeatureConfig()), batch_size=cfg.batch_size, shuffle=True,
        num_workers=workers, collate_fn=partial(_collate, arrays=arrays), persistent_workers=False,
    )  # fmt: skip
    warm = take_rows(arrays, np.arange(WARMUP_BATCHES * cfg.batch_size) % len(arrays))
    train_one_epoch(model, DeviceData(warm, cfg, device), np.arange(len(warm)), cfg, device, opt)
    _sync(device)
    t0 = time.perf_counter()
    for batch in loader:  # worker start-up included: a per-epoch-decoding loop pays it every epoch
        train_one_epoch(model, DeviceData(batch, cfg, device), np.arange(len(batch)), cfg, device, opt)
    _sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(FUSIONS), choices=FUSIONS)
    p.add_argument("--clips", type=int, default=1440, help="clips per timed epoch (RAVDESS audio-visual: 1,440)")
    p.add_argument("--actors", type=int, default=24, help="actors of the RAVDESS-size set (60 recordings each)")
    p.add_argument("--no-baseline", action="store_true", help="skip the decode-every-epoch loop")
    p.add_argument("--device", default="auto")
    p.add_argument("--video_backbone", default="resnet18", choices=("resnet18", "light"))
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), help="default: what training picks (auto)")
    p.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, when it is not in the table")
    ns = p.parse_args(argv)

    fs = ravdess_size_features(ns.actors)
    root = fs.root
    arrays = fs.arrays()
    cached = take_rows(arrays, np.arange(ns.clips) % len(arrays))
    device = resolve_device(ns.device)
    cores = usable_cores()
    torch.set_num_threads(cores)
    precisions = ns.precisions or ["auto"]
    name = torch.cuda.get_device_name() if device.type == "cuda" else ""
    peak = ns.peak_tflops or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    rows = []
    for m in ns.methods:
        base_cfg = TrainConfig(fusion=m, video_backbone=ns.video_backbone, batch_size=16)
        dd = DeviceData(cached, base_cfg, device)
        flops = flops_per_clip(base_cfg, dd, device)
        baseline = None
        for prec in precisions:
            cfg = base_cfg.replace(precision=prec)
            for compiled in (False, True) if ns.compile else (False,):
                epoch = cached_epoch_s(cfg, dd, device, compile=compiled)
                tflops = flops * ns.clips / epoch / 1e12
                used = "bf16" if autocast_dtype(prec, device) == torch.bfloat16 else "fp32"
                of_peak = f"{100 * tflops / peak:.1f}%" if peak and used == "bf16" else "-"
                base_text, ratio = "-", "-"
                if not ns.no_baseline and baseline is None and not compiled:
                    baseline = decoding_epoch_s(cfg, root, arrays, ns.clips, cores, device)
                    base_text, ratio = f"{baseline:.1f}", f"{baseline / epoch:.1f}x"
                rows.append(
                    [m, used, "yes" if compiled else "no", f"{epoch:.1f}", f"{ns.clips / epoch:.1f}",
                     f"{flops / 1e9:.1f}", f"{tflops:.3f}", of_peak, base_text, ratio]
                )  # fmt: skip
                print(rows[-1], flush=True)
        del dd
    where = name or f"CPU, {cores} cores"
    body = table(
        ["method", "precision", "compiled", "epoch s (cached)", "train clips/s", "GFLOP per clip (fwd+bwd)",
         "achieved TFLOP/s", "of bf16 peak", "epoch s (decode every epoch)", "ratio"],
        rows,
    )  # fmt: skip
    repeated = "" if len(fs) >= ns.clips else f", {len(fs)} recordings repeated to {ns.clips} clips"
    peak_text = f"{peak:g} TFLOP/s dense bf16" if peak else "unknown here"
    notes = (
        f"{where}; batch 16; audio: light CNN; video: {ns.video_backbone} per frame on 16 frames of 112 px; "
        f"{ns.actors}-actor RAVDESS-size set{repeated}. Each figure is one whole timed epoch of "
        f"`emo.train.train_one_epoch` over {ns.clips} clips (training only: a real epoch also evaluates "
        f"validation) after a warm-up of {WARMUP_BATCHES} batches. Decode every epoch: a DataLoader with {cores} "
        "worker processes decoding and featurising every clip from its files, training on each batch as it "
        "arrives (worker start included). FLOPs: `torch.utils.flop_counter` over one forward + backward "
        f"(matmuls and convolutions; the optimiser step is not counted). Peak: {peak_text}."
    )
    report(f"Training speed per method, whole epochs of {ns.clips} clips at RAVDESS size ({where})", body, notes)


if __name__ == "__main__":
    main()
