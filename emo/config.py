"""Typed configuration: one frozen dataclass per stage, the single source of every knob's name.

Field names are the names used on the command line, in sweeps, in W&B and in checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

# Face detectors, in the order they are tried: a clip where none finds a face is centre-cropped. MTCNN's
# weights ship in facenet-pytorch's wheel; the Haar cascade in OpenCV's.
FACE_DETECTORS = ("mtcnn", "haar")


@dataclass(frozen=True)
class FeatureConfig:
    """How a clip becomes features. Changing any field gives a different feature cache."""

    # Audio
    sample_rate: int = 16_000  # speech models work at 16 kHz; RAVDESS ships 48 kHz
    rms_normalize: bool = True  # equalise loudness across actors and microphones before the log-mel
    target_rms: float = 0.05  # about -26 dBFS: loud speech without clipping
    vad_trim: bool = False  # trim leading/trailing silence, then the window starts at the speech; off = fixed window
    vad_method: Literal["sox", "silero"] = "sox"  # the trim's VAD: torchaudio's sox-style one, or silero-vad's model
    audio_offset_s: float = 0.5  # RAVDESS clips open with ~0.5 s of silence before the statement
    audio_seconds: float = 3.5  # covers the statement in nearly every RAVDESS clip (clips run ~3-4 s)
    n_mels: int = 64  # 64 mel bins: the resolution SpecAugment's 20-bin masks are sized for
    n_fft: int = 512  # 32 ms at 16 kHz
    win_length: int = 400  # 25 ms analysis window, the speech standard
    hop_length: int = 160  # 10 ms hop: 3.5 s -> 351 frames, wide enough for 40-frame time masks
    # Video
    num_frames: int = 16  # frames sampled evenly over the clip
    frame_size: int = 112  # S x S crops: ResNet18 works well from 112 px, 4x cheaper than 224
    face_crop: bool = True  # crop to the face; the centre crop is the fallback, recorded per clip
    face_detector: Literal["mtcnn", "haar"] = "mtcnn"  # mtcnn, then Haar where it finds no face; haar: Haar only
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
        if self.vad_method not in ("sox", "silero"):
            raise ValueError(f"vad_method must be sox or silero, got {self.vad_method!r}")
        if self.vad_trim and self.vad_method == "silero" and self.sample_rate not in (8_000, 16_000):
            raise ValueError(f"vad_method='silero' works at 8 or 16 kHz, not sample_rate {self.sample_rate}")
        if self.face_detector not in FACE_DETECTORS:
            raise ValueError(f"face_detector must be one of {', '.join(FACE_DETECTORS)}, got {self.face_detector!r}")

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


FUSIONS = ("audio", "video", "late", "concat", "gated", "xattn")
# What each stream's model reads. The first choice trains its encoder end to end on the cached log-mels
# or frames; `own` is the encoder of a finished run (its best checkpoint), frozen: its embeddings are
# computed once per clip into a cache of their own (emo.data.embeddings) and a trial trains the head only.
AUDIO_FRONTENDS = ("logmel", "own", "wav2vec2_base", "hubert_base", "wavlm_base_plus", "egemaps", "egemaps_lld")
# Pretrained speech encoders among the audio front ends (torchaudio.pipelines; emo.data.embeddings).
SPEECH_FRONTENDS = AUDIO_FRONTENDS[2:5]
# openSMILE's eGeMAPSv02 (the optional extra `opensmile`): 88 functionals per clip, or its 25 low-level
# descriptors over stretches of the clip. Hand-made features of many scales: the head standardises them.
PARALINGUISTIC_FRONTENDS = AUDIO_FRONTENDS[5:]
VIDEO_FRONTENDS = ("frames", "own", "resnet18_imagenet", "resnet50_imagenet")
# Pretrained image encoders among the video front ends, on each face-cropped frame (torchvision).
IMAGE_FRONTENDS = VIDEO_FRONTENDS[2:]
# TrainConfig fields that say how a run is operated (logging, checkpoint cadence), never what it
# computes: two configurations that differ only here train the same model to the same metrics.
OPERATIONAL_FIELDS = frozenset({"wandb", "wandb_project", "checkpoint_every"})
Fusion = Literal["audio", "video", "late", "concat", "gated", "xattn"]
AudioFrontend = Literal["logmel", "own", "wav2vec2_base", "hubert_base", "wavlm_base_plus", "egemaps", "egemaps_lld"]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. The CLI flags, sweep search spaces, W&B config and checkpoints
    all use these names. Defaults are the training guide's recipe unless the comment says otherwise;
    the comment on a field's line is its `--help` text (emo.cli.field_reasons)."""

    # Data
    data_root: str | None = None  # RAVDESS folder; None = the built-in synthetic demo set
    preset: Literal["auto", "ravdess", "demo"] = "auto"  # feature settings; auto: demo for the demo set
    # FeatureConfig fields set over the preset's ({"n_mels": 128}; the flags --n_mels 128 ...): another
    # feature cache, and a value recorded with the run like every other knob.
    features: dict = dataclasses.field(default_factory=dict)
    num_classes: Literal[4, 8] = 8  # 8 RAVDESS emotions, or the guide's 4 groups
    split_mode: Literal["actor", "stratified"] = "actor"  # actor-independent is the honest protocol
    folds: int = 0  # k-fold over actors (the report's confirmation runs); 0: the single actor split
    fold: int = 0  # with folds: which fold, 0..folds-1; it tests on its own block of actors
    # Model
    fusion: Fusion = "gated"  # the method under study; video-only is the baseline to beat
    audio_frontend: AudioFrontend = "logmel"  # logmel: train the encoder; the others: frozen (own, SSL, eGeMAPS)
    layer_mix: Literal["learnt", "last"] = (
        "learnt"  # pretrained speech front ends: a learnt softmax mix of every layer (SUPERB), or the last
    )
    video_frontend: Literal["frames", "own", "resnet18_imagenet", "resnet50_imagenet"] = (
        "frames"  # frames: train the video encoder; own: a finished run's; the others: torchvision's, frozen
    )
    audio_encoder: str | None = (
        None  # with audio_frontend=own: that run's checkpoint folder ({split}: see emo.train_encoders)
    )
    video_encoder: str | None = (
        None  # with video_frontend=own: that run's checkpoint folder ({split}: see emo.train_encoders)
    )
    use_resnet_audio: bool = False  # guide flag: ResNet18 on the log-mel instead of the light CNN
    video_backbone: Literal["resnet18", "light"] = "resnet18"  # per-frame CNN; light: 4 conv blocks, for CPUs
    video_weights: Literal["none", "imagenet"] = "none"  # imagenet (resnet18 only) needs the internet once
    video_norm: Literal["imagenet", "clip", "local"] = "imagenet"  # standardise frames: ImageNet's, per clip, per pixel
    video_gray: bool = False  # luminance only: skin, hair and background colours vary by actor, not by emotion
    train_frames: int = 0  # frames per clip in training, one from each of this many segments; 0: all
    video_augment: float = 0.0  # per-clip flip and colour jitter while training (brightness etc. within 1 +- this)
    video_shuffle_channels: bool = False  # per-clip random RGB channel order while training: colour edges, not colours
    video_spatial: float = 0.0  # per-clip random zoom (1 +- this) and shift (this share of the frame) while training
    embed_dim: int = 128  # width of the projected audio/video embeddings the fusion heads mix
    dropout: float = 0.3  # before the classifier (the guide's head: ReLU + Dropout)
    modality_dropout: float = 0.2  # drop audio or video (each with this p, never both) while training
    gate_bias: float = 0.3  # the gate's initial value on audio (sigmoid of its bias): leans to video
    attn_heads: int = 4  # cross-attention heads (xattn)
    attn_dropout: float = 0.1  # dropout on the cross-attention weights (xattn); the head has its own
    audio_width: int = 32  # light audio CNN: channels of its first block, doubled in each of its 4
    video_width: int = 32  # light video CNN: channels of its first block, doubled in each of its 4
    freq_mask: int = 20  # SpecAugment: widest frequency mask, in bins of a 64-mel log-mel (scaled to others)
    time_mask: int = 40  # SpecAugment: widest time mask, in frames of a 351-frame log-mel (scaled to others)
    # Optimisation
    lr: float = 1e-3  # guide default; it suggests 5e-4 or 3e-4 when fusion underperforms
    weight_decay: float = 1e-4  # AdamW
    batch_size: int = 16  # guide default
    epochs: int = 60  # real data (the guide says 20): ResNet18 on speech16k still improved at epoch 40-55
    early_stopping_patience: int = 10  # epochs without a better val Macro-F1 before stopping
    use_cosine_annealing: bool = True  # guide flag: cosine decay to 0 over `epochs` (steadier last epochs)
    warmup_epochs: float = 1.0  # linear learning-rate warmup over this many epochs, stepped per batch
    ema_epochs: float = 1.0  # validate and test a moving average of the weights over ~this many epochs; 0: off
    label_smoothing: float = 0.1  # cross-entropy label smoothing (training loss)
    mixup: float = 0.0  # mixup's alpha: train on blends of two clips (inputs and labels, weight ~ Beta); 0: off
    class_balance: bool = True  # weight the training loss by inverse class frequency (4 classes: 12/8/32/8)
    seed: int = 0  # seeds the weights, batching, augmentation and the stratified split
    device: str = "auto"  # auto: cuda if available, else cpu
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # autocast; auto: bf16 on CUDA and on CPUs with native bf16
    # Checkpoints (with --checkpoint_dir, and every sweep trial): at RAVDESS size a checkpoint costs
    # ~0.5 s (BENCHMARKS.md), a quarter of a fast GPU epoch. A retry or resume repeats at most
    # checkpoint_every - 1 epochs, ending the same.
    checkpoint_every: int = 1  # save every this many epochs, and after the last; 1 loses nothing
    # Logging
    wandb: bool = False  # log to Weights & Biases (offline when no API key is configured)
    wandb_project: str = "emo-sweeps"  # the W&B project the run is logged to

    def __post_init__(self) -> None:
        _check_choice(self, "fusion", FUSIONS)
        _check_choice(self, "num_classes", (4, 8))
        _check_choice(self, "split_mode", ("actor", "stratified"))
        _check_choice(self, "preset", ("auto", "ravdess", "demo"))
        if not isinstance(self.features, dict):
            raise ValueError(f"features must be a dict of FeatureConfig fields, got {self.features!r}")
        self.feature_config()  # an unknown field or a bad value fails here, not when the data loads
        _check_choice(self, "video_weights", ("none", "imagenet"))
        _check_choice(self, "video_backbone", ("resnet18", "light"))
        _check_choice(self, "video_norm", ("imagenet", "clip", "local"))
        _check_choice(self, "precision", ("auto", "fp32", "bf16"))
        _check_choice(self, "audio_frontend", AUDIO_FRONTENDS)
        _check_choice(self, "video_frontend", VIDEO_FRONTENDS)
        _check_choice(self, "layer_mix", ("learnt", "last"))
        for stream in ("audio", "video"):
            own, path = getattr(self, f"{stream}_frontend") == "own", getattr(self, f"{stream}_encoder")
            if own and not path:
                raise ValueError(f"{stream}_frontend='own' needs --{stream}_encoder: a run's checkpoint folder")
            if path and not own:
                raise ValueError(f"--{stream}_encoder is read only with --{stream}_frontend own")
        for name in ("video_augment", "video_spatial"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.video_weights != "none" and self.video_backbone != "resnet18":
            raise ValueError(f"video_weights={self.video_weights!r} needs video_backbone='resnet18'")
        for name in (
            "lr",
            "batch_size",
            "epochs",
            "embed_dim",
            "attn_heads",
            "checkpoint_every",
            "audio_width",
            "video_width",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in (
            "weight_decay",
            "freq_mask",
            "time_mask",
            "early_stopping_patience",
            "warmup_epochs",
            "train_frames",
            "ema_epochs",
            "mixup",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("dropout", "attn_dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.modality_dropout <= 0.5:
            raise ValueError(
                f"modality_dropout must be in [0, 0.5] (audio and video each), got {self.modality_dropout!r}"
            )
        if not 0 < self.gate_bias < 1:
            raise ValueError(f"gate_bias is the gate's initial value and must be in (0, 1), got {self.gate_bias!r}")
        if self.folds < 0 or self.folds == 1:
            raise ValueError(f"folds must be 0 (one actor split) or >= 2, got {self.folds!r}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be in 0..{self.folds - 1} with folds={self.folds}, got {self.fold!r}")
        if self.folds and self.split_mode != "actor":
            raise ValueError("folds are over actors: they need split_mode='actor'")
        if self.embed_dim % self.attn_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by attn_heads ({self.attn_heads})")

    @property
    def streams(self) -> tuple[str, ...]:
        """The inputs this fusion method reads."""
        return {"audio": ("audio",), "video": ("video",)}.get(self.fusion, ("audio", "video"))

    def frozen(self, stream: str) -> bool:
        """Whether `stream` is read through a frozen front end's cached embeddings (not trained here)."""
        return getattr(self, f"{stream}_frontend") not in (AUDIO_FRONTENDS[0], VIDEO_FRONTENDS[0])

    def feature_config(self) -> FeatureConfig:
        """The features this run trains on: its preset's (auto: `demo` for the built-in demo set, else
        `ravdess`) with `features` set over them."""
        preset = self.preset if self.preset != "auto" else ("demo" if self.data_root is None else "ravdess")
        return feature_preset(preset).replace(**self.features)

    @property
    def split_name(self) -> str:
        """This run's split in a word: `fold2` of k folds, else the split mode (`actor`, `stratified`)."""
        return f"fold{self.fold}" if self.folds else self.split_mode

    def encoder_path(self, stream: str) -> str | None:
        """The frozen `stream` encoder's checkpoint folder for this run. `{split}` in the path becomes
        `split_name`: a sweep (the actor split) and each of its report's confirmation folds read the
        encoder trained without their validation and test actors (python -m emo.train_encoders)."""
        path = getattr(self, f"{stream}_encoder")
        return None if path is None else path.replace("{split}", self.split_name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)


# The built-in demo set's recipe: what `sweeps.run`, the report and `emo.train` train it with unless a
# flag says otherwise. TrainConfig's own defaults are for real RAVDESS; these are sized so that two CPU
# cores converge in minutes (BENCHMARKS.md, "Training quality"). `epochs` is the sweeps' --max-epochs.
DEMO_TRAIN: dict = {
    "video_backbone": "light",  # ResNet18 per frame costs minutes per epoch on a CPU
    "audio_width": 8,  # 8-16-32-64 channels: the demo's pitch contours need no more
    "video_width": 16,
    "video_gray": True,  # the demo's actors differ in skin, hair and background colour; expressions do not
    # Each pixel against its neighbourhood: a faint mouth stands out as much as a clear one. Over 4 folds
    # x 2 seeds every fusion method rose (late 0.857 -> 0.950, xattn 0.857 -> 0.889 at 8 classes),
    # video-only barely (0.366 -> 0.372) (BENCHMARKS.md, "Training quality", 17:17, and "compared, run by
    # run", 2026-12-07). Actor 5's lips have the luminance of its skin; colour frames show them but
    # measured no better over all methods (19:18, 19:19).
    "video_norm": "local",
    "video_augment": 0.3,
    "train_frames": 2,  # its faces hold one expression per clip: 2 of 8 frames per step, all 8 to evaluate
    "epochs": 24,
}


def _check_choice(cfg, name: str, choices: tuple) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")
