"""Audio and video encoders, and the on-device input pipeline (normalisation, SpecAugment).

Shapes:  audio in (B, F, Ta) log-mel dB  -> tokens (B, Ta', D), embedding (B, D)
         video in (B, T, S, S, 3) uint8  -> tokens (B, T, D),   embedding (B, D)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
import torchvision
from torch import nn

from emo.config import FeatureConfig

# torchvision's ImageNet statistics: the ResNet18 weights expect inputs normalised with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# The guide's mask widths (20 mel bins, 40 frames) are sized for the `ravdess` features' 64 x 351 log-mel.
# A spectrogram of another size gets masks that cover the same share of each axis (the demo's 32 x 151:
# up to 10 bins and 17 frames), so a width means the same thing at every feature setting.
REFERENCE_LOGMEL = FeatureConfig().audio_shape


class SpecAugment(nn.Module):
    """torchaudio's frequency and time masks, one draw per sample (iid), training only.

    Input and output (B, F, T). `freq_mask` and `time_mask` are the widest masks on the reference
    64 x 351 log-mel, scaled to the input's F and T. Masks are filled with 0, which is the mean after
    per-utterance normalisation. A width of 0 turns that mask off.
    """

    def __init__(self, freq_mask: int, time_mask: int):
        super().__init__()
        self.freq_mask, self.time_mask = freq_mask, time_mask

    def widths(self, n_freq: int, n_time: int) -> tuple[int, int]:
        """The widest masks, in bins and frames, for an (n_freq, n_time) spectrogram."""
        ref_freq, ref_time = REFERENCE_LOGMEL
        return round(self.freq_mask * n_freq / ref_freq), round(self.time_mask * n_time / ref_time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        f, t = self.widths(x.shape[-2], x.shape[-1])
        x = x.unsqueeze(1)  # (B, 1, F, T): masks are drawn per (sample, channel)
        if f:
            x = torchaudio.functional.mask_along_axis_iid(x, f, 0.0, axis=2)
        if t:
            x = torchaudio.functional.mask_along_axis_iid(x, t, 0.0, axis=3)
        return x.squeeze(1)


def normalize_logmel(x: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation of (B, F, T): removes level and channel differences."""
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.std(dim=(1, 2), keepdim=True)
    return (x - mean) / (std + 1e-5)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class LightCNN(nn.Module):
    """Four conv blocks (width, 2, 4 and 8 x width channels, each halving height and width): the guide's
    light audio model, and a light per-frame video model for CPUs (ResNet18 at 48 px costs ~10x more).
    The cost grows with width squared."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        w = width
        self.out_dim = 8 * w
        self.features = nn.Sequential(
            _conv_block(in_channels, w), _conv_block(w, 2 * w), _conv_block(2 * w, 4 * w), _conv_block(4 * w, 8 * w)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 8w, H/16, W/16)


class LightAudioCNN(LightCNN):
    def __init__(self, width: int = 32):
        super().__init__(in_channels=1, width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x.unsqueeze(1))  # (B, 8w, F/16, T/16)
        return x.mean(dim=2).transpose(1, 2)  # pool frequency: (B, T/16, 8w) tokens over time


class ResNetAudio(nn.Module):
    """torchvision ResNet18 on the log-mel spectrogram as a 1-channel image (no pretraining)."""

    out_dim = 512

    def __init__(self):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool and fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x.unsqueeze(1))  # (B, 512, F/32, T/32)
        return x.mean(dim=2).transpose(1, 2)  # (B, T/32, 512)


class AudioEncoder(nn.Module):
    """log-mel (B, F, T) -> tokens (B, Ta', D). Normalises, augments (training only), encodes."""

    def __init__(self, use_resnet: bool, freq_mask: int, time_mask: int, dim: int, width: int = 32):
        super().__init__()
        self.specaugment = SpecAugment(freq_mask, time_mask)
        self.backbone = ResNetAudio() if use_resnet else LightAudioCNN(width)
        self.proj = nn.Linear(self.backbone.out_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.specaugment(normalize_logmel(x.float()))
        return self.proj(self.backbone(x))  # (B, Ta', D)


class EmbeddedStream(nn.Module):
    """A frozen front end's cached embeddings -> tokens (B, T', D): LayerNorm, then a linear projection.
    The front end ran once, when its cache was built (emo.data.embeddings); LayerNorm puts every front
    end's features on one scale, so one learning rate suits them all.

    `shape` is one clip's embeddings: (T', E), or (layers, T', E) for a pretrained speech encoder, whose
    layers are first mixed into one (T', E): each layer normalised, then summed with softmax weights the
    head learns (`layer_mix="learnt"`, SUPERB's recipe; they start equal), or the last layer alone."""

    def __init__(self, shape: int | tuple[int, ...], dim: int, layer_mix: str = "learnt", standardise: bool = False):
        """`standardise`: each feature to zero mean and unit variance over the training clips (BatchNorm's
        statistics) instead of LayerNorm within a token: for hand-made features of many scales (eGeMAPS:
        semitones, dB, ratios), where LayerNorm would let the largest drown the rest."""
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.layers = shape[0] if len(shape) == 3 else 0
        self.layer_logits = nn.Parameter(torch.zeros(self.layers)) if self.layers and layer_mix == "learnt" else None
        self.norm = nn.BatchNorm1d(shape[-1]) if standardise else nn.LayerNorm(shape[-1])
        self.proj = nn.Linear(shape[-1], dim)

    def layer_weights(self) -> torch.Tensor | None:
        """The weight of each layer in the mix (None without layers)."""
        if not self.layers:
            return None
        if self.layer_logits is None:  # the last layer alone
            return torch.nn.functional.one_hot(torch.tensor(self.layers - 1), self.layers).float()
        return self.layer_logits.softmax(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.layers and self.layer_logits is None:  # the last layer alone
            x = F.layer_norm(x[:, -1], x.shape[-1:])
        elif self.layers:
            x = F.layer_norm(x, x.shape[-1:])  # layers differ in scale by orders of magnitude
            x = torch.einsum("l,blte->bte", self.layer_logits.softmax(0), x)
        if isinstance(self.norm, nn.BatchNorm1d):  # over (batch x tokens), per feature
            flat = x.flatten(0, 1)
            if self.training and len(flat) == 1:  # one value has no variance: its running statistics
                flat = F.batch_norm(flat, self.norm.running_mean, self.norm.running_var, self.norm.weight,
                                    self.norm.bias, training=False, eps=self.norm.eps)  # fmt: skip
                return self.proj(flat.view(x.shape))
            return self.proj(self.norm(flat).view(x.shape))
        return self.proj(self.norm(x))


def resnet18(weights: str) -> nn.Module:
    """torchvision's ResNet18; weights "imagenet" are downloaded on first use into torch's hub cache
    ($TORCH_HOME). Without the internet that download fails: one clear error, not a urllib traceback."""
    if weights != "imagenet":
        return torchvision.models.resnet18(weights=None)
    try:
        return torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    except OSError as e:  # URLError, DNS failure, timeout, refused connection, disk full
        reason = " ".join(str(e).split())  # one line
        raise ValueError(
            f"ImageNet weights for ResNet18 could not be downloaded ({reason}): needs the internet once, "
            "or use --video_weights none"
        ) from e


class FrameAugment(nn.Module):
    """Colour, mirror and framing jitter per clip (the same for all its frames), training only:
    horizontal flip, brightness, contrast and saturation; with `shuffle` a random order of the RGB
    channels; with `spatial` a random zoom (scale within 1 +- spatial) and shift (up to `spatial` of
    the frame each way). Actors differ in skin, hair, background, face size and where the face sits far
    more than a few training actors can show; the expression does not change with any of these.
    Shuffling keeps colour edges (a red mouth on brown skin, which luminance alone can lose) while no
    colour stays tied to an actor.

    Input and output (B, T, 3, S, S) float in [0, 1]."""

    def __init__(self, strength: float, shuffle: bool = False, spatial: float = 0.0):
        super().__init__()
        self.strength, self.shuffle, self.spatial = strength, shuffle, spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (self.strength or self.shuffle or self.spatial):
            return x
        b = x.shape[0]
        if self.spatial:
            x = self.reframe(x)
        if self.shuffle:
            order = torch.rand(b, 3, device=x.device).argsort(dim=1)  # (B, 3): a permutation per clip
            x = x.gather(2, order.view(b, 1, 3, 1, 1).expand_as(x))
        if not self.strength:
            return x

        def jitter() -> torch.Tensor:  # (B, 1, 1, 1, 1) factors in [1 - strength, 1 + strength]
            return 1 + self.strength * (2 * torch.rand(b, 1, 1, 1, 1, device=x.device) - 1)

        flip = torch.rand(b, device=x.device) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1, 1), x.flip(-1), x)
        x = x * jitter()  # brightness
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x = (x - mean) * jitter() + mean  # contrast
        gray = x.mean(dim=2, keepdim=True)
        x = (x - gray) * jitter() + gray  # saturation
        return x.clamp(0, 1)

    def reframe(self, x: torch.Tensor) -> torch.Tensor:
        """One random zoom and shift per clip, applied to all its frames; the border pixels fill what
        moves into view (the frame's edge is background, not black)."""
        b, t, c, s, _ = x.shape
        u = 2 * torch.rand(b, 3, device=x.device) - 1  # (B, 3) in [-1, 1]: zoom, shift x, shift y
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 + self.spatial * u[:, 0]  # > 1 shows more of the frame
        theta[:, :, 2] = 2 * self.spatial * u[:, 1:]  # affine_grid's coordinates span 2 per frame
        grid = F.affine_grid(theta, (b, t * c, s, s), align_corners=False)
        out = F.grid_sample(x.reshape(b, t * c, s, s), grid, padding_mode="border", align_corners=False)
        return out.view(b, t, c, s, s)


def local_contrast(x: torch.Tensor) -> torch.Tensor:
    """Each pixel standardised by the mean and deviation of its neighbourhood (a square window of about a
    sixth of the frame): a mouth only slightly darker than the skin around it stands out as much as one
    on pale skin. (N, C, S, S) -> the same."""
    k = max(3, x.shape[-1] // 6) | 1  # odd, so the window is centred

    def box(z: torch.Tensor) -> torch.Tensor:  # the window's mean, as two 1-D passes (k + k, not k * k)
        z = F.avg_pool2d(z, (1, k), stride=1, padding=(0, k // 2), count_include_pad=False)
        return F.avg_pool2d(z, (k, 1), stride=1, padding=(k // 2, 0), count_include_pad=False)

    mean = box(x)
    var = (box(x * x) - mean * mean).clamp_min(0)
    return (x - mean) / (var.sqrt() + 0.05)


class VideoEncoder(nn.Module):
    """uint8 frames (B, T, S, S, 3) -> tokens (B, T, D): a 2D CNN per frame, weights shared over the
    B*T frames (ResNet18, or the light CNN); pooling over T is left to the head (mean) or to the
    cross-attention.

    `norm` "imagenet" standardises with ImageNet's channel statistics (what the pretrained weights
    expect); "clip" with each clip's own channel means and deviations over its frames, which removes
    differences of lighting, skin and background level between actors; "local" each pixel with its
    neighbourhood's (`local_contrast`), which also evens out how strongly a feature stands out from
    the skin around it."""

    def __init__(
        self,
        backbone: str,
        weights: str,
        dim: int,
        width: int = 32,
        norm: str = "imagenet",
        augment: float = 0.0,
        gray: bool = False,
        train_frames: int = 0,
        shuffle_channels: bool = False,
        spatial: float = 0.0,
    ):
        super().__init__()
        self.norm, self.gray, self.train_frames = norm, gray, train_frames
        self.augment = FrameAugment(augment, shuffle_channels, spatial)
        if backbone == "resnet18":
            net = resnet18(weights)
            self.body = nn.Sequential(*list(net.children())[:-1])  # up to avgpool: (B*T, 512, 1, 1)
            out_dim = 512
        else:  # "light" (TrainConfig checks that imagenet weights come with resnet18 only)
            cnn = LightCNN(3, width)
            self.body = nn.Sequential(cnn, nn.AdaptiveAvgPool2d(1))
            out_dim = cnn.out_dim
        self.proj = nn.Linear(out_dim, dim)
        # (1, 1, 3, 1, 1): broadcast over (B, T, 3, S, S)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3, 1, 1), persistent=False)

    def sample_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Training: `train_frames` of the T frames per clip, one at random from each of that many equal
        segments (TSN's sparse sampling), in time order. Neighbouring frames are nearly the same, so a
        step sees almost as much as with all T at a fraction of the cost; evaluation uses all T."""
        b, t = x.shape[:2]
        k = self.train_frames
        if not self.training or not k or k >= t:
            return x
        edges = torch.linspace(0, t, k + 1, device=x.device)  # segment boundaries, in frames
        start, width = edges[:-1], edges[1:] - edges[:-1]
        idx = (start + torch.rand(b, k, device=x.device) * width).long().clamp(max=t - 1)  # (B, K)
        return x[torch.arange(b, device=x.device).unsqueeze(1), idx]  # (B, K, S, S, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sample_frames(x)
        b, t, s, _, c = x.shape
        x = x.permute(0, 1, 4, 2, 3)  # (B, T, 3, S, S)
        # uint8 frames, or float ones (mixup's blends), which must not be scaled in the caller's tensor
        x = self.augment(x.float().div_(255) if x.dtype == torch.uint8 else x / 255)
        if self.gray:  # luminance (ITU-R BT.601), kept as 3 equal channels for the same backbone
            x = (x * self.luma).sum(dim=2, keepdim=True).expand_as(x)
        if self.norm == "clip":
            mean = x.mean(dim=(1, 3, 4), keepdim=True)  # (B, 1, 3, 1, 1)
            x = (x - mean) / (x.std(dim=(1, 3, 4), keepdim=True) + 1e-3)
        elif self.norm == "imagenet":
            x = (x - self.mean) / self.std
        # The permuted view is channels-last; plain NCHW measured faster here on CPU (4.9 s -> 3.7 s for
        # one 16-clip ResNet18 training step at 8 x 48 px), mostly in BatchNorm.
        x = x.reshape(b * t, c, s, s).contiguous()  # (B*T, 3, S, S)
        if self.norm == "local":  # luminance frames have 3 equal channels: standardise one
            x = local_contrast(x[:, :1]).expand_as(x) if self.gray else local_contrast(x)
        x = self.body(x).flatten(1)  # (B*T, out_dim)
        return self.proj(x.view(b, t, -1))  # (B, T, D)
