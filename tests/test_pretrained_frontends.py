"""Pretrained encoders as frozen front ends: speech (wav2vec2 / HuBERT / WavLM through
torchaudio.pipelines) and images (torchvision's ImageNet ResNets on the face crops). No weights can be
downloaded here: the download each library calls (torch.hub's load_state_dict_from_url, as it imports
it) is made to hand over a random state dict of the model's own architecture (or to fail as it does
offline), and everything else, `bundle.get_model()` and torchvision's weight loading included, runs as
it does for a user."""

import dataclasses

import numpy as np
import pytest
import torch
import torchaudio

from emo.config import IMAGE_FRONTENDS, SPEECH_FRONTENDS, TrainConfig
from emo.data import embeddings
from emo.data.embeddings import IMAGE_ENCODERS, SPEECH_ENCODERS, SPEECH_SEGMENTS, FrontendError, embed
from emo.train import embedding_dims, fit


@pytest.fixture(scope="module")
def quarter_demo(tiny_demo, tmp_path_factory):
    """Every 4th clip of the tiny demo set (each actor keeps 15): a 95M-parameter encoder on the CPU
    costs ~0.1 s a clip. Its own feature-cache path, so its embeddings have their own file."""
    rows = np.arange(0, len(tiny_demo), 4)
    return dataclasses.replace(
        tiny_demo,
        table=tiny_demo.table.take(rows),
        audio=tiny_demo.audio[rows],
        video=tiny_demo.video[rows],
        path=tmp_path_factory.mktemp("quarter") / "quarter.arrow",
    )


def _random_weights(monkeypatch, name: str, seed: int = 0) -> list[str]:
    """The bundles' download returns random weights for `name`'s architecture; returns the URLs asked."""
    from torchaudio.pipelines._wav2vec2 import utils

    bundle = getattr(torchaudio.pipelines, SPEECH_ENCODERS[name][0])
    torch.manual_seed(seed)
    state = utils._get_model(bundle._model_type, bundle._params).state_dict()
    asked = []

    def download(url, *args, **kwargs):
        asked.append(url)
        return {k: v.clone() for k, v in state.items()}

    monkeypatch.setattr(utils, "load_state_dict_from_url", download)
    return asked


def _random_image_weights(monkeypatch, name: str, seed: int = 0):
    """torchvision's weight download returns random weights for `name`'s architecture; returns the URLs
    asked and the weights."""
    import torchvision
    from torchvision.models import _api

    torch.manual_seed(seed)
    state = getattr(torchvision.models, IMAGE_ENCODERS[name][0])(weights=None).state_dict()
    asked = []

    def download(url, *args, **kwargs):
        asked.append(url)
        return {k: v.clone() for k, v in state.items()}

    monkeypatch.setattr(_api, "load_state_dict_from_url", download)
    return asked, state


def test_the_registries_name_the_libraries_models_and_their_weight_files():
    import torchvision

    assert tuple(SPEECH_ENCODERS) == SPEECH_FRONTENDS and tuple(IMAGE_ENCODERS) == IMAGE_FRONTENDS
    for bundle, file in SPEECH_ENCODERS.values():
        assert getattr(torchaudio.pipelines, bundle)._path == file
        assert getattr(torchaudio.pipelines, bundle).sample_rate == embeddings.SPEECH_RATE
    for arch, enum, member, file in IMAGE_ENCODERS.values():
        assert callable(getattr(torchvision.models, arch))
        assert getattr(getattr(torchvision.models, enum), member).url.endswith("/" + file)


