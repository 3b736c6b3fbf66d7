"""Typed configuration: one frozen dataclass per stage, the single source of every knob's name.

Field names are the names used on the command line, in sweeps, in W&B and in checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureConfig:
    """How a clip becomes features. Changing any field gives a different feature cache."""

    # Audio
    sample_rate: int = 16_000  # speech models work at 16 kHz; RAVDESS ships 48 kHz
    rms_normalize: bool = True  # equalise loudness across actors and microphones before the log-mel
    target_rms: float = 0.05  # about -26 dBFS: loud speech without clipping
    vad_trim: bool = False  # trim leading/trailing silence (torchaudio's sox-style VAD); off = fixed window
    audio_offset_s: float = 0.5  # RAVDESS clips open with ~0.5 s of silence before the statement
    audio_seconds: float = 3.5  # covers the statement in nearly every RAVDESS clip (clips run ~3-4 s)
    n_mels: int = 64  # 64 mel bins: the resolution SpecAugment's 20-bin masks are sized for
    n_fft: int = 512  # 32 ms at 16 kHz
    win_length: int = 400  # 25 ms analysis window, the speech standard
    hop_length: int = 160  # 10 ms hop: 3.5 s -> 351 frames, wide enough for 40-frame time masks
    # Video
    num_frames: int = 16  # frames sampled evenly over the clip
    frame_size: int = 112  # S x S crops: ResNet18 works well from 112 px, 4x cheaper than 224
    face_crop: bool = True  # OpenCV Haar face crop; the centre crop is the fallback, recorded per clip
    face_margin: float = 0.25  # grow the detected box by 25% per side to keep brows, chin and mouth
    min_video_frames: int = 8  # fewer decoded frames than this is a broken or truncated video: skipped

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_mels", "n_fft", "win_length", "hop_length", "num_frames", "frame_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"FeatureConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.audio_seconds <= 0 or self.audio_offset_s < 0:
            raise ValueError("FeatureConfig needs audio_seconds > 0 and audio_offset_s >= 0")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.min_video_frames < 1:
            raise ValueError("min_video_frames must be >= 1")

    @property
    def audio_samples(self) -> int:
        return round(self.audio_seconds * self.sample_rate)

    @property
    def audio_frames(self) -> int:
        """Log-mel frames per clip (torch.stft with center=True)."""
        return self.audio_samples // self.hop_length + 1

    @property
    def audio_shape(self) -> tuple[int, int]:
        return (self.n_mels, self.audio_frames)  # (freq, time), torchaudio's layout

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.frame_size, self.frame_size, 3)  # (T, H, W, C), uint8 RGB

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> FeatureConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown FeatureConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


# Presets: `ravdess` is sized for the real recordings; `demo` for the small synthetic demo set
# (2 s clips with ~0.3 s of lead-in, 96 px frames), so a CPU trains on it in seconds per epoch.
FEATURE_PRESETS: dict[str, FeatureConfig] = {
    "ravdess": FeatureConfig(),
    "demo": FeatureConfig(
        audio_offset_s=0.25, audio_seconds=1.5, n_mels=32, num_frames=8, frame_size=48, face_crop=False
    ),
}


def feature_preset(name: str) -> FeatureConfig:
    if name not in FEATURE_PRESETS:
        raise ValueError(f"unknown feature preset {name!r}; choose one of: {', '.join(FEATURE_PRESETS)}")
    return FEATURE_PRESETS[name]


__all__ = ["FeatureConfig", "FEATURE_PRESETS", "feature_preset"]
