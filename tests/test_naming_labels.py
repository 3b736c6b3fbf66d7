import numpy as np
import pytest

from emo.data.labels import CLASS_NAMES, EMOTIONS, class_names, label_of, labels_of
from emo.data.naming import RavdessName, RavdessNameError, parse_name


def test_parse_valid_name_fields():
    n = parse_name("Actor_05/01-01-06-02-01-02-05.mp4")
    assert n == RavdessName(1, 1, 6, 2, 1, 2, 5)
    assert n.recording == "01-06-02-01-02-05"
    assert n.has_audio and n.has_video
    assert parse_name("03-02-03-01-02-01-24.WAV").modality == 3  # extension case does not matter
    assert parse_name("02-01-01-01-01-01-01.mp4").has_audio is False


def test_filename_round_trip():
    for name in ("01-01-01-01-01-01-01.mp4", "02-02-08-02-02-02-24.mp4", "03-01-05-01-02-01-13.wav"):
        assert parse_name(name).filename() == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("01-01-09-01-01-01-01.mp4", "invalid emotion code 09"),
        ("04-01-01-01-01-01-01.mp4", "invalid modality code 04"),
        ("01-01-01-01-01-01-25.mp4", "invalid actor code 25"),
        ("01-03-02-01-01-01-01.mp4", "invalid vocal_channel code 03"),
        ("01-01-01-02-01-01-01.mp4", "no strong neutral"),
        ("01-01-07-02-02-01-01_1.mp4", "text after the 7-field code ('_1')"),
        ("03-01-01-01-01-01-01.mp4", "must be a .wav file"),
        ("01-01-01-01-01-01-01.wav", "must be a .mp4 file"),
        ("01-01-01-01-01-01.mp4", "not a RAVDESS name"),
        ("README.md", "not a RAVDESS name"),
        ("1-1-1-1-1-1-1.mp4", "not a RAVDESS name"),
    ],
)
def test_bad_names_are_rejected_with_reason(name, reason):
    with pytest.raises(RavdessNameError, match=None) as err:
        parse_name(name)
    assert reason in str(err.value)


def test_label_tables():
    assert [e[1] for e in EMOTIONS] == list(CLASS_NAMES[8])
    # 4-class grouping from the training guide
    groups = {name: class_names(4)[label_of(code, 4)] for code, name, _ in EMOTIONS}
    assert groups == {
        "neutral": "neutral",
        "calm": "neutral",
        "happy": "positive",
        "sad": "negative",
        "angry": "negative",
        "fearful": "negative",
        "disgust": "negative",
        "surprised": "surprise",
    }
    codes = np.arange(1, 9)
    assert labels_of(codes, 8).tolist() == list(range(8))
    assert labels_of(codes, 4).tolist() == [0, 0, 1, 2, 2, 2, 2, 3]


def test_bad_label_inputs_name_valid_choices():
    with pytest.raises(ValueError, match="choose one of: 4, 8"):
        class_names(6)
    with pytest.raises(ValueError, match="1-8"):
        label_of(9, 8)
    with pytest.raises(ValueError, match="1-8"):
        labels_of(np.array([0, 1]), 4)
