"""Voice activity on real RAVDESS speech: where each VAD (torchaudio's sox-style one, silero-vad) puts
the statement, how the two agree, and what each costs per clip.

    uv run python -m benchmarks.vad                    # 240 clips of ../shared/ravdess/speech16k
    uv run python -m benchmarks.vad --clips 1080

Clips are spread evenly over the set (every actor and emotion). Each is decoded at 16 kHz as
`emo.data.prepare` decodes it; each VAD trims it the way `--vad_trim --vad_method M` does
(emo.data.features). Columns: clips it found speech in (a clip where it finds none is kept whole),
speech start and end (median, seconds into the clip), trimmed length (median and 95th percentile: does
the 3.5 s window hold the statement?), and VAD seconds per clip (one thread). The last row compares the
two on the same clips. Appends its table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import report, table
from emo.data import features as F
from emo.data.catalog import discover
from emo.data.decode import decode_audio

SPEECH16K = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "speech16k"
RATE = 16_000


def _span(x: torch.Tensor, trimmed: torch.Tensor) -> tuple[float, float]:
    """Where `trimmed` (a slice of `x`) starts and ends in `x`, in seconds."""
    n, m = x.numel(), trimmed.numel()
    if m == n:
        return 0.0, n / RATE
    # Both VADs return a contiguous slice: find its offset by matching the first samples.
    head = trimmed[: min(m, 64)]
    for start in range(n - m + 1):
        if torch.equal(x[start : start + len(head)], head) and torch.equal(x[start : start + m], trimmed):
            return start / RATE, (start + m) / RATE
    raise AssertionError("the trim is not a slice of the clip")


def _sox_span(x: torch.Tensor) -> tuple[float, float]:
    return _span(x, F._vad_trim(x, RATE))


def _silero_span(x: torch.Tensor) -> tuple[float, float]:
    model, speech_timestamps = F._silero()
    spans = speech_timestamps(x, model, sampling_rate=RATE)
    return (spans[0]["start"] / RATE, spans[-1]["end"] / RATE) if spans else (0.0, x.numel() / RATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vad", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=240, help="clips of speech16k, spread evenly")
    parser.add_argument("--root", default=str(SPEECH16K), help="a RAVDESS folder of wavs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    paths = [str(r.audio_sources()[0]) for r in discover(args.root).recordings if r.audio_sources()]
    if args.clips < len(paths):
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, args.clips).round().astype(int)]
    waves = [torch.from_numpy(decode_audio(p, RATE)) for p in paths]
    print(f"{len(waves)} clips from {args.root}", flush=True)
    F._silero()  # load the model before timing
    spans, seconds = {}, {}
    for name, fn in (("sox", _sox_span), ("silero", _silero_span)):
        t0 = time.perf_counter()
        spans[name] = np.array([fn(x) for x in waves])
        seconds[name] = (time.perf_counter() - t0) / len(waves)
        print(name, f"{seconds[name]:.3f} s/clip", flush=True)
    full = np.array([x.numel() / RATE for x in waves])
    rows = []
    for name, s in spans.items():
        found = ~((s[:, 0] == 0) & np.isclose(s[:, 1], full))
        length = s[:, 1] - s[:, 0]
        rows.append(
            [
                name,
                f"{int(found.sum())}/{len(s)}",
                f"{np.median(s[:, 0]):.2f}",
                f"{np.median(s[:, 1]):.2f}",
                f"{np.median(length):.2f} / {np.percentile(length, 95):.2f}",
                f"{float((length <= 3.5).mean()):.0%}",
                f"{seconds[name]:.3f}",
            ]
        )
    diff = np.abs(spans["sox"] - spans["silero"])
    rows.append(
        [
            "sox vs silero (same clips)",
            "",
            f"differ by {np.median(diff[:, 0]):.2f} (median)",
            f"differ by {np.median(diff[:, 1]):.2f} (median)",
            "",
            "",
            "",
        ]
    )
    header = ["VAD", "speech found", "start s (median)", "end s (median)", "length s (median / p95)",
              "fits 3.5 s", "s per clip"]  # fmt: skip
    report(
        "Voice activity: torchaudio's sox-style VAD vs silero-vad on real RAVDESS speech",
        table(header, rows),
        f"Clips: {len(waves)} of {args.root}, whole clips {np.median(full):.2f} s (median). "
        "The fixed window (no trim) is 3.5 s from 0.5 s.",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
