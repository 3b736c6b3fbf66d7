"""The RAVDESS emotion table: 8 classes, and the 4-class grouping. The one place labels are defined.

RAVDESS emotion codes (field 3 of a file name) are 01-08. The 4-class task groups them as the
training guide does: neutral (neutral, calm), positive (happy), negative (sad, angry, fearful,
disgust), surprise (surprised).
"""

from __future__ import annotations

import numpy as np

# (RAVDESS code, 8-class name, 4-class name). Index in this tuple == 8-class label.
EMOTIONS: tuple[tuple[int, str, str], ...] = (
    (1, "neutral", "neutral"),
    (2, "calm", "neutral"),
    (3, "happy", "positive"),
    (4, "sad", "negative"),
    (5, "angry", "negative"),
    (6, "fearful", "negative"),
    (7, "disgust", "negative"),
    (8, "surprised", "surprise"),
)

CLASS_NAMES: dict[int, tuple[str, ...]] = {
    8: tuple(e[1] for e in EMOTIONS),
    4: ("neutral", "positive", "negative", "surprise"),
}
NUM_CLASSES_CHOICES = tuple(sorted(CLASS_NAMES))

EMOTION_NAME = {code: name for code, name, _ in EMOTIONS}

# code -> label, per class count
_LABEL_OF_CODE: dict[int, dict[int, int]] = {
    8: {code: i for i, (code, _, _) in enumerate(EMOTIONS)},
    4: {code: CLASS_NAMES[4].index(group) for code, _, group in EMOTIONS},
}


def check_num_classes(num_classes: int) -> int:
    if num_classes not in CLASS_NAMES:
        raise ValueError(
            f"unknown num_classes {num_classes!r}; choose one of: {', '.join(map(str, NUM_CLASSES_CHOICES))}"
        )
    return num_classes


def class_names(num_classes: int) -> tuple[str, ...]:
    return CLASS_NAMES[check_num_classes(num_classes)]


def label_of(emotion_code: int, num_classes: int) -> int:
    """Label (0-based) of a RAVDESS emotion code (1-8) in the 8- or 4-class task."""
    table = _LABEL_OF_CODE[check_num_classes(num_classes)]
    if emotion_code not in table:
        raise ValueError(f"unknown RAVDESS emotion code {emotion_code!r}; valid: 1-8")
    return table[emotion_code]


def labels_of(emotion_codes: np.ndarray, num_classes: int) -> np.ndarray:
    """Vectorised `label_of`: an int64 array of labels for an array of emotion codes."""
    table = _LABEL_OF_CODE[check_num_classes(num_classes)]
    lut = np.full(max(table) + 1, -1, dtype=np.int64)
    for code, label in table.items():
        lut[code] = label
    codes = np.asarray(emotion_codes, dtype=np.int64)
    if codes.size and (codes.min() < 1 or codes.max() > 8):
        raise ValueError("emotion codes must be 1-8")
    return lut[codes]
