"""Frozen front ends: a finished run's encoder, its embeddings cached once, heads trained over them."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from emo.checkpoint import BEST_FILE, load_checkpoint
from emo.config import TrainConfig
from emo.data import embeddings
from emo.data.embeddings import FrontendError, embed
from emo.models import build_model
from emo.train import fit

SMALL = dict(embed_dim=32, audio_width=8, video_backbone="light", video_width=8, batch_size=16,
             early_stopping_patience=0)  # fmt: skip


@pytest.fixture(scope="module")
def encoders(tiny_demo, tmp_path_factory):
    """Checkpoint folders of a 2-epoch audio-only and a 2-epoch video-only run (the single actor split)."""
    root = tmp_path_factory.mktemp("encoders")
    for stream in ("audio", "video"):
        fit(TrainConfig(fusion=stream, epochs=2, **SMALL), tiny_demo, checkpoint_dir=root / stream)
    return root


def _frozen(encoders, **kw) -> TrainConfig:
    own = dict(audio_frontend="own", audio_encoder=str(encoders / "audio"), video_frontend="own",
               video_encoder=str(encoders / "video"))  # fmt: skip
    return TrainConfig(**{"fusion": "gated", "epochs": 2, **SMALL, **own, **kw})


def test_head_over_frozen_encoders_embeds_once_and_trains_the_head_only(tiny_demo, encoders, monkeypatch):
    cfg = _frozen(encoders, lr=1e-2, epochs=6)
    fs = embed(cfg, tiny_demo, progress=False)
    assert set(fs.frontends) == {"audio", "video"}
    # The cached embeddings are what the encoder at its best epoch computes, clip for clip.
    enc = build_model(TrainConfig(fusion="audio", **SMALL))
    enc.load_state_dict(load_checkpoint(encoders / "audio" / BEST_FILE))
    with torch.no_grad():
        want = enc.eval().audio(torch.from_numpy(np.array(tiny_demo.audio[:5]))).numpy()
    np.testing.assert_allclose(fs.audio[:5], want, rtol=1e-4, atol=1e-5)
    assert fs.video.shape[:2] == (len(tiny_demo), tiny_demo.video.shape[1])  # a token per frame

    # A second load reads the cache: nothing is computed again.
    monkeypatch.setattr(embeddings, "_compute", lambda *a: pytest.fail("embeddings computed twice"))
    again = embed(cfg, tiny_demo, progress=False)
    np.testing.assert_array_equal(again.video, fs.video)

    res = fit(cfg, fs)
    model = build_model(cfg, {"audio": fs.audio.shape[-1], "video": fs.video.shape[-1]})
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())  # no encoder left to train
    assert res["epochs_run"] == 6 and 0 <= res["test/f1"] <= 1
    assert res["history"][-1]["train/loss"] < res["history"][0]["train/loss"]


def test_retrained_encoder_is_never_read_from_the_old_cache(tiny_demo, encoders, tmp_path, capsys):
    import shutil

    shutil.copytree(encoders / "audio", tmp_path / "audio")
    cfg = TrainConfig(fusion="audio", audio_frontend="own", audio_encoder=str(tmp_path / "audio"), **SMALL)
    before = embed(cfg, tiny_demo, progress=False)
    best = load_checkpoint(tmp_path / "audio" / BEST_FILE)
    torch.save({k: v * 1.5 if v.is_floating_point() else v for k, v in best.items()}, tmp_path / "audio" / BEST_FILE)
    after = embed(cfg, tiny_demo, progress=False)
    assert after.frontends["audio"]["path"] != before.frontends["audio"]["path"]
    assert not np.allclose(after.audio, before.audio)

    # One changed byte in the cached embeddings: found by the checksum, and the file rebuilt.
    path = Path(after.frontends["audio"]["path"])
    want = np.array(after.audio)
    data = bytearray(path.read_bytes())
    at = data.find(want[3].tobytes()[:64])
    data[at + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    again = embed(cfg, tiny_demo, progress=False)
    assert "is unusable (the embeddings changed on disk (crc32 mismatch)); rebuilding it" in capsys.readouterr().err
    np.testing.assert_array_equal(again.audio, want)


def test_a_head_is_never_tested_on_actors_its_encoder_trained_on(tiny_demo, encoders):
    # The encoders trained on the actor split's training actors; a stratified split tests on every actor.
    cfg = _frozen(encoders, split_mode="stratified")
    fs = embed(cfg, tiny_demo, progress=False)
    with pytest.raises(ValueError, match=r"trained on actor\(s\) \[\d+.*--audio_encoder 'ENCODERS/audio-\{split\}'"):
        fit(cfg, fs)
    # Embeddings of one encoder handed to a run that names another are refused too.
    other = _frozen(encoders).replace(video_encoder=str(encoders / "audio"), video_frontend="own")
    with pytest.raises(ValueError, match="computed by the encoder in"):
        fit(other, fs)


def test_frontend_mistakes_are_one_clear_error(tiny_demo, encoders, tmp_path):
    with pytest.raises(FrontendError, match="has no audio encoder"):
        embed(TrainConfig(fusion="audio", audio_frontend="own", audio_encoder=str(encoders / "video")), tiny_demo)
    with pytest.raises(FrontendError, match="holds no best.pt or state.pt"):
        embed(TrainConfig(fusion="audio", audio_frontend="own", audio_encoder=str(tmp_path)), tiny_demo)
    # Features other than the encoder's (another feature cache: its own file, so no embedding cache hit).
    other = dataclasses.replace(
        tiny_demo, config=tiny_demo.config.replace(face_detector="haar"), path=tmp_path / "other.arrow"
    )
    with pytest.raises(FrontendError, match=r"trained on other features \(face_detector 'mtcnn', here 'haar'\)"):
        embed(_frozen(encoders), other)
    own = dict(audio_frontend="own", audio_encoder="r/audio-{split}")
    assert TrainConfig(fold=2, folds=4, **own).encoder_path("audio") == "r/audio-fold2"
    assert TrainConfig(**own).encoder_path("audio") == "r/audio-actor"


def test_each_confirmation_fold_reads_its_own_encoder(tiny_demo, tmp_path, capsys):
    from emo import train_encoders
    from emo.data.embeddings import fold_arrays

    for k in range(2):  # what `python -m emo.train_encoders --folds 2 --streams audio` trains per fold
        enc = TrainConfig(fusion="audio", epochs=1, folds=2, fold=k, **SMALL)
        fit(enc, tiny_demo, checkpoint_dir=tmp_path / f"audio-{enc.split_name}")
    cfg = TrainConfig(fusion="audio", epochs=1, audio_frontend="own", audio_encoder=str(tmp_path / "audio-{split}"))
    arrays = fold_arrays(cfg, tiny_demo, folds=2, progress=False)
    assert [arrays[k].frontends["audio"]["named"] for k in (0, 1)] == [str(tmp_path / f"audio-fold{k}") for k in (0, 1)]
    assert fit(cfg.replace(folds=2, fold=1), arrays[1], evaluate_test=False)["epochs_run"] == 1
    with pytest.raises(ValueError, match="computed by the encoder in .*audio-fold0"):
        fit(cfg.replace(folds=2, fold=1), arrays[0])
    with pytest.raises(SystemExit):
        train_encoders.main(["--out", str(tmp_path), "--folds", "1"])
    assert capsys.readouterr().err.strip() == "error: --folds must be >= 2 (the report's confirmation folds), got 1"


def test_a_sweep_over_frozen_encoders_searches_nothing_only_an_encoder_reads():
    from search_spaces import sweep_space

    own = {"audio_frontend": "own", "audio_encoder": "a", "video_frontend": "own", "video_encoder": "v"}
    assert {"freq_mask", "time_mask"} <= set(sweep_space("gated", {}).params)
    frozen = sweep_space("gated", own, size=("embed_dim", "audio_width", "video_width"))
    assert set(frozen.params) == {"lr", "weight_decay", "dropout", "modality_dropout", "gate_bias", "embed_dim"}
    assert "freq_mask" in sweep_space("gated", {k: v for k, v in own.items() if k.startswith("video")}).params
    # Over a pretrained speech encoder the layer mix is searched too, from the recipe's learnt mix, unless given.
    speech = sweep_space("gated", {"audio_frontend": "wavlm_base_plus"})
    assert "layer_mix" in speech.params and "freq_mask" not in speech.params and speech.recipe["layer_mix"] == "learnt"
    assert "layer_mix" not in sweep_space("gated", {"audio_frontend": "wavlm_base_plus", "layer_mix": "last"}).params
    assert "layer_mix" not in sweep_space("video", {"audio_frontend": "wavlm_base_plus"}).params
