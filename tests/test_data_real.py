"""The data layer on real RAVDESS recordings (../shared/ravdess; skipped with the reason if absent)."""

from collections import Counter

import numpy as np
import pytest

from emo.config import FeatureConfig
from emo.data import actor_split, discover, prepare
from emo.data.decode import DecodeError, decode_audio, decode_video, is_silent
from emo.data.naming import parse_name
from tests.conftest import RAVDESS, requires_ravdess, requires_reencoded, requires_speech16k


def _originals():
    return sorted((RAVDESS / "sample").rglob("*.mp4")) + sorted((RAVDESS / "sample").rglob("*.wav"))


@requires_ravdess
@pytest.mark.parametrize("path", _originals(), ids=lambda p: p.name)
def test_every_original_decodes(path):
    name = parse_name(path.name)
    if name.modality in (1, 2):
        frames, total = decode_video(path, 4)
        assert frames.shape == (4, 720, 1280, 3) and frames.dtype == np.uint8
        assert 80 <= total <= 130  # ~3-4 s at 29.97 fps
        assert frames.std() > 10  # a picture, not a blank
    wave = decode_audio(path, 16_000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 2.5 < wave.size / 16_000 < 6.0  # RAVDESS clips run ~3-5 s
    # Video-only files carry an AAC track of digital silence: it must count as no audio.
    assert is_silent(wave) == (name.modality == 2)


@requires_reencoded
def test_reencoded_oddities():
    odd = RAVDESS / "reencoded"
    frames, total = decode_video(odd / "01-01-07-02-02-01-01_1.mp4", 8)
    assert frames.shape[1:] == (480, 640, 3) and total == 120
    assert not is_silent(decode_audio(odd / "01-01-07-02-02-01-01_1.mp4", 16_000))
    frames, total = decode_video(odd / "01-01-08-02-01-01-19.mp4", 8)  # MPEG-4 part 2, 720x720
    assert frames.shape[1:] == (720, 720, 3)
    with pytest.raises(DecodeError, match="no audio stream"):
        decode_audio(odd / "01-01-08-02-01-01-19.mp4", 16_000)


@requires_ravdess
def test_av_mp4_audio_matches_its_wav():
    """The 01 mp4's audio and the 03 wav of one recording are the same take."""
    a = RAVDESS / "sample" / "Actor_05"
    mp4 = decode_audio(a / "01-01-03-01-01-02-05.mp4", 16_000)
    wav = decode_audio(a / "03-01-03-01-01-02-05.wav", 16_000)
    assert abs(mp4.size - wav.size) < 0.02 * 16_000  # AAC priming aside, equal length
    n = min(mp4.size, wav.size) - 2000
    # The AAC track lags the PCM by the encoder delay (~33 ms here); aligned, they are the same signal.
    corr = max(np.corrcoef(mp4[lag : lag + n], wav[:n])[0, 1] for lag in range(0, 2000, 1))
    assert corr > 0.98


@requires_ravdess
def test_sample_pairs_the_three_modalities_of_one_recording():
    cat = discover(RAVDESS / "sample")
    assert cat.skipped == []
    assert len(cat) == 40  # 47 files: 40 recordings, 7 of actor 05 paired with a video file
    by_rec = {r.recording: r for r in cat.recordings}
    full = by_rec["01-01-01-02-01-05"]
    assert sorted(full.files) == [1, 2, 3]
    assert [p.name[:2] for p in full.audio_sources()] == ["03", "01"]  # wav first: lossless
    assert [p.name[:2] for p in full.video_sources()] == ["01", "02"]
    assert sum(len(r.files) for r in cat.recordings) == 47


@requires_speech16k
def test_speech16k_catalog_has_1080_clips():
    cat = discover(RAVDESS / "speech16k")
    assert len(cat) == 1080 and cat.skipped == []
    table = cat.to_table()
    assert Counter(table.column("actor").to_pylist()) == {a: 60 for a in range(1, 19)}
    emotions = Counter(table.column("emotion").to_pylist())
    assert emotions == {1: 72, **{e: 144 for e in range(2, 9)}}  # 4 neutral, 8 of each other per actor
    split = actor_split(np.array(table.column("actor").to_pylist()))
    assert split.sizes() == {"train": 720, "val": 120, "test": 240}  # 12 / 2 / 4 actors


@requires_ravdess
def test_prepare_real_sample_face_crops(tmp_path):
    """The real-data preset crops to MTCNN's face box in every original video."""
    cfg = FeatureConfig(num_frames=4)  # the real-data preset, fewer frames to keep the test quick
    fs = prepare(RAVDESS / "sample", cfg, cache_dir=tmp_path, workers=2, progress=False)
    assert len(fs) == 40 and fs.skipped == [] and fs.notes == []
    assert fs.audio.shape == (40, 64, 351) and fs.video.shape == (40, 4, 112, 112, 3)
    av = np.flatnonzero(fs.has_video)
    assert len(av) == 5 and fs.has_audio.all()
    assert fs.column("crop")[av].tolist() == ["mtcnn"] * 5  # MTCNN finds every actor-05 face
    # Audio came from the lossless wav for every recording that has one.
    assert all(f.split("/")[-1].startswith("03-") for f in fs.column("audio_file").tolist())
    # log-mel in dB: a real dynamic range, no NaN
    assert np.isfinite(fs.audio).all() and (fs.audio.max(axis=(1, 2)) - fs.audio.min(axis=(1, 2))).min() > 40


@requires_ravdess
def test_mtcnn_and_the_haar_cascade_find_the_same_faces_and_haar_stands_in_when_mtcnn_misses(monkeypatch):
    """MTCNN (the default) and the Haar cascade, two independent detectors, put the face in the same
    place in every original video: box centres within a tenth of the frame's width, sizes within 30%.
    A clip MTCNN finds no face in falls back to the Haar cascade, and says so."""
    import emo.data.features as F

    for path in sorted((RAVDESS / "sample").rglob("*.mp4")):
        frames, _ = decode_video(path, 8)
        boxes = F.mtcnn_boxes(frames)
        assert all(b is not None for b in boxes), path.name  # a face in every frame
        (mx, my, mw, mh), how = F.find_face(frames, "mtcnn")
        (hx, hy, hw, hh), how_haar = F.find_face(frames, "haar")
        assert (how, how_haar) == ("mtcnn", "haar")
        width = frames.shape[2]
        assert abs((mx + mw / 2) - (hx + hw / 2)) < width / 10 and abs((my + mh / 2) - (hy + hh / 2)) < width / 10
        assert 0.7 < mw / hw < 1.3, (path.name, (mx, my, mw, mh), (hx, hy, hw, hh))
    monkeypatch.setattr(F, "mtcnn_boxes", lambda frames: [None] * len(frames))
    _, how = F.video_features(frames, FeatureConfig(num_frames=8, frame_size=32))
    assert how == "haar"


@requires_speech16k
def test_silero_vad_trims_real_speech_and_the_window_starts_at_it(monkeypatch):
    """silero-vad (its model ships in the wheel) finds the statement of a real clip: after the ~1 s of
    silence RAVDESS clips open with, and the log-mel window then starts there, not at the fixed offset.
    Importing silero-vad sets torch's threads to 1 for the whole process: ours keeps its own."""
    import sys

    import torch

    from emo.data import features as F

    for name in [m for m in sys.modules if m == "silero_vad" or m.startswith("silero_vad.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh here, with its side effect
    F._silero.cache_clear()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        F._silero()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
        F._silero.cache_clear()

    path = next((RAVDESS / "speech16k").rglob("03-01-05-01-01-01-*.wav"))  # angry, "Kids are talking..."
    wave = decode_audio(path, 16_000)
    x = torch.from_numpy(wave)
    speech = F._silero_trim(x, 16_000)
    start = next(i for i in range(len(x) - len(speech) + 1) if torch.equal(x[i : i + len(speech)], speech))
    assert 0.5 < start / 16_000 < 1.6 and 0.8 < len(speech) / 16_000 < 3.0, (start, len(speech))
    cfg = FeatureConfig(vad_trim=True, vad_method="silero", rms_normalize=False, audio_seconds=0.5)
    window = F.audio_window(wave, cfg)
    assert torch.equal(window, speech[:8000])  # the window begins where the speech does
    assert torch.equal(F._silero_trim(torch.zeros(16_000), 16_000), torch.zeros(16_000))  # no speech: whole
    with pytest.raises(ValueError, match="silero' works at 8 or 16 kHz"):
        FeatureConfig(vad_trim=True, vad_method="silero", sample_rate=22_050)
