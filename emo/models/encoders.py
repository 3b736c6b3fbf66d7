"""Audio and video encoders, and the on-device input pipeline (normalisation, SpecAugment).

Shapes:  audio in (B, F, Ta) log-mel dB  -> tokens (B, Ta', D), embedding (B, D)
         video in (B, T, S, S, 3) uint8  -> tokens (B, T, D),   embedding (B, D)
"""

from __future__ import annotations

import torch
import torchaudio
import torchvision
from torch import nn

# torchvision's ImageNet statistics: the ResNet18 weights expect inputs normalised with them.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class SpecAugment(nn.Module):
    """torchaudio's frequency and time masks, one draw per sample (iid_masks), training only.

    Input and output (B, F, T). Masks are filled with 0, which is the mean after per-utterance
    normalisation. A width of 0 turns that mask off.
    """

    def __init__(self, freq_mask: int, time_mask: int):
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True) if freq_mask else None
        self.time = torchaudio.transforms.TimeMasking(time_mask, iid_masks=True) if time_mask else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        x = x.unsqueeze(1)  # (B, 1, F, T): iid_masks needs a channel dimension
        if self.freq is not None:
            x = self.freq(x)
        if self.time is not None:
            x = self.time(x)
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
    """Four conv blocks (32-64-128-256 channels, each halving height and width): the guide's light
    audio model, and a light per-frame video model for CPUs (ResNet18 at 48 px costs ~10x more)."""

    out_dim = 256

    def __init__(self, in_channels: int):
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(in_channels, 32), _conv_block(32, 64), _conv_block(64, 128), _conv_block(128, 256)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 256, H/16, W/16)


class LightAudioCNN(LightCNN):
    def __init__(self):
        super().__init__(in_channels=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x.unsqueeze(1))  # (B, 256, F/16, T/16)
        return x.mean(dim=2).transpose(1, 2)  # pool frequency: (B, T/16, 256) tokens over time


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

    def __init__(self, use_resnet: bool, freq_mask: int, time_mask: int, dim: int):
        super().__init__()
        self.specaugment = SpecAugment(freq_mask, time_mask)
        self.backbone = ResNetAudio() if use_resnet else LightAudioCNN()
        self.proj = nn.Linear(self.backbone.out_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.specaugment(normalize_logmel(x.float()))
        return self.proj(self.backbone(x))  # (B, Ta', D)


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


class VideoEncoder(nn.Module):
    """uint8 frames (B, T, S, S, 3) -> tokens (B, T, D): a 2D CNN per frame, weights shared over the
    B*T frames (ResNet18, or the light CNN); pooling over T is left to the head (mean) or to the
    cross-attention."""

    def __init__(self, backbone: str, weights: str, dim: int):
        super().__init__()
        if backbone == "resnet18":
            net = resnet18(weights)
            self.body = nn.Sequential(*list(net.children())[:-1])  # up to avgpool: (B*T, 512, 1, 1)
            width = 512
        else:  # "light" (TrainConfig checks that imagenet weights come with resnet18 only)
            self.body = nn.Sequential(LightCNN(3), nn.AdaptiveAvgPool2d(1))
            width = LightCNN.out_dim
        self.proj = nn.Linear(width, dim)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, s, _, c = x.shape
        x = x.reshape(b * t, s, s, c).permute(0, 3, 1, 2).float().div_(255)  # (B*T, 3, S, S)
        # The permuted view is channels-last; plain NCHW measured faster here on CPU (4.9 s -> 3.7 s for
        # one 16-clip ResNet18 training step at 8 x 48 px), mostly in BatchNorm.
        x = ((x - self.mean) / self.std).contiguous()
        x = self.body(x).flatten(1)  # (B*T, width)
        return self.proj(x.view(b, t, -1))  # (B, T, D)
