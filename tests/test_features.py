import numpy as np
import pytest

from emo.config import FeatureConfig, feature_preset
from emo.data.decode import DecodeError, sample_indices
from emo.data.features import audio_features, square_box, video_features
from tests.media import tone

CFG = FeatureConfig(n_mels=32, audio_seconds=1.0, audio_offset_s=0.0)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.5])
def test_audio_features_have_a_fixed_shape(seconds):
    mel = audio_features(tone(seconds, 16_000), CFG)
    assert mel.shape == CFG.audio_shape == (32, 101) and mel.dtype == np.float32
    assert np.isfinite(mel).all()


def test_short_clips_are_zero_padded_at_the_end():
    mel = audio_features(tone(0.5, 16_000), CFG)
    loudest = mel.max(axis=0)  # per frame
    assert loudest[:45].min() > loudest[-45:].max() + 40  # the padded tail sits at the 80 dB floor


def test_rms_normalisation_removes_gain():
    x = tone(1.0, 16_000, amp=0.02)
    a, b = audio_features(x, CFG), audio_features(20 * x, CFG)
    np.testing.assert_allclose(a, b, atol=1e-3)
    off = CFG.replace(rms_normalize=False)
    assert np.abs(audio_features(x, off) - audio_features(20 * x, off)).mean() > 10  # 26 dB apart


def test_offset_and_vad_trim_find_the_speech():
    silence = np.zeros(8000, np.float32)
    # torchaudio's VAD is built for speech-like, broadband sound: a noise burst, not a pure tone.
    burst = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    x = np.concatenate([silence, burst, silence])  # 0.5 s silence, 0.5 s sound, 0.5 s silence

    def sound_share(cfg):  # share of the window's frames that hold the burst (silence is -66 to -100 dB)
        return float((audio_features(x, cfg).max(axis=0) > -20).mean())

    window = CFG.replace(audio_seconds=0.5)
    assert sound_share(window) < 0.05  # a fixed window at 0 s sees the leading silence
    assert sound_share(window.replace(audio_offset_s=0.5)) > 0.9  # ... an offset skips it
    assert sound_share(window.replace(vad_trim=True)) > 0.7  # ... and so does the VAD trim
    # a signal VAD finds no speech in is kept whole rather than emptied
    np.testing.assert_array_equal(
        audio_features(tone(1.0, 16_000), CFG.replace(vad_trim=True)), audio_features(tone(1.0, 16_000), CFG)
    )


def test_sample_indices_spread_evenly():
    assert sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # fewer frames than asked: repeated
    with pytest.raises(DecodeError):
        sample_indices(0, 4)


def test_blank_video_falls_back_to_a_centre_crop():
    cfg = feature_preset("ravdess").replace(frame_size=32)
    frames = np.zeros((4, 90, 160, 3), np.uint8)
    frames[:, :, 35:125] = 200  # the centre square
    out, how = video_features(frames, cfg)
    assert how == "center" and out.shape == (4, 32, 32, 3)
    assert out.min() == 200  # exactly the centre 90x90 square


@pytest.mark.parametrize(
    "box, w, h",
    [
        ((100, 100, 50, 60), 640, 480),
        ((0, 0, 80, 80), 640, 480),
        ((600, 440, 40, 40), 640, 480),
        ((10, 10, 700, 700), 720, 720),
    ],
)
def test_square_box_is_square_and_inside(box, w, h):
    x0, y0, side = square_box(box, 0.25, w, h)
    assert 0 <= x0 <= w - side and 0 <= y0 <= h - side and side <= min(w, h)
    assert side >= min(max(box[2], box[3]), w, h)  # never smaller than the face
