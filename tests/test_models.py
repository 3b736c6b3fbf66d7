"""Every registered fusion method x {4, 8} classes, timm style: one test, run over the registry."""

import pytest
import torch

from emo.config import FUSIONS, TrainConfig
from emo.models import MODELS, build_model, modality_keep_masks
from emo.models.encoders import SpecAugment

B, F, TA, T, S = 4, 32, 64, 3, 32


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(B, F, TA, generator=g) * 10 - 30  # log-mel dB-like
    video = torch.randint(0, 256, (B, T, S, S, 3), generator=g, dtype=torch.uint8)
    return audio, video


def test_registry_matches_config_choices():
    assert tuple(MODELS) == FUSIONS
    with pytest.raises(ValueError, match="unknown fusion 'gatd'; choose one of: audio, video, late"):
        TrainConfig(fusion="gatd")
    with pytest.raises(ValueError, match="unknown video_backbone 'vit'; choose one of: resnet18, light"):
        TrainConfig(video_backbone="vit")
    with pytest.raises(ValueError, match="needs video_backbone='resnet18'"):
        TrainConfig(video_backbone="light", video_weights="imagenet")


@pytest.mark.parametrize("num_classes", [4, 8])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_model_contract(fusion, num_classes):
    torch.manual_seed(0)
    # 4 classes with the resnet18 backbones, 8 with the light ones: every encoder is covered
    resnet = num_classes == 4
    cfg = TrainConfig(
        fusion=fusion,
        num_classes=num_classes,
        embed_dim=32,
        attn_heads=4,
        modality_dropout=0.0,
        use_resnet_audio=resnet,
        video_backbone="resnet18" if resnet else "light",
    )
    model = build_model(cfg)
    audio, video = _inputs()
    a = audio if "audio" in cfg.streams else None
    v = video if "video" in cfg.streams else None
    model.train()
    out = model(a, v)
    logits = out["logits"]
    assert logits.shape == (B, num_classes)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(B) % num_classes).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not no_grad, f"parameters without a gradient: {no_grad}"
    # the stream a method does not read is never built
    assert hasattr(model, "audio") == ("audio" in cfg.streams)
    assert hasattr(model, "video") == ("video" in cfg.streams)
    # Eval is deterministic: SpecAugment (20/40 masks here) and modality dropout are training only.
    model.eval()
    model.cfg = cfg.replace(modality_dropout=0.5)  # the models read it per forward; 0.0 above for the gradients
    with torch.no_grad():
        first, second = model(a, v), model(a, v)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    if fusion == "gated":
        with torch.no_grad():
            gate = model(a, v)["gate"]
        assert gate.shape == (B,)
        assert (gate - 0.3).abs().max() < 0.05, "the gate starts at 0.3 (leaning to video)"


TWO_STREAM = [name for name, cls in MODELS.items() if len(cls.streams) == 2]


