"""Turn one recording into features: a log-mel spectrogram and T face-cropped RGB frames.

    audio: (n_mels, frames) float32 log-mel in dB      video: (T, S, S, 3) uint8 RGB

`extract_recording` is what each worker process runs; it never raises for bad media: it returns the
features it could make and the reason for every file it could not use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF

from emo.config import FeatureConfig
from emo.data.decode import DecodeError, decode_audio, decode_video, is_silent

# Faces are searched on a copy this wide: detection cost grows with pixels, and RAVDESS faces
# are ~250 px wide at 1280x720, still ~80 px at 320.
_DETECT_WIDTH = 320


@dataclass
class ClipFeatures:
    recording: str
    audio: np.ndarray | None = None  # (n_mels, frames) float32
    video: np.ndarray | None = None  # (T, S, S, 3) uint8
    audio_file: str | None = None
    video_file: str | None = None
    audio_seconds: float = 0.0  # length of the decoded audio before cropping
    video_frames: int = 0  # frames in the source video
    crop: str = ""  # "mtcnn" | "haar" (the detector that found the face) | "center" | "" (no video)
    # (file, reason) for every source that could not give its stream. The caller lists a file that
    # ended up unused as skipped with these reasons, and a used one (e.g. an mp4 whose video served
    # but whose audio track is silent) as a note.
    problems: list[tuple[str, str]] = field(default_factory=list)


@cache
def _mel(cfg: FeatureConfig) -> torch.nn.Module:
    return torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            n_mels=cfg.n_mels,
            power=2.0,
        ),
        torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0),
    )


def audio_window(wave: np.ndarray, cfg: FeatureConfig) -> torch.Tensor:
    """Mono waveform at `cfg.sample_rate` -> the window features are made of: (VAD-trimmed,) loudness-
    normalised, `cfg.audio_seconds` from `cfg.audio_offset_s`, zero-padded: `cfg.audio_samples` float32.
    The log-mel and the pretrained speech encoders (emo.data.embeddings) read the same stretch."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if cfg.vad_trim:
        x = _silero_trim(x, cfg.sample_rate) if cfg.vad_method == "silero" else _vad_trim(x, cfg.sample_rate)
    if cfg.rms_normalize:
        rms = x.pow(2).mean().sqrt()
        if rms > 0:
            x = x * (cfg.target_rms / rms)
    # The offset skips the silence before the statement; a VAD trim has already cut it.
    start = 0 if cfg.vad_trim else round(cfg.audio_offset_s * cfg.sample_rate)
    x = x[start : start + cfg.audio_samples]
    return torch.nn.functional.pad(x, (0, cfg.audio_samples - x.numel()))  # zero-pad short clips at the end


