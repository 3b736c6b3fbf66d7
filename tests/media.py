"""Tiny real media files for tests, written with PyAV: H.264 + AAC mp4s and 16-bit PCM wavs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def tone(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)[None, :]  # (channels, samples)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_mp4(
    path: Path,
    frames: int = 30,
    fps: int = 15,
    size: int = 64,
    audio: np.ndarray | None = None,
    rate: int = 16_000,
    faststart: bool = False,
    seed: int = 0,
) -> Path:
    """An mp4 with `frames` H.264 frames (moving noise on a grey face-like blob) and, if `audio` is
    given, an AAC track of it (pass zeros for a silent track, None for no audio stream)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        v = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        a = None
        if audio is not None:
            a = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(frames):
            img = np.full((size, size, 3), 128, np.uint8)
            img[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 200 - 4 * (i % 10)
            img = (img + rng.integers(0, 8, img.shape)).astype(np.uint8)
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        if a is not None:
            fltp = audio.astype(np.float32)[None, :]
            hop = 1024  # AAC frame size
            for start in range(0, fltp.shape[1], hop):
                chunk = fltp[:, start : start + hop]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode(None):
                out.mux(packet)
    return path