def test_resnet18_imagenet_embeds_every_frame_once_as_imagenet_saw_pictures(quarter_demo, monkeypatch):
    import torchvision

    asked, state = _random_image_weights(monkeypatch, "resnet18_imagenet")
    cfg = TrainConfig(fusion="gated", video_frontend="resnet18_imagenet", epochs=2, lr=1e-2, embed_dim=32,
                      audio_width=8)  # fmt: skip
    fs = embed(cfg, quarter_demo)
    assert len(asked) == 1 and asked[0].endswith("/resnet18-f37072fd.pth")
    t = quarter_demo.video.shape[1]
    assert fs.video.shape == (len(quarter_demo), t, 512) and fs.audio is quarter_demo.audio
    has = quarter_demo.has_video.astype(bool)
    assert (fs.video[~has] == 0).all() and np.abs(fs.video[has]).sum(axis=2).min() > 0
    rec = fs.frontends["video"]
    assert (rec["frontend"], rec["weights"], rec["train_actors"]) == ("resnet18_imagenet", "resnet18-f37072fd.pth", [])
    # Each frame's features are the network's, on RGB in [0, 1] normalised with ImageNet's statistics.
    net = torchvision.models.resnet18()
    net.load_state_dict(state)
    net.fc = torch.nn.Identity()
    i = int(np.flatnonzero(has)[0])
    x = torch.from_numpy(np.asarray(quarter_demo.video[i])).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.inference_mode():
        want = net.eval()((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert np.allclose(fs.video[i], want.numpy(), atol=1e-4)
    res = fit(cfg, fs)
    assert res["epochs_run"] == 2 and np.isfinite(res["history"][-1]["train/loss"])


def test_wav2vec2_embeds_every_layer_once_and_a_head_learns_to_mix_them(quarter_demo, monkeypatch):
    asked = _random_weights(monkeypatch, "wav2vec2_base")
    cfg = TrainConfig(fusion="gated", audio_frontend="wav2vec2_base", epochs=2, lr=1e-2, embed_dim=32,
                      video_backbone="light", video_width=8)  # fmt: skip
    fs = embed(cfg, quarter_demo)
    assert len(asked) == 1 and asked[0].endswith("wav2vec2_fairseq_base_ls960.pth")
    # 12 transformer layers x SPEECH_SEGMENTS stretches of the window x 768, for every clip with audio
    assert fs.audio.shape == (len(quarter_demo), 12, SPEECH_SEGMENTS, 768) and fs.video is quarter_demo.video
    has = quarter_demo.has_audio.astype(bool)
    assert np.isfinite(fs.audio).all() and (fs.audio[~has] == 0).all()
    assert np.abs(fs.audio[has]).mean(axis=(2, 3)).min() > 0  # every layer of every clip holds something
    rec = fs.frontends["audio"]
    assert (rec["frontend"], rec["layers"], rec["segments"], rec["train_actors"]) == ("wav2vec2_base", 12, 8, [])
    # The layers differ (what a mix of them is for), and each stretch is its own mean.
    clip = fs.audio[np.flatnonzero(has)[0]]
    assert not np.allclose(clip[0], clip[-1]) and not np.allclose(clip[:, 0], clip[:, -1])

    # Cached: a second run reads the file, and neither downloads nor runs the encoder.
    monkeypatch.setattr(embeddings, "speech_model", lambda name: pytest.fail("computed again"))
    again = embed(cfg, quarter_demo)
    assert np.array_equal(again.audio, fs.audio) and again.frontends["audio"]["path"] == rec["path"]

    res = fit(cfg, fs)
    assert res["epochs_run"] == 2 and np.isfinite(res["history"][-1]["train/loss"])
    from emo.models import build_model

    model = build_model(cfg, embedding_dims(cfg, fs))
    weights = model.audio.layer_weights()
    assert weights.shape == (12,) and torch.allclose(weights, torch.full((12,), 1 / 12))  # they start equal
    last = build_model(cfg.replace(layer_mix="last"), embedding_dims(cfg, fs)).audio
    assert last.layer_logits is None and last.layer_weights().argmax() == 11
    # Another speech encoder's embeddings are not this run's.
    with pytest.raises(ValueError, match="embeddings are 'wav2vec2_base''s, not this run's 'hubert_base'"):
        fit(cfg.replace(audio_frontend="hubert_base"), fs.arrays())


def test_a_head_learns_which_layer_carries_the_emotion():
    """On made-up embeddings where only layer 3 tells the classes apart, the learnt mix moves its weight
    there: the softmax weights are trained with the head."""
    from emo.models.encoders import EmbeddedStream

    torch.manual_seed(0)
    n, layers, t, e = 256, 6, 4, 16
    y = torch.randint(0, 2, (n,))
    x = torch.randn(n, layers, t, e)
    x[:, 3, :, 0] += 3 * (2 * y[:, None] - 1)  # layer 3, channel 0: the label
    stream = EmbeddedStream((layers, t, e), 8)
    head = torch.nn.Linear(8, 2)
    opt = torch.optim.Adam([*stream.parameters(), *head.parameters()], lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(head(stream(x).mean(1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = stream.layer_weights()
    assert w.argmax() == 3 and w[3] > 2 / layers, w
    # layer_mix="last" reads the last layer and nothing else.
    last = EmbeddedStream((layers, t, e), 8, layer_mix="last").eval()
    other = x.clone()
    other[:, :-1] = torch.randn_like(other[:, :-1])
    assert torch.equal(last(x), last(other)) and not torch.allclose(last(x), last(x.flip(1)))


@pytest.mark.parametrize("name", ["hubert_base", "wavlm_base_plus"])
def test_hubert_and_wavlm_load_through_their_bundle_and_extract_every_layer(name, monkeypatch):
    _random_weights(monkeypatch, name)
    model = embeddings.speech_model(name)
    assert not model.training
    with torch.inference_mode():
        layers, _ = model.extract_features(torch.randn(2, 16_000))
    pooled = embeddings.segment_means(torch.stack(layers, 1), SPEECH_SEGMENTS)
    assert pooled.shape == (2, 12, SPEECH_SEGMENTS, 768) and torch.isfinite(pooled).all()
    with pytest.raises(FrontendError, match="gives 3 encoder frames, fewer than 8 stretches: raise --audio_seconds"):
        embeddings.segment_means(torch.zeros(1, 12, 3, 4), SPEECH_SEGMENTS)


def test_without_internet_a_speech_front_end_is_one_clear_error(tiny_demo, no_internet):
    with pytest.raises(FrontendError) as e:
        embed(TrainConfig(fusion="audio", audio_frontend="hubert_base"), tiny_demo)
    message = str(e.value)
    assert "\n" not in message and message.startswith("the hubert_base weights could not be downloaded (")
    assert "test: no internet" in message and message.endswith("or use --audio_frontend logmel")
    assert f"{no_internet}/hub/checkpoints/hubert_fairseq_base_ls960.pth" in message
    with pytest.raises(FrontendError) as e:
        embed(TrainConfig(fusion="video", video_frontend="resnet50_imagenet"), tiny_demo)
    message = str(e.value)
    assert "\n" not in message and message.startswith("the resnet50_imagenet weights could not be downloaded (")
    assert "test: no internet" in message and message.endswith("or use --video_frontend frames")


def test_egemaps_functionals_and_descriptors_per_clip_and_a_head_that_standardises_them(quarter_demo):
    pytest.importorskip("opensmile", reason="the optional extra: uv sync --extra opensmile")
    cfg = TrainConfig(fusion="audio", audio_frontend="egemaps", epochs=2, lr=1e-2, embed_dim=32)
    fs = embed(cfg, quarter_demo)
    has = quarter_demo.has_audio.astype(bool)
    assert fs.audio.shape == (len(quarter_demo), 1, 88) and (fs.audio[~has] == 0).all()
    assert np.isfinite(fs.audio).all() and (fs.audio[has].std(axis=0) > 0).sum() > 80  # they vary by clip
    rec = fs.frontends["audio"]
    assert (rec["feature_set"], rec["segments"], rec["train_actors"]) == ("eGeMAPSv02", 1, [])
    lld = embed(cfg.replace(audio_frontend="egemaps_lld"), quarter_demo)
    assert lld.audio.shape == (len(quarter_demo), SPEECH_SEGMENTS, 25) and lld.frontends["audio"]["segments"] == 8
    res = fit(cfg, fs)
    assert res["epochs_run"] == 2 and np.isfinite(res["history"][-1]["train/loss"])
    from emo.models import build_model

    stream = build_model(cfg, embedding_dims(cfg, fs)).audio
    assert isinstance(stream.norm, torch.nn.BatchNorm1d)  # per feature, over the training clips
    stream.train()
    assert torch.isfinite(stream(torch.randn(1, 1, 88))).all()  # a batch of one clip still trains


def test_egemaps_without_the_extra_is_one_clear_error(tiny_demo, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "opensmile", None)  # `import opensmile` raises ImportError
    with pytest.raises(FrontendError) as e:
        embed(TrainConfig(fusion="audio", audio_frontend="egemaps"), tiny_demo)
    assert str(e.value) == (
        "--audio_frontend egemaps needs openSMILE, an optional extra: uv sync --extra opensmile "
        "(audEERING's licence allows research and education only)"
    )
