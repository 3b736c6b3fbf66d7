"""The six methods: audio-only, video-only and four ways to fuse the two.

Every model takes (audio (B, F, Ta) float log-mel, video (B, T, S, S, 3) uint8) -- either may be None
when the method does not read it -- and returns a dict with `logits` (B, C) and whatever else the
sweep wants to watch (`gate` (B,) for the gated model; `keep_audio`/`keep_video` (B,) in training).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from emo.config import PARALINGUISTIC_FRONTENDS, TrainConfig
from emo.models.encoders import AudioEncoder, EmbeddedStream, VideoEncoder

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

    def __init__(self, cfg: TrainConfig, dims: dict[str, int | tuple[int, ...]] | None = None):
        """`dims`: one clip's embedding shape (or width) for each stream read through a frozen front end."""
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        dims = dims or {}
        for stream in self.streams:
            if cfg.frozen(stream) and stream not in dims:
                raise ValueError(f"the {stream} stream reads frozen embeddings: build_model needs their shape")
        if "audio" in self.streams and cfg.frozen("audio"):
            hand_made = cfg.audio_frontend in PARALINGUISTIC_FRONTENDS
            self.audio = EmbeddedStream(dims["audio"], d, cfg.layer_mix, standardise=hand_made)
        elif "audio" in self.streams:
            self.audio = AudioEncoder(cfg.use_resnet_audio, cfg.freq_mask, cfg.time_mask, d, cfg.audio_width)
        if "video" in self.streams and cfg.frozen("video"):
            self.video = EmbeddedStream(dims["video"], d)
        elif "video" in self.streams:
            self.video = VideoEncoder(
                cfg.video_backbone,
                cfg.video_weights,
                d,
                cfg.video_width,
                cfg.video_norm,
                cfg.video_augment,
                cfg.video_gray,
                cfg.train_frames,
                cfg.video_shuffle_channels,
                cfg.video_spatial,
            )

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

    def __init__(self, cfg: TrainConfig, dims: dict[str, int] | None = None):
        super().__init__(cfg, dims)
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

    def __init__(self, cfg: TrainConfig, dims: dict[str, int] | None = None):
        super().__init__(cfg, dims)
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
    def __init__(self, cfg: TrainConfig, dims: dict[str, int] | None = None):
        super().__init__(cfg, dims)
        self.head = classifier(2 * cfg.embed_dim, cfg.embed_dim, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        x = torch.cat([feats["audio_tokens"].mean(1), feats["video_tokens"].mean(1)], dim=-1)  # (B, 2D)
        return {"logits": self.head(x)}


@register("gated")
class GatedFusion(FusionModel):
    """g = sigmoid(W [a; v] + b) per embedding dimension; h = g * a + (1 - g) * v.

    W starts at zero and b at logit(gate_bias), so every clip starts with g = gate_bias (0.3: leaning to
    video, the stronger stream on RAVDESS); training moves it from there."""

    def __init__(self, cfg: TrainConfig, dims: dict[str, int] | None = None):
        super().__init__(cfg, dims)
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


def time_code(n: int, dim: int, device) -> torch.Tensor:
    """(n, dim) sinusoidal codes of each token's place in its clip, as a fraction 0..1 of the clip's
    length: audio step i of Ta' and video frame j of T get similar codes when they show the same moment,
    whatever the two rates. Added to queries and keys only (as in DETR), never to the values."""
    pos = torch.linspace(0, 1, n, device=device).unsqueeze(1)  # (n, 1)
    freqs = torch.pi * torch.arange(1, dim // 2 + 1, device=device)  # half-periods 1, 1/2, ... of the clip
    return torch.cat([torch.sin(pos * freqs), torch.cos(pos * freqs)], dim=1)  # (n, dim)


class CrossAttend(nn.Module):
    """Pre-norm cross-attention: x + Attn(LN(x) + pos_x, LN(ctx) + pos_ctx, LN(ctx)). Pre-norm keeps the
    residual stream (the token's own features) untouched at initialisation."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        q = self.norm_q(x) + time_code(x.shape[1], d, x.device)  # (B, Tx, D)
        kv = self.norm_kv(ctx)  # (B, Tc, D)
        k = kv + time_code(ctx.shape[1], d, ctx.device)
        return x + self.attn(q, k, kv, need_weights=False)[0]


@register("xattn")
class CrossAttentionFusion(FusionModel):
    """Audio time steps attend to video frames and frames to time steps (one pre-norm layer each way,
    both reading the encoders' tokens, with `attn_dropout` on the attention weights and each token's
    place in time on queries and keys), then both are mean-pooled, concatenated and classified."""

    def __init__(self, cfg: TrainConfig, dims: dict[str, int] | None = None):
        super().__init__(cfg, dims)
        d, h = cfg.embed_dim, cfg.attn_heads
        self.a2v = CrossAttend(d, h, cfg.attn_dropout)
        self.v2a = CrossAttend(d, h, cfg.attn_dropout)
        self.head = classifier(2 * d, d, cfg.num_classes, cfg.dropout)

    def forward_head(self, feats):
        a, v = feats["audio_tokens"], feats["video_tokens"]  # (B, Ta', D), (B, T, D)
        a2, v2 = self.a2v(a, v), self.v2a(v, a)
        return {"logits": self.head(torch.cat([a2.mean(1), v2.mean(1)], dim=-1))}