@pytest.mark.parametrize("fusion", TWO_STREAM)
def test_modality_dropout_drops_a_stream_per_clip_never_both(fusion):
    """p = 0.3 each: some clips lose audio, some video, the rest keep both, none loses both. A dropped
    stream has no influence on that clip's output: replacing that clip's audio (or video) with other
    values, same RNG seed, leaves its logits exactly equal, while a kept stream's change moves them."""
    torch.manual_seed(0)
    model = build_model(TrainConfig(fusion=fusion, embed_dim=32, modality_dropout=0.3))
    audio, video = _inputs()
    noise_a, noise_v = _inputs(seed=1)
    model.train()
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model(audio, video)
        keep = torch.stack([out["keep_audio"], out["keep_video"]], 1)  # (B, 2)
        assert (keep.sum(1) >= 1).all(), "a clip lost both streams"
        seen |= set(map(tuple, keep.tolist()))
        if fusion == "late":  # the mean probability of the kept branches: one branch alone when dropped
            probs = torch.stack([out["audio_logits"].softmax(-1), out["video_logits"].softmax(-1)], 1)  # (B, 2, C)
            expected = (probs * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
            torch.testing.assert_close(out["logits"].softmax(-1), expected)
        for i, (ka, kv) in enumerate(keep.tolist()):
            a2, v2 = audio.clone(), video.clone()
            if kv == 0:  # change the dropped stream; audio when none is dropped
                v2[i] = noise_v[i]
            else:
                a2[i] = noise_a[i]
            torch.manual_seed(seed)  # the same masks, SpecAugment and dropout draws
            with torch.no_grad():
                again = model(a2, v2)
            assert torch.equal(again["keep_audio"], out["keep_audio"])
            same = torch.equal(again["logits"][i], out["logits"][i])
            assert same == (ka == 0 or kv == 0), f"clip {i} (keep audio {ka}, video {kv}): changed {not same}"
    assert {(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)} <= seen  # both kinds of drop happen, and no drop
    model.eval()
    out = model(audio, video)
    assert out["keep_audio"].all() and out["keep_video"].all(), "no modality dropout in eval"


def test_modality_keep_masks_rates():
    torch.manual_seed(0)
    ka, kv = modality_keep_masks(100_000, 0.2, True, "cpu")
    assert ((ka == 0) & (kv == 0)).sum() == 0
    assert abs((ka == 0).float().mean() - 0.2) < 0.01 and abs((kv == 0).float().mean() - 0.2) < 0.01


def test_specaugment_bounds_and_eval_passthrough():
    torch.manual_seed(0)
    aug = SpecAugment(freq_mask=10, time_mask=15)
    x = torch.ones(64, 64, 351)  # the `ravdess` log-mel: widths in bins and frames as given
    aug.train()
    y = aug(x)
    masked_bins = (y == 0).all(dim=2).sum(dim=1)  # whole frequency rows masked, per sample
    masked_frames = (y == 0).all(dim=1).sum(dim=1)  # whole time columns masked, per sample
    assert masked_bins.max() <= 10 and masked_frames.max() <= 15
    assert masked_bins.float().std() > 0, "masks are drawn per sample"
    assert (masked_bins > 0).any() and (masked_frames > 0).any()
    aug.eval()
    assert torch.equal(aug(x), x)
    assert torch.equal(SpecAugment(0, 0).train()(x), x)


def test_specaugment_widths_are_a_share_of_the_spectrogram():
    """The guide's 20 bins / 40 frames are for the 64 x 351 `ravdess` log-mel; the demo's 32 x 151 gets
    masks covering the same share of each axis, not 20 of its 32 bins."""
    aug = SpecAugment(freq_mask=20, time_mask=40)
    assert aug.widths(64, 351) == (20, 40)
    assert aug.widths(32, 151) == (10, 17)
    torch.manual_seed(0)
    y = aug.train()(torch.ones(256, 32, 151))
    # torchaudio draws each width uniformly in [0, bound): the widest of 256 draws is just under it
    assert (y == 0).all(dim=2).sum(dim=1).max() == 9
    assert 12 <= (y == 0).all(dim=1).sum(dim=1).max() < 17


def test_frame_augment_shuffles_whole_channels_per_clip_and_only_in_training():
    from emo.models.encoders import FrameAugment

    torch.manual_seed(0)
    x = torch.rand(32, 2, 3, 8, 8)
    aug = FrameAugment(0.0, shuffle=True).train()
    y = aug(x)
    orders = []
    for i in range(len(x)):  # every output channel is one input channel, whole, for every frame
        order = [next(k for k in range(3) if torch.equal(y[i, :, c], x[i, :, k])) for c in range(3)]
        assert sorted(order) == [0, 1, 2]
        orders.append(tuple(order))
    assert len(set(orders)) > 1, "a permutation per clip, not one per batch"
    assert torch.equal(aug.eval()(x), x)
    assert torch.equal(FrameAugment(0.0).train()(x), x)  # off by default: no RNG drawn, nothing changed


def test_frame_augment_reframes_each_clip_as_a_whole_and_only_in_training():
    """A bright dot moves (zoom and shift) by one amount per clip: to the same place in every frame of a
    clip, to different places in different clips, never further than the zoom and shift allow."""
    from emo.models.encoders import FrameAugment

    torch.manual_seed(0)
    s, spatial = 48, 0.1
    x = torch.zeros(16, 3, 3, s, s)
    x[..., 20:24, 30:34] = 1.0  # a 4 px dot centred at (row 22, column 32)
    aug = FrameAugment(0.0, spatial=spatial).train()
    y = aug(x)

    def centre(img: torch.Tensor) -> torch.Tensor:  # (S, S) -> (row, column) weighted by brightness
        grid = torch.arange(s, dtype=img.dtype) + 0.5
        return torch.stack([(img.sum(1) * grid).sum(), (img.sum(0) * grid).sum()]) / img.sum()

    centres = torch.stack([centre(y[i, 0, 0]) for i in range(len(y))])
    for i in range(len(y)):
        for t in range(3):
            for c in range(3):
                assert torch.allclose(y[i, t, c], y[i, 0, 0], atol=1e-6), "one transform per clip"
    assert centres.std(dim=0).min() > 1.0, "clips are reframed differently"
    # The dot sits (-2, +8) px from the frame's centre; a zoom z in 1 +- spatial and a shift of up to
    # spatial * S move it by at most (8 * spatial + spatial * S) / z, plus half a pixel of resampling.
    bound = (8 * spatial + spatial * s) / (1 - spatial) + 0.5
    assert (centres - torch.tensor([22.0, 32.0])).abs().max() < bound
    assert torch.equal(aug.eval()(x), x)
    assert torch.equal(FrameAugment(0.0).train()(x), x)


def test_local_contrast_lifts_a_faint_mark_and_ignores_the_skin_level():
    """A mouth 0.05 darker than the skin around it: the same response on dark skin as on pale skin, and
    against a mark 0.3 darker, a response far closer than the raw 1:6; a flat frame comes out flat."""
    from emo.models.encoders import local_contrast

    def mark(skin: float, depth: float) -> float:
        x = torch.full((1, 1, 48, 48), skin)
        x[..., 30:34, 18:30] = skin - depth
        return local_contrast(x)[0, 0, 31, 24].item()

    assert mark(0.25, 0.05) == pytest.approx(mark(0.8, 0.05), abs=1e-4)
    faint, clear = mark(0.8, 0.05), mark(0.8, 0.3)
    assert faint < 0 and clear < 0
    assert faint / clear > 2 * (0.05 / 0.3)
    assert local_contrast(torch.full((2, 3, 48, 48), 0.6)).abs().max() < 1e-5
