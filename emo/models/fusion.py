"""The six methods: audio-only, video-only and four ways to fuse the two.

Every model takes (audio (B, F, Ta) float log-mel, video (B, T, S, S, 3) uint8) -- either may be None
when the method does not read it -- and returns a dict with `logits` (B, C) and whatever else the
sweep wants to watch (`gate` (B,) for the gated model; `keep_audio`/`keep_video` (B,) in training).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emo.config import TrainConfig
from emo.models.encoders import AudioEncoder, VideoEncoder

MODELS: dict[str, type[FusionModel]] = {}


def register(name: str):
    def add(cls):
        MODELS[name] = cls
        cls.method = name
        return cls

    return add


def classifier(dim_in: int, dim: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The guide's head: Linear -> ReLU -> Dropout -> Linear."""
    return nn.Sequential(
        nn.Linear(dim_in, dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dim, num_classes)
    )


def modality_keep_masks(batch: int, p: float, training: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: drop audio with probability p, video with probability p, never both.

    One uniform draw u per sample: u < p drops audio, p <= u < 2p drops video. Returns float keep masks
    (B,) for audio and video (1 = keep)."""
    ones = torch.ones(batch, device=device)
    if not training or p == 0:
        return ones, ones
    u = torch.rand(batch, device=device)
    drop_audio = u < p
    drop_video = (u >= p) & (u < 2 * p)
    return (~drop_audio).float(), (~drop_video).float()


class FusionModel(nn.Module):
    """Base: builds the encoders the method reads; subclasses define `forward_head`."""

    method: str
    streams: tuple[str, ...] = ("audio", "video")

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        if "audio" in self.streams:
            self.audio = AudioEncoder(cfg.use_resnet_audio, cfg.freq_mask, cfg.time_mask, d)
        if "video" in self.streams:
            self.video = VideoEncoder(cfg.video_backbone, cfg.video_weights, d)

    def forward_features(self, audio, video) -> dict[str, torch.Tensor]:
        out = {}
        if "audio" in self.streams:
            out["audio_tokens"] = self.audio(audio)  # (B, Ta', D)
        if "video" in self.streams:
            out["video_tokens"] = self.video(video)  # (B, T, D)
        if len(self.streams) == 2:
            b = out["audio_tokens"].shape[0]
            keep_a, keep_v = modality_keep_masks(
                b, self.cfg.modality_dropout, self.training, out["audio_tokens"].device
            )
            out["keep_audio"], out["keep_video"] = keep_a, keep_v
            out["audio_tokens"] = out["audio_tokens"] * keep_a.view(-1, 1, 1)
            out["video_tokens"] = out["video_tokens"] * keep_v.view(-1, 1, 1)
        return out

    def forward_head(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, audio: torch.Tensor | None, video: torch.Tensor | None) -> dict[str, torch.Tensor]:
        feats = self.forward_features(audio, video)
        out = self.forward_head(feats)
        out.update({k: feats[k] for k in ("keep_audio", "keep_video") if k in feats})
        return out


class SingleStream(FusionModel):
    """One stream's tokens, mean-pooled over time, then the classifier."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.head = classifier(cfg.embed_dim, cfg.embed_dim, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        return {"logits": self.head(feats[f"{self.streams[0]}_tokens"].mean(1))}


@register("audio")
class AudioOnly(SingleStream):
    streams = ("audio",)


@register("video")
class VideoOnly(SingleStream):
    streams = ("video",)


@register("late")
class LateFusion(FusionModel):
    """Each stream has its own classifier; the prediction averages their probabilities over the kept
    branches: a clip whose audio or video modality dropout removed (training only) is predicted by the
    other branch alone, so each branch also learns to stand on its own."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.audio_head = classifier(cfg.embed_dim, cfg.embed_dim, cfg.num_classes, cfg.dropout)
        self.video_head = classifier(cfg.embed_dim, cfg.embed_dim, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        la = self.audio_head(feats["audio_tokens"].mean(1))  # (B, C); a dropped branch's is ignored
        lv = self.video_head(feats["video_tokens"].mean(1))
        keep = torch.stack([feats["keep_audio"], feats["keep_video"]]).unsqueeze(-1)  # (2, B, 1)
        # Log of the mean probability over the kept branches (log 0 = -inf removes a dropped one; never
        # both): cross-entropy on these logits is the NLL of the averaged prediction.
        log_w = keep.log() - keep.sum(0).log()  # log(1/2) each, or log 1 and -inf for a dropped clip
        logits = torch.logsumexp(torch.stack([la.log_softmax(-1), lv.log_softmax(-1)]) + log_w, 0)
        return {"logits": logits, "audio_logits": la, "video_logits": lv}


@register("concat")
class ConcatFusion(FusionModel):
    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.head = classifier(2 * cfg.embed_dim, cfg.embed_dim, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        x = torch.cat([feats["audio_tokens"].mean(1), feats["video_tokens"].mean(1)], dim=-1)  # (B, 2D)
        return {"logits": self.head(x)}


@register("gated")
class GatedFusion(FusionModel):
    """g = sigmoid(W [a; v] + b) per embedding dimension; h = g * a + (1 - g) * v.

    W starts at zero and b at logit(gate_bias), so every clip starts with g = gate_bias (0.3: leaning to
    video, the stronger stream on RAVDESS); training moves it from there."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        d = cfg.embed_dim
        self.gate = nn.Linear(2 * d, d)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, math.log(cfg.gate_bias / (1 - cfg.gate_bias)))
        self.head = classifier(d, d, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        a, v = feats["audio_tokens"].mean(1), feats["video_tokens"].mean(1)  # (B, D) each
        g = torch.sigmoid(self.gate(torch.cat([a, v], dim=-1)))  # (B, D)
        h = g * a + (1 - g) * v
        return {"logits": self.head(h), "gate": g.mean(-1)}  # gate: mean weight on audio, (B,)


@register("xattn")
class CrossAttentionFusion(FusionModel):
    """Audio time steps attend to video frames and frames to time steps (one layer each way, residual
    + LayerNorm), then both are mean-pooled, concatenated and classified."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        d, h = cfg.embed_dim, cfg.attn_heads
        self.a2v = nn.MultiheadAttention(d, h, dropout=cfg.dropout, batch_first=True)
        self.v2a = nn.MultiheadAttention(d, h, dropout=cfg.dropout, batch_first=True)
        self.norm_a, self.norm_v = nn.LayerNorm(d), nn.LayerNorm(d)
        self.head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        a, v = feats["audio_tokens"], feats["video_tokens"]  # (B, Ta', D), (B, T, D)
        a = self.norm_a(a + self.a2v(a, v, v, need_weights=False)[0])
        v = self.norm_v(v + self.v2a(v, a, a, need_weights=False)[0])
        return {"logits": self.head(torch.cat([a.mean(1), v.mean(1)], dim=-1))}
