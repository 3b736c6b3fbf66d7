"""Parse RAVDESS file names: `MM-VV-EE-II-SS-RR-AA.ext`.

    MM modality        01 audio-video, 02 video-only, 03 audio-only
    VV vocal channel   01 speech, 02 song
    EE emotion         01-08 (see emo.data.labels)
    II intensity       01 normal, 02 strong (neutral has no strong intensity)
    SS statement       01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
    RR repetition      01, 02
    AA actor           01-24 (odd male, even female)

Anything else is rejected with a reason (`NameError_`), never guessed at: a copy named
`...-01_1.mp4` is not silently merged with its original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
# Which extension each modality must have: RAVDESS ships 01/02 as mp4 and 03 as wav.
EXTENSION_OF_MODALITY = {1: ".mp4", 2: ".mp4", 3: ".wav"}
MEDIA_EXTENSIONS = frozenset(EXTENSION_OF_MODALITY.values())

_FIELD_RANGES = (
    ("modality", 1, 3),
    ("vocal_channel", 1, 2),
    ("emotion", 1, 8),
    ("intensity", 1, 2),
    ("statement", 1, 2),
    ("repetition", 1, 2),
    ("actor", 1, 24),
)
_CODE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})")


class RavdessNameError(ValueError):
    """A file name that is not a valid RAVDESS name; `str(err)` is the reason."""


@dataclass(frozen=True, order=True)
class RavdessName:
    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def recording(self) -> str:
        """The recording's id without the modality: the 01/02/03 files of one take share it."""
        return "-".join(f"{v:02d}" for v in self.fields()[1:])

    @property
    def has_audio(self) -> bool:
        return self.modality in (1, 3)

    @property
    def has_video(self) -> bool:
        return self.modality in (1, 2)

    def fields(self) -> tuple[int, ...]:
        return (
            self.modality,
            self.vocal_channel,
            self.emotion,
            self.intensity,
            self.statement,
            self.repetition,
            self.actor,
        )

    def filename(self) -> str:
        return "-".join(f"{v:02d}" for v in self.fields()) + EXTENSION_OF_MODALITY[self.modality]


def parse_name(name: str | Path) -> RavdessName:
    """Parse a RAVDESS file name (a bare name or a path). Raises `RavdessNameError` with the reason."""
    name = Path(name).name
    stem, ext = Path(name).stem, Path(name).suffix.lower()
    m = _CODE.match(stem)
    if m is None:
        raise RavdessNameError("not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA.mp4/.wav)")
    if len(stem) != m.end():
        raise RavdessNameError(
            f"text after the 7-field code ({stem[m.end() :]!r}): a renamed copy? rename it to "
            f"{stem[: m.end()]}{ext} to use it"
        )
    values = [int(g) for g in m.groups()]
    for (field, lo, hi), v in zip(_FIELD_RANGES, values, strict=True):
        if not lo <= v <= hi:
            raise RavdessNameError(f"invalid {field} code {v:02d} (valid: {lo:02d}-{hi:02d})")
    parsed = RavdessName(*values)
    want = EXTENSION_OF_MODALITY[parsed.modality]
    if ext != want:
        raise RavdessNameError(
            f"modality {parsed.modality:02d} ({MODALITIES[parsed.modality]}) must be a {want} file, "
            f"not {ext or 'no extension'!r}"
        )
    if parsed.emotion == 1 and parsed.intensity == 2:
        raise RavdessNameError("invalid intensity 02 for neutral (RAVDESS has no strong neutral)")
    return parsed
