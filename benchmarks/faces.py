"""Face detection on real RAVDESS videos and on the demo set: does each detector find a face in every
frame, and what does it cost per clip?

    uv run python -m benchmarks.faces                        # ../shared/ravdess mp4s + 48 demo clips
    uv run python -m benchmarks.faces --frames 16 --demo-clips 96

For every video, `--frames` frames are decoded as `emo.data.prepare` decodes them; then each detector
runs the way the feature pipeline runs it (emo.data.features, one thread, as in a prepare worker):
MTCNN (facenet-pytorch) on every frame, in one batch, and the Haar cascade on every frame (the pipeline
asks it about up to three). Columns: clips where the pipeline's crop is that detector's, frames with a
face found, and detector seconds per clip (mean over clips, after one warm-up clip). Appends its table
to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.common import report, table
from emo.data import features as F
from emo.data.catalog import discover
from emo.data.decode import decode_video

RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "ravdess"


def _haar_frames(frames: np.ndarray) -> int:
    """Frames in which the Haar cascade finds a face (the pipeline's detection on each frame)."""
    return sum(F._haar_face(frames[i : i + 1]) is not None for i in range(len(frames)))


def _videos(root: Path, limit: int | None) -> list[str]:
    """The video each recording's features come from (its first source), `limit` of them spread evenly."""
    paths = [str(r.video_sources()[0]) for r in discover(root).recordings if r.video_sources()]
    if limit and limit < len(paths):
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


def measure(name: str, paths: list[str], frames_per_clip: int) -> list[list]:
    decoded = [decode_video(p, frames_per_clip)[0] for p in paths]
    F.mtcnn_boxes(decoded[0])  # warm-up: the model's first call builds its layers
    F._haar_face(decoded[0])
    rows = []
    for detector in ("mtcnn", "haar"):
        found_clips, found_frames, seconds = 0, 0, 0.0
        for frames in decoded:
            t0 = time.perf_counter()
            if detector == "mtcnn":
                n = sum(b is not None for b in F.mtcnn_boxes(frames))
            else:
                n = _haar_frames(frames)
            seconds += time.perf_counter() - t0
            found_frames += n
            _, how = F.find_face(frames, detector)
            found_clips += how == detector
        total = len(decoded) * frames_per_clip
        rows.append(
            [
                name,
                detector,
                f"{found_clips}/{len(decoded)}",
                f"{found_frames}/{total} ({found_frames / total:.0%})",
                f"{seconds / len(decoded):.3f}",
                "x".join(map(str, decoded[0].shape[2:0:-1])),
            ]
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (the ravdess preset's 16)")
    parser.add_argument("--demo-clips", type=int, default=48, help="demo clips to look at")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows = []
    for part in ("sample", "reencoded"):
        if (RAVDESS / part).is_dir():
            rows += measure(f"RAVDESS {part}", _videos(RAVDESS / part, None), args.frames)
    from emo.data.synth import demo_root

    rows += measure("demo set", _videos(demo_root(), args.demo_clips), args.frames)
    header = ["videos", "detector", "clips cropped by it", "frames with a face", "s per clip", "size (WxH)"]
    report(
        "Face detection: MTCNN vs the Haar cascade",
        table(header, rows),
        "'clips cropped by it': the pipeline's crop with that detector first (emo.data.features.find_face: "
        "MTCNN's per-frame boxes' median; the Haar cascade on up to three frames). Seconds: the detector "
        "alone on every frame, one thread.",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
