"""Discover a RAVDESS folder: one catalog row per recording, its 01/02/03 files paired.

Discovery only reads names and file sizes (it is fast and runs on every `prepare`); whether a file
really decodes is found out during feature extraction, which records its own skip reasons.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from emo.data.naming import MEDIA_EXTENSIONS, RavdessName, RavdessNameError, parse_name

# Where each stream comes from, best first. Audio: the audio-only wav (lossless PCM), else the
# audio-video mp4's AAC track. Video: the audio-video mp4, else the video-only mp4. A video-only
# mp4's audio is never used: in RAVDESS it is an AAC track of digital silence.
AUDIO_SOURCES = (3, 1)
VIDEO_SOURCES = (1, 2)

# Files no one expects to be media; skipped with a short reason rather than "not a RAVDESS name".
_HIDDEN_REASON = "hidden or system file"
_FIELDS = ("vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")


class DataRootError(ValueError):
    """The data root cannot be used at all (missing, not a folder, or no RAVDESS file in it)."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Recording:
    """One take: up to three files (01 audio-video mp4, 02 video-only mp4, 03 audio-only wav)."""

    name: RavdessName  # the name of one of its files; modality aside, all its files share the fields
    files: dict[int, Path] = field(default_factory=dict)  # modality code -> path

    @property
    def recording(self) -> str:
        return self.name.recording

    def audio_sources(self) -> list[Path]:
        return [self.files[m] for m in AUDIO_SOURCES if m in self.files]

    def video_sources(self) -> list[Path]:
        return [self.files[m] for m in VIDEO_SOURCES if m in self.files]


@dataclass
class Catalog:
    root: Path
    recordings: list[Recording]  # sorted by (actor, recording)
    skipped: list[Skipped]  # files rejected by name or size, with the reason

    def __len__(self) -> int:
        return len(self.recordings)

    def files(self) -> list[Path]:
        return [p for r in self.recordings for p in r.files.values()]

    def to_table(self) -> pa.Table:
        """One row per recording: the RAVDESS fields and the path of each modality's file."""
        cols: dict[str, list] = defaultdict(list)
        for r in self.recordings:
            n = r.name
            cols["recording"].append(r.recording)
            for f in _FIELDS:
                cols[f].append(getattr(n, f))
            for m, col in ((1, "av_path"), (2, "video_only_path"), (3, "audio_only_path")):
                cols[col].append(str(r.files[m]) if m in r.files else None)
        schema = pa.schema(
            [("recording", pa.string())]
            + [(f, pa.int8()) for f in ("vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")]
            + [(c, pa.string()) for c in ("av_path", "video_only_path", "audio_only_path")]
        )
        return pa.table({name: cols[name] for name in schema.names}, schema=schema)


def discover(root: str | Path) -> Catalog:
    """Walk `root` recursively and pair the files of each recording.

    Rejected files (bad names, empty files, duplicates) are listed in `Catalog.skipped` with the reason;
    a missing or empty root, or one with no RAVDESS file at all, raises `DataRootError`.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataRootError(f"data root {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataRootError(f"data root {str(root)!r} is not a folder")

    by_recording: dict[str, Recording] = {}
    skipped: list[Skipped] = []
    seen_any = False
    # Symbolic links to folders are followed (a dataset assembled from links is common); each folder
    # is walked once, by its (device, inode): a link back up the tree, or a second link to a folder
    # already walked, is listed as skipped instead of walking it forever or twice.
    walked = {_folder_id(root): "the data root"}
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error_handler(root, skipped), followlinks=True):
        dirnames.sort()  # deterministic walk order: first-seen wins on duplicates
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        keep = []
        for d in dirnames:
            sub = Path(dirpath) / d
            rel = str(sub.relative_to(root))
            try:
                key = _folder_id(sub)
            except OSError as e:
                skipped.append(Skipped(rel, f"unreadable folder: {e.strerror}"))
                continue
            if key in walked:
                first = walked[key]
                skipped.append(Skipped(rel, f"same folder as {first} (through a symbolic link): not walked again"))
                continue
            walked[key] = rel
            keep.append(d)
        dirnames[:] = keep
        for fname in sorted(filenames):
            seen_any = True
            path = Path(dirpath) / fname
            rel = str(path.relative_to(root))
            if fname.startswith("."):
                skipped.append(Skipped(rel, _HIDDEN_REASON))
                continue
            if path.suffix.lower() not in MEDIA_EXTENSIONS:
                skipped.append(Skipped(rel, f"not a media file ({path.suffix or 'no extension'})"))
                continue
            try:
                name = parse_name(fname)
            except RavdessNameError as e:
                skipped.append(Skipped(rel, str(e)))
                continue
            try:
                size = path.stat().st_size
            except OSError as e:
                skipped.append(Skipped(rel, f"unreadable: {e.strerror}"))
                continue
            if size == 0:
                skipped.append(Skipped(rel, "empty file (0 bytes)"))
                continue
            rec = by_recording.setdefault(name.recording, Recording(name=name))
            if name.modality in rec.files:
                first = rec.files[name.modality].relative_to(root)
                skipped.append(Skipped(rel, f"duplicate of {first} (same RAVDESS code)"))
                continue
            rec.files[name.modality] = path

    if not seen_any and not skipped:
        raise DataRootError(f"data root {str(root)!r} is empty")
    if not by_recording:
        raise DataRootError(
            f"no RAVDESS file in {str(root)!r} ({len(skipped)} skipped, e.g. {skipped[0].path}: {skipped[0].reason})"
        )
    recordings = sorted(by_recording.values(), key=lambda r: (r.name.actor, r.recording))
    return Catalog(root=root, recordings=recordings, skipped=skipped)


def _folder_id(path: Path) -> tuple[int, int]:
    st = path.stat()  # follows a symbolic link to the folder it names
    return st.st_dev, st.st_ino


def _walk_error_handler(root: Path, skipped: list[Skipped]):
    """`os.walk`'s onerror: a subfolder that cannot be listed is skipped with the reason; the root
    itself cannot be listed at all, which is an error (not "empty")."""

    def onerror(e: OSError) -> None:
        where = Path(e.filename) if e.filename else root
        if where == root:
            raise DataRootError(
                f"data root {str(root)!r} is unreadable ({e.strerror}): check that this user may list it"
            ) from e
        try:
            rel = str(where.relative_to(root))
        except ValueError:
            rel = str(where)
        skipped.append(Skipped(rel, f"unreadable folder: {e.strerror}"))

    return onerror
