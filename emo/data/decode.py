"""Decode RAVDESS media with PyAV (FFmpeg): audio as mono float32 at a target rate, video as RGB frames.

torchvision 0.26 has no `io.read_video` and `torchaudio.load` needs torchcodec, so PyAV does the
decoding; torchaudio does the resampling. Every failure raises `DecodeError` whose message is the
reason a person reads in the skip list.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

# Peak below this (about -100 dBFS) is digital silence: RAVDESS video-only mp4s carry such a track.
SILENCE_PEAK = 1e-5
# A stream that decodes to less than this share of what its header promises is truncated or corrupt:
# skipped rather than used, since its features would not cover the same span as its neighbours'.
# (Headers can be off by a frame or two on good files, so the check is not exact.)
MIN_DECODED_SHARE = 0.9


class DecodeError(RuntimeError):
    """A file that cannot be decoded; `str(err)` is the reason."""


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise DecodeError(f"cannot open as media ({_ffmpeg_reason(e)})") from e
    except OSError as e:
        raise DecodeError(f"cannot open: {e.strerror or e}") from e


def _ffmpeg_reason(e: av.error.FFmpegError) -> str:
    # PyAV messages end with the path; the reason is the part before it.
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(": '")[0]


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None if it is whole (or not a RIFF/WAVE file).

    FFmpeg clamps a wav's duration to the bytes that are there, so a cut wav decodes without an error
    and with a duration that matches its decoded length: only the size its `data` chunk declares
    tells. Read from the chunk headers, so it holds for any codec inside the RIFF file."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # RF64, Wave64, not a wav at all: FFmpeg's own checks apply
            pos, byte_rate = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                cid, n = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"fmt " and n >= 12:
                    byte_rate = int.from_bytes(f.read(12)[8:12], "little")
                if cid == b"data":
                    if n in (0, 0xFFFFFFFF):
                        return None  # written as a stream: the size was never filled in
                    have = size - pos - 8
                    if have >= MIN_DECODED_SHARE * n:
                        return None
                    if byte_rate:
                        held, declared = f"{have / byte_rate:.2f} s", f"{n / byte_rate:.2f} s"
                    else:
                        held, declared = f"{have} bytes", f"{n} bytes"
                    return f"audio truncated: the file holds {held} of the {declared} its WAV header declares"
                pos += 8 + n + (n & 1)  # chunks are padded to an even size
    except OSError:
        return None  # opening it for decoding reports the problem
    return None


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream of `path` to mono float32 in [-1, 1] at `sample_rate`.

    Returns shape (samples,). Raises `DecodeError` if there is no audio stream, it cannot be decoded,
    or it is cut short of what its header declares.
    """
    path = Path(path)
    truncated = wav_truncation(path)
    if truncated:
        raise DecodeError(truncated)
    with _open(path) as container:
        if not container.streams.audio:
            raise DecodeError("no audio stream")
        stream = container.streams.audio[0]
        # Planar float keeps channels apart so we can average them; rate and layout stay as they are.
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        native_rate = stream.codec_context.sample_rate or stream.rate
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        error = None
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())  # (channels, samples)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as e:
            error = _ffmpeg_reason(e)  # a glitch in the last packet of a good file is tolerated
    got = sum(c.shape[1] for c in chunks) / native_rate if native_rate else 0.0
    # A file cut short may end without any decoder error: compare with what the header declares.
    if (declared and got < MIN_DECODED_SHARE * declared) or (error and not declared):
        of = f" of {declared:.2f} s" if declared else ""
        raise DecodeError(f"audio truncated or corrupt: {got:.2f} s{of} decode" + (f" ({error})" if error else ""))
    if not chunks or not native_rate:
        raise DecodeError("audio stream holds no samples")
    wave = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32)  # mono: (samples,)
    if native_rate != sample_rate:
        wave = AF.resample(torch.from_numpy(wave), native_rate, sample_rate).numpy()
    return wave


def is_silent(wave: np.ndarray) -> bool:
    return wave.size == 0 or float(np.abs(wave).max()) < SILENCE_PEAK


def count_video_frames(path: str | Path) -> int:
    """Frames in the first video stream, from the container if it says, else by decoding."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise DecodeError("no video stream")
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        try:
            return sum(1 for _ in container.decode(stream))
        except av.error.FFmpegError as e:
            raise DecodeError(f"video decode error ({_ffmpeg_reason(e)})") from e


def decode_video(path: str | Path, num_frames: int, threads: int = 0) -> tuple[np.ndarray, int]:
    """Decode `num_frames` RGB frames sampled evenly over the first video stream of `path`.

    Returns (frames (T, H, W, 3) uint8, frames in the stream). Only the chosen frames are converted
    to RGB; the rest are decoded and dropped (H.264 cannot skip them). A stream that decodes to fewer
    frames than `MIN_DECODED_SHARE` of its header's count is truncated: `DecodeError`. One a frame or
    two short of its header is sampled again over the frames that are really there.
    `threads=0` lets FFmpeg choose; pass 1 in worker processes that already share the cores.
    """
    path = Path(path)
    total = count_video_frames(path)
    frames, decoded = _decode_at(path, sample_indices(total, num_frames), threads)
    if decoded < total:
        if decoded < MIN_DECODED_SHARE * total:
            raise DecodeError(f"video truncated or corrupt: {decoded} of {total} frames decode")
        total = decoded
        frames, decoded = _decode_at(path, sample_indices(total, num_frames), threads)
    return frames, total


def sample_indices(total: int, num: int) -> np.ndarray:
    """`num` frame indices spread evenly over `total` frames (centres of `num` equal segments)."""
    if total <= 0:
        raise DecodeError("video stream holds no frames")
    return np.minimum(((np.arange(num) + 0.5) * total / num).astype(np.int64), total - 1)


def _decode_at(path: Path, indices: np.ndarray, threads: int) -> tuple[np.ndarray, int]:
    wanted: dict[int, list[int]] = {}
    for slot, idx in enumerate(indices.tolist()):
        wanted.setdefault(idx, []).append(slot)  # a short video repeats frames
    out: list[np.ndarray | None] = [None] * len(indices)
    decoded = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        try:
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                if i in wanted:
                    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                    for slot in wanted[i]:
                        out[slot] = rgb
        except av.error.FFmpegError:
            pass  # a truncated tail: keep what decoded; the caller resamples over `decoded` frames
    if any(f is None for f in out):
        return np.empty(0, np.uint8), decoded
    return np.stack(out), decoded