def audio_features(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mono waveform at `cfg.sample_rate` -> log-mel (n_mels, frames) of exactly `cfg.audio_shape`."""
    x = audio_window(wave, cfg)
    with torch.no_grad():
        mel = _mel(cfg)(x)  # (n_mels, frames)
    assert tuple(mel.shape) == cfg.audio_shape, (tuple(mel.shape), cfg.audio_shape)
    return mel.numpy().astype(np.float32, copy=False)


def _vad_trim(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Trim leading and trailing silence with torchaudio's VAD (it trims the front; flip for the back)."""
    trimmed = AF.vad(x, sample_rate)
    if trimmed.numel() == 0:  # nothing it calls speech (e.g. a pure tone): keep the clip, untrimmed
        return x
    return AF.vad(trimmed.flip(-1), sample_rate).flip(-1)


@cache
def _silero():
    """silero-vad's model (its JIT file ships in the wheel) and its `get_speech_timestamps`."""
    threads = torch.get_num_threads()
    try:
        import silero_vad  # sets torch's threads to 1 for the whole process when first imported
    finally:
        torch.set_num_threads(threads)  # the rest of this process (training, too) keeps its own
    return silero_vad.load_silero_vad(), silero_vad.get_speech_timestamps


def _silero_trim(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """From the start of the first stretch silero-vad calls speech to the end of the last (its default
    threshold and 30 ms padding); a clip it finds no speech in is kept whole."""
    model, speech_timestamps = _silero()
    spans = speech_timestamps(x, model, sampling_rate=sample_rate)
    return x[spans[0]["start"] : spans[-1]["end"]] if spans else x


@cache
def _face_detector() -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(
            f"OpenCV's Haar cascade is missing ({path}); opencv-python-headless 5.x dropped them: "
            "install opencv-python-headless<5"
        )
    return detector


def _haar_face(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest frontal face (x, y, w, h) in the middle, first-quarter or third-quarter frame."""
    t = len(frames)
    for i in dict.fromkeys((t // 2, t // 4, (3 * t) // 4)):
        frame = frames[i]
        h, w = frame.shape[:2]
        scale = min(1.0, _DETECT_WIDTH / w)
        small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        faces = _face_detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        if len(faces):
            x, y, fw, fh = max(faces, key=lambda b: b[2] * b[3])
            return tuple(round(v / scale) for v in (x, y, fw, fh))
    return None


@cache
def _mtcnn():
    try:
        from facenet_pytorch import MTCNN
    except ImportError as e:  # a broken install; the Haar cascade still works
        raise RuntimeError(
            f"face_detector='mtcnn' needs facenet-pytorch ({e}): run uv sync, or pass --face_detector haar"
        ) from e
    # select_largest: the actor, not a face on a poster behind them; thresholds are the package's defaults.
    return MTCNN(keep_all=False, select_largest=True, device="cpu")


def mtcnn_boxes(frames: np.ndarray) -> list[tuple[float, float, float, float] | None]:
    """MTCNN's face box (x, y, w, h) in every frame (None where it finds none), detected on copies
    `_DETECT_WIDTH` wide in one batch: RAVDESS faces stay ~80 px there, above MTCNN's 20 px minimum."""
    h, w = frames.shape[1:3]
    scale = min(1.0, _DETECT_WIDTH / w)
    size = (round(w * scale), round(h * scale))
    small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]) if scale < 1 else frames
    with torch.inference_mode():
        boxes, _ = _mtcnn().detect(small)
    out = []
    for b in boxes:  # per frame: None, or a (1, 4) array of x1, y1, x2, y2
        if b is None:
            out.append(None)
            continue
        x1, y1, x2, y2 = (float(v) / scale for v in np.asarray(b, np.float64).reshape(-1, 4)[0])
        out.append((x1, y1, x2 - x1, y2 - y1))
    return out


def find_face(frames: np.ndarray, detector: str = "haar") -> tuple[tuple[int, int, int, int] | None, str]:
    """One face box (x, y, w, h) for the clip and the detector that found it ("mtcnn" or "haar"), or
    (None, "") when none did. MTCNN's box is the median of its per-frame boxes (steady if one frame
    is missed or off); the Haar cascade looks at up to three frames."""
    if detector == "mtcnn":
        found = [b for b in mtcnn_boxes(frames) if b is not None]
        if found:
            return tuple(round(v) for v in np.median(np.asarray(found), axis=0)), "mtcnn"
    face = _haar_face(frames)
    return (face, "haar") if face is not None else (None, "")


def square_box(box: tuple[int, int, int, int], margin: float, width: int, height: int) -> tuple[int, ...]:
    """Grow `box` by `margin` per side, make it square and keep it inside the frame: (x0, y0, side)."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    side = min(round(max(w, h) * (1 + 2 * margin)), width, height)
    x0 = int(min(max(cx - side / 2, 0), width - side))
    y0 = int(min(max(cy - side / 2, 0), height - side))
    return x0, y0, side


def video_features(frames: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, str]:
    """(T, H, W, 3) RGB frames -> (T, S, S, 3) crops and how they were cropped: the detector that found
    the face ("mtcnn", "haar") or "center".

    One box for the whole clip (RAVDESS actors sit still): a per-frame box would jitter.
    """
    t, h, w, _ = frames.shape
    face, how = find_face(frames, cfg.face_detector) if cfg.face_crop else (None, "")
    if face is not None:
        x0, y0, side = square_box(face, cfg.face_margin, w, h)
    else:
        side = min(h, w)
        x0, y0 = (w - side) // 2, (h - side) // 2
        how = "center"
    s = cfg.frame_size
    out = np.empty((t, s, s, 3), np.uint8)
    for i in range(t):
        # INTER_AREA: the right filter for shrinking (no aliasing); cubic when the crop is smaller than S.
        interp = cv2.INTER_AREA if side >= s else cv2.INTER_CUBIC
        out[i] = cv2.resize(frames[i, y0 : y0 + side, x0 : x0 + side], (s, s), interpolation=interp)
    return out, how


def extract_recording(
    recording: str,
    audio_sources: list[str],
    video_sources: list[str],
    cfg: FeatureConfig,
    decode_threads: int = 0,
) -> ClipFeatures:
    """Features for one recording, trying each stream's sources in order of preference.

    A source that fails is recorded in `problems` and the next one is tried; a recording left with
    no usable stream comes back with neither `audio` nor `video` (the caller skips it).
    """
    out = ClipFeatures(recording=recording)
    for src in audio_sources:
        try:
            wave = decode_audio(src, cfg.sample_rate)
        except DecodeError as e:
            out.problems.append((src, f"audio: {e}"))
            continue
        if is_silent(wave):
            out.problems.append((src, "audio: all-zero track (digital silence), counted as no audio"))
            continue
        out.audio = audio_features(wave, cfg)
        out.audio_file, out.audio_seconds = src, wave.size / cfg.sample_rate
        break
    for src in video_sources:
        try:
            frames, total = decode_video(src, cfg.num_frames, threads=decode_threads)
        except DecodeError as e:
            out.problems.append((src, f"video: {e}"))
            continue
        if total < cfg.min_video_frames:
            out.problems.append((src, f"video: too short ({total} frames; need at least {cfg.min_video_frames})"))
            continue
        out.video, out.crop = video_features(frames, cfg)
        out.video_file, out.video_frames = src, total
        break
    return out
