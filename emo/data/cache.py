"""The feature cache: one Arrow IPC file per (source files, feature settings), memory-mapped on load.

`prepare(data_root, cfg)` is the one call training and sweeps make: it discovers the files, and either
loads the matching cache (no decoding; arrays are read-only views of the memory-mapped file) or
extracts every recording in parallel worker processes and writes the cache atomically.

The cache key covers each media file's relative path, size and modification time, every
`FeatureConfig` field and `EXTRACTOR_VERSION`: touching a file or changing a setting rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from emo.config import FeatureConfig, TrainConfig
from emo.data.catalog import Catalog, DataRootError, Recording, discover
from emo.data.labels import class_names, labels_of
from emo.parallel import one_thread, process_pool, usable_cores
from emo.paths import atomic_write, cache_root

if TYPE_CHECKING:  # extraction needs torch, torchaudio and OpenCV; a cache hit needs none of them
    from emo.data.features import ClipFeatures

# Bump when extraction changes in a way FeatureConfig does not capture: old caches then rebuild.
EXTRACTOR_VERSION = 2  # 2: after a VAD trim the window starts at the speech (the offset no longer applies)
_META_KEY = b"emo.features"
_FIELDS = ("vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")


class CacheError(RuntimeError):
    """A cache file that cannot be used (unreadable, wrong schema, wrong shapes); it is rebuilt."""


class CacheDirError(ValueError):
    """The cache folder cannot be created or written. A ValueError, like every other mistake in what
    a user passed, so each entry point reports it as one `error:` line."""


class ExtractionError(ValueError):
    """Extraction processes crash whatever they extract (out of memory, a broken install). A ValueError
    so that each entry point reports it as one `error:` line, as it does a bad input."""


# The reason a recording is skipped when extracting it kills its worker process (a crash in a decoder,
# the kernel's OOM killer), in a pool with others and again alone.
CRASHED = "extractor process crashed (twice: with other recordings, then alone)"
# A load verifies the crc32 of every feature byte only when the file may have changed since it was
# last verified: `<cache>.verified` records the file's size, times and inode as they were then.
STAMP_SUFFIX = ".verified"
# This many recordings in a row crashing their process alone, none extracted between them: the
# extractor itself cannot run here, and going on would only crash once per recording.
_CRASHES_IN_A_ROW = 3


@dataclass
class FeatureSet:
    """The extracted features of a RAVDESS folder: one row per recording.

    `audio` (N, n_mels, frames) float32 and `video` (N, T, S, S, 3) uint8 are read-only numpy views of
    the memory-mapped cache (None when no clip has that stream); rows without a stream hold zeros and
    have `has_audio` / `has_video` False.
    """

    table: pa.Table
    config: FeatureConfig
    root: Path
    path: Path
    skipped: list[dict]  # {"path", "reason"}: files not used, relative to root
    notes: list[dict]  # {"path", "note"}: files used, with something worth knowing
    from_cache: bool
    seconds: float  # wall time of `prepare`
    audio: np.ndarray | None = field(repr=False, default=None)
    video: np.ndarray | None = field(repr=False, default=None)
    # Streams whose arrays are a frozen front end's embeddings (emo.data.embeddings), by stream: what
    # computed them and the actors its encoder trained on.
    frontends: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> np.ndarray:
        return self.table.column(name).to_numpy()

    @property
    def actors(self) -> np.ndarray:
        return self.column("actor").astype(np.int64)

    @property
    def emotions(self) -> np.ndarray:
        return self.column("emotion").astype(np.int64)

    @property
    def has_audio(self) -> np.ndarray:
        return self.column("has_audio")

    @property
    def has_video(self) -> np.ndarray:
        return self.column("has_video")

    def labels(self, num_classes: int) -> np.ndarray:
        return labels_of(self.emotions, num_classes)

    def arrays(self) -> TrainingArrays:
        """The columns training needs, without the Arrow table (see TrainingArrays)."""
        return TrainingArrays(
            audio=self.audio,
            video=self.video,
            actors=self.actors,
            emotions=self.emotions,
            has_audio=self.has_audio.astype(bool),
            has_video=self.has_video.astype(bool),
            recordings=self.column("recording").astype(str),
            frontends=self.frontends,
            features=self.config.to_dict(),
        )

    def summary(self) -> dict:
        """Counts a person wants to see: per class, actor, modality and crop; skips; cache size."""
        names = class_names(8)
        modality = np.where(
            self.has_audio & self.has_video,
            "audio+video",
            np.where(self.has_audio, "audio only", "video only"),
        )
        return {
            "clips": len(self),
            "per_class": {names[k]: v for k, v in sorted(Counter(self.labels(8).tolist()).items())},
            "per_actor": {f"{a:02d}": v for a, v in sorted(Counter(self.actors.tolist()).items())},
            "per_modality": dict(sorted(Counter(modality.tolist()).items())),
            "crop": dict(sorted(Counter(c for c in self.column("crop").tolist() if c).items())),
            "skipped": self.skipped,
            "notes": self.notes,
            "cache_path": str(self.path),
            "cache_bytes": self.path.stat().st_size,
            "from_cache": self.from_cache,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class TrainingArrays:
    """What training reads from a FeatureSet, as plain numpy arrays and nothing else.

    This is what a sweep puts in Ray's object store once: numpy arrays travel as out-of-band buffers
    and every trial on a node maps the same shared-memory copy read-only. Pickling a FeatureSet would
    also carry its Arrow table, i.e. the features twice.
    """

    audio: np.ndarray | None
    video: np.ndarray | None
    actors: np.ndarray
    emotions: np.ndarray
    has_audio: np.ndarray
    has_video: np.ndarray
    recordings: np.ndarray  # RAVDESS recording ids ("01-01-05-01-01-01-12"), for error analysis
    frontends: dict = field(default_factory=dict)  # as FeatureSet.frontends
    features: dict = field(default_factory=dict)  # the FeatureConfig they were made with, as a dict

    def __len__(self) -> int:
        return len(self.actors)

    def labels(self, num_classes: int) -> np.ndarray:
        return labels_of(self.emotions, num_classes)


def default_cache_dir() -> Path:
    return cache_root() / "features"


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def cache_path(catalog: Catalog, cfg: FeatureConfig, cache_dir: Path) -> Path:
    """`<root name>-<root+settings hash>-<files hash>.arrow`: files of one root and settings share a
    prefix, so a rebuild after a file changed can remove the stale file it replaces."""
    root = catalog.root.resolve()
    settings = _sha({"root": str(root), "config": cfg.to_dict(), "version": EXTRACTOR_VERSION})[:8]
    files = []
    for p in sorted(catalog.files()):
        st = p.stat()
        files.append((str(p.relative_to(catalog.root)), st.st_size, st.st_mtime_ns))
    return cache_dir / f"{root.name}-{settings}-{_sha(files)[:16]}.arrow"


def prepare(
    data_root: str | Path,
    cfg: FeatureConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    rebuild: bool = False,
    log: Callable[[str], None] | None = None,
) -> FeatureSet:
    """Build or load the feature cache of `data_root`. See the module docstring."""
    t0 = time.perf_counter()
    cfg = cfg or FeatureConfig()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    catalog = discover(data_root)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = cache_path(catalog, cfg, cache_dir)
    if path.exists() and not rebuild:
        try:
            return load(path, catalog, cfg, seconds_since=t0)
        except CacheError as e:
            log(f"feature cache {path} is unusable ({e}); rebuilding it")
    check_cache_dir(cache_dir)  # before the extraction (minutes at RAVDESS size), not after it
    results = extract_all(catalog, cfg, workers=workers, progress=progress, log=log)
    keep, skipped, _ = _assemble(catalog, results)
    if not keep:
        raise DataRootError(_nothing_usable(catalog, skipped))
    try:
        write(path, catalog, cfg, results, build_seconds=time.perf_counter() - t0)
    except OSError as e:  # a full disk, a folder made read-only meanwhile
        raise CacheDirError(
            f"cannot write the feature cache {str(path)!r} ({e.strerror or e}): free space there, or pass "
            "--cache_dir or set EMO_CACHE_DIR to another folder"
        ) from e
    prefix = path.name.rsplit("-", 1)[0]
    for stale in cache_dir.glob(prefix + "-*.arrow"):
        if stale != path:
            stale.unlink(missing_ok=True)
            log(f"removed stale feature cache {stale.name} (source files changed)")
    for stamp in cache_dir.glob(prefix + "-*.arrow" + STAMP_SUFFIX):  # with their caches, or left alone
        if stamp != stamp_path(path):
            stamp.unlink(missing_ok=True)
    fs = load(path, catalog, cfg, seconds_since=t0)
    fs.from_cache = False
    return fs


def check_cache_dir(cache_dir: Path) -> None:
    """Create `cache_dir` if need be and check a file can be made in it; raises CacheDirError."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache_dir):  # no name on Linux (O_TMPFILE): nothing to leak
            pass
    except OSError as e:
        not_a_folder = os.path.lexists(cache_dir) and not os.path.isdir(cache_dir)
        why = "it is not a folder" if not_a_folder else (e.strerror or str(e))
        raise CacheDirError(
            f"feature cache folder {str(cache_dir)!r} cannot be created or written ({why}): pass --cache_dir or set "
            "EMO_CACHE_DIR to a writable folder"
        ) from e


def _nothing_usable(catalog: Catalog, content_skips: list[dict]) -> str:
    skips = [s.to_dict() for s in catalog.skipped] + content_skips
    shown = "; ".join(f"{s['path']}: {s['reason']}" for s in skips[:3]) + ("; ..." if len(skips) > 3 else "")
    return (
        f"no usable clip in {str(catalog.root)!r}: all {len(skips)} file(s) were skipped ({shown}); "
        "replace the broken files or point the data root at RAVDESS media"
    )


def load_data(cfg: TrainConfig, progress: bool = True) -> FeatureSet:
    """The feature set `cfg` trains on: `cfg.data_root`, or the built-in demo set when it is None, with
    the embeddings of its frozen front ends in place of the features of those streams.

    Imports no torch when the cache exists: the sweep driver calls this and never trains (importing
    torch and torchvision cost it about 6 s of a sweep's start on 2 cores)."""
    if cfg.data_root is None:
        from emo.data.synth import demo_root

        root = demo_root(progress=progress)
    else:
        root = cfg.data_root
    fs = prepare(root, cfg.feature_config(), progress=progress)
    if any(cfg.frozen(s) for s in cfg.streams):
        from emo.data.embeddings import embed

        fs = embed(cfg, fs, progress=progress)
    return fs


# --------------------------------------------------------------------------------------------- build


def _extract(rec: Recording, cfg: FeatureConfig, decode_threads: int) -> ClipFeatures:
    from emo.data.features import ClipFeatures, extract_recording

    audio = [str(p) for p in rec.audio_sources()]
    video = [str(p) for p in rec.video_sources()]
    try:
        return extract_recording(rec.recording, audio, video, cfg, decode_threads=decode_threads)
    except Exception as e:  # noqa: BLE001 - one odd file must never end a whole extraction
        out = ClipFeatures(recording=rec.recording)
        out.problems = [(p, f"unexpected error: {type(e).__name__}: {e}") for p in dict.fromkeys(audio + video)]
        return out


def extract_all(
    catalog: Catalog,
    cfg: FeatureConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[ClipFeatures]:
    """Extract every recording of `catalog`, in `workers` processes (default: every usable core).

    A worker process that dies (a crash inside a decoder, the kernel's OOM killer) breaks its whole
    pool, and which recording killed it is unknown: each recording that was in flight then runs again
    alone in a fresh process, and the ones not started yet go on in a fresh pool. A recording that
    crashes its process again, alone, gets no features and its files are skipped with `CRASHED`;
    `_CRASHES_IN_A_ROW` such recordings with nothing extracted between them raise ExtractionError.
    (With `workers=1` extraction runs in this process, which such a crash ends.)"""
    recs = catalog.recordings
    log = log or (lambda msg: print(msg, file=sys.stderr))
    workers = max(1, min(workers or usable_cores(), len(recs)))
    bar = tqdm(total=len(recs), desc="extracting features", unit="clip", disable=not progress, file=sys.stderr)
    results: list[ClipFeatures | None] = [None] * len(recs)
    if workers == 1:
        for i, rec in enumerate(recs):
            results[i] = _extract(rec, cfg, decode_threads=0)
            bar.update()
    else:
        todo, crashed = list(range(len(recs))), []  # crashed: alone, with nothing extracted since
        while todo:
            in_flight, todo, extracted = _pool_round(recs, cfg, todo, workers, results, bar)
            crashed = [] if extracted else crashed
            if in_flight:
                names = ", ".join(recs[i].recording for i in in_flight)
                log(f"a feature extraction process crashed; extracting again, one process each: {names}")
            for i in in_flight:
                if not _pool_round(recs, cfg, [i], 1, results, bar)[0]:
                    crashed = []
                    continue
                results[i] = _crashed(recs[i])
                bar.update()
                log(f"{recs[i].recording}: {CRASHED}; its files are skipped")
                crashed.append(recs[i].recording)
                if len(crashed) >= _CRASHES_IN_A_ROW:
                    bar.close()
                    raise ExtractionError(
                        f"feature extraction processes keep crashing: {len(crashed)} recordings in a row "
                        f"({', '.join(crashed)}) crashed theirs even alone; check free memory (`dmesg` shows "
                        "the kernel's OOM kills), or run with --workers 1 to see the crash"
                    )
    bar.close()
    return results  # type: ignore[return-value]


def _pool_round(
    recs: list[Recording], cfg: FeatureConfig, todo: list[int], workers: int, results: list, bar: tqdm
) -> tuple[list[int], list[int], int]:
    """Extract recordings `todo` in a fresh pool of `workers` processes, filling `results`.

    At most `workers` recordings are in flight, so when a worker dies the suspects are those few.
    Returns (the recordings in flight when a worker died, the ones not started, how many finished);
    the first two are empty when every recording finished."""
    queue, running, finished = deque(todo), {}, 0
    with process_pool(workers, initializer=one_thread) as pool:
        try:
            while queue or running:
                while queue and len(running) < workers:
                    running[pool.submit(_extract, recs[queue[0]], cfg, 1)] = queue[0]
                    queue.popleft()
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[running[fut]] = fut.result()  # BrokenProcessPool if a worker died
                    del running[fut]
                    finished += 1
                    bar.update()
        except BrokenProcessPool:
            wait(running)  # the pool fails every unfinished future; keep what finished before the crash
            for fut in [f for f in running if f.exception() is None]:
                results[running.pop(fut)] = fut.result()
                finished += 1
                bar.update()
    return sorted(running.values()), list(queue), finished


def _crashed(rec: Recording) -> ClipFeatures:
    from emo.data.features import ClipFeatures

    out = ClipFeatures(recording=rec.recording)
    out.problems = [(str(p), CRASHED) for p in dict.fromkeys(rec.audio_sources() + rec.video_sources())]
    return out


def _assemble(catalog: Catalog, results: list[ClipFeatures]) -> tuple[list[int], list[dict], list[dict]]:
    """Which recordings are kept, which files are skipped (unused, with reasons) and which have notes."""
    keep, skipped, notes = [], [], []
    root = catalog.root
    for i, (rec, res) in enumerate(zip(catalog.recordings, results, strict=True)):
        used = {res.audio_file, res.video_file} - {None}
        reasons: dict[str, list[str]] = {}
        for f, why in res.problems:
            reasons.setdefault(f, []).append(why)
        for f in map(str, rec.files.values()):
            if f in reasons:
                entry = {"path": str(Path(f).relative_to(root)), "reason": "; ".join(reasons[f])}
                if f in used:
                    notes.append({"path": entry["path"], "note": entry["reason"]})
                else:
                    skipped.append(entry)
        if used:
            keep.append(i)
    return keep, skipped, notes


def write(path: Path, catalog: Catalog, cfg: FeatureConfig, results: list[ClipFeatures], build_seconds: float):
    """Write the cache as one record batch (so loads map each column as one contiguous array), to a
    temporary file renamed into place: a crash never leaves a half-written cache under the real name."""
    keep, skipped, notes = _assemble(catalog, results)
    recs = [catalog.recordings[i] for i in keep]
    res = [results[i] for i in keep]
    n = len(res)
    root = catalog.root

    def rel(p: str | None) -> str | None:
        return None if p is None else str(Path(p).relative_to(root))

    cols: dict[str, pa.Array] = {"recording": pa.array([r.recording for r in recs], pa.string())}
    for f in _FIELDS:
        cols[f] = pa.array([getattr(r.name, f) for r in recs], pa.int8())
    cols["has_audio"] = pa.array([x.audio is not None for x in res], pa.bool_())
    cols["has_video"] = pa.array([x.video is not None for x in res], pa.bool_())
    cols["audio_file"] = pa.array([rel(x.audio_file) for x in res], pa.string())
    cols["video_file"] = pa.array([rel(x.video_file) for x in res], pa.string())
    cols["audio_seconds"] = pa.array([x.audio_seconds for x in res], pa.float32())
    cols["video_frames"] = pa.array([x.video_frames for x in res], pa.int32())
    cols["crop"] = pa.array([x.crop for x in res], pa.string())
    crc: dict[str, int] = {}
    for stream, shape, dtype in (("audio", cfg.audio_shape, np.float32), ("video", cfg.video_shape, np.uint8)):
        if any(getattr(x, stream) is not None for x in res):  # no column at all for a stream no clip has
            arr = np.zeros((n, *shape), dtype)  # rows without the stream stay zero (has_<stream> False)
            for i, x in enumerate(res):
                if getattr(x, stream) is not None:
                    arr[i] = getattr(x, stream)
            cols[stream] = pa.FixedShapeTensorArray.from_numpy_ndarray(arr)
            crc[stream] = zlib.crc32(arr)
    meta = {
        "version": EXTRACTOR_VERSION,
        # crc32 of each feature array: a load verifies them, so a changed byte on disk (a bit flip
        # that leaves the file's size, footer and schema intact) is found.
        "crc32": crc,
        "config": cfg.to_dict(),
        "root": str(root.resolve()),
        "source_files": len(catalog.files()),
        # Both lists, so the file alone tells what went into it; on load the name-level list is
        # re-derived from the folder as it is now.
        "skipped_by_name": [s.to_dict() for s in catalog.skipped],
        "skipped_by_content": skipped,
        "notes": notes,
        "build_seconds": round(build_seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_ipc(path, pa.table(cols).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()}))


def write_ipc(path: Path, table: pa.Table) -> None:
    """`table` as one record batch (a load maps each column as one contiguous array) to a temporary file
    renamed into place, then its stamp: a crash never leaves a half-written file under the real name.
    The table's stored crc32s are of the arrays just written: the file as it is now needs no verifying."""

    def write(tmp: str) -> None:  # (atomic_write syncs it to disk before the rename)
        with open(tmp, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))

    stamp_path(path).unlink(missing_ok=True)
    atomic_write(path, write)
    _write_stamp(path, _stat_key(os.stat(path)))


# ---------------------------------------------------------------------------------------------- load


def map_ipc(path: Path, meta_key: bytes) -> tuple[pa.Table, dict, os.stat_result, int]:
    """Memory-map an Arrow file written by `write_ipc`: its table, the JSON metadata under `meta_key`,
    the file's stat before mapping and the address byte 0 is mapped at. CacheError when unreadable."""
    try:
        before = os.stat(path)
        # The map stays open for as long as any array views it (Arrow buffers hold a reference).
        mapped = pa.memory_map(str(path), "r")
        base = mapped.read_buffer(1).address
        mapped.seek(0)
        table = pa.ipc.open_file(mapped).read_all()
        meta = json.loads(table.schema.metadata[meta_key])
    except (pa.ArrowInvalid, OSError, KeyError, TypeError, ValueError) as e:
        raise CacheError(f"unreadable: {e}") from e
    return table, meta, before, base


def verify_mapped(path: Path, before: os.stat_result, base: int, checks: dict[str, tuple[np.ndarray, int]]) -> None:
    """CacheError unless each mapped array of `checks` ({what: (array, its stored crc32)}) still holds
    the bytes its crc32 was computed from. The bytes are read only when the file may have changed since
    it was last written or verified (its stamp does not match it), and a file that was not replaced
    while it was mapped is stamped as verified."""
    if not checks:  # (a cache written before checksums were stored has none)
        return
    key = _stat_key(before)
    try:
        same_file = _stat_key(os.stat(path)) == key  # not replaced while it was being mapped
    except OSError:
        same_file = False
    if same_file and _is_verified(path, key):
        return
    for what, (arr, want) in checks.items():
        if _file_crc32(path, arr.ctypes.data - base, arr.nbytes) != want:
            raise CacheError(f"the {what} changed on disk (crc32 mismatch)")
    if same_file:
        _write_stamp(path, key)  # as it was before the reads: a change during them shows next time


def tensor_column(table: pa.Table, name: str, shape: tuple[int, ...], dtype) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    if col.num_chunks != 1 or not isinstance(col.type, pa.FixedShapeTensorType):
        raise CacheError(f"column {name!r} is not one fixed-shape tensor chunk")
    if tuple(col.type.shape) != shape or col.type.value_type != pa.from_numpy_dtype(dtype):
        raise CacheError(f"column {name!r} has shape {tuple(col.type.shape)}, expected {shape}")
    arr = col.chunk(0).to_numpy_ndarray()  # zero-copy view of the mapped file
    if arr.shape != (table.num_rows, *shape):
        raise CacheError(f"column {name!r} holds {arr.shape[0]} rows, table has {table.num_rows}")
    return arr


def _file_crc32(path: Path, offset: int, size: int, chunk: int = 16 * 2**20) -> int:
    """crc32 of bytes [offset, offset + size) of the file, read with plain reads: checksumming
    through the memory map would fault in every page of it in this process (1.8 s instead of 0.4 s
    for the 950 MiB RAVDESS-size cache, BENCHMARKS.md), and the loaded arrays stay untouched until
    they are used."""
    crc, buf = 0, bytearray(min(chunk, max(size, 1)))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        while size > 0:
            n = f.readinto(view[: min(len(buf), size)])
            if not n:
                raise CacheError("the file ends inside its feature data")
            crc = zlib.crc32(view[:n], crc)
            size -= n
    return crc


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + STAMP_SUFFIX)


def _stat_key(st: os.stat_result) -> dict:
    # Any write through the filesystem changes ctime, which no one can set back (utime sets it too).
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "dev": st.st_dev,
    }


def _is_verified(path: Path, key: dict) -> bool:
    """Whether `path`'s stamp says it was verified (or written) as `key` describes it now."""
    stamp = stamp_path(path)
    try:
        recorded = json.loads(stamp.read_text())
        stamp_ctime = stamp.stat().st_ctime_ns
    except (OSError, ValueError):
        return False
    # File times tick coarsely (a few ms on Linux): a change to the cache within the tick that its
    # recorded ctime falls in would leave that ctime as it was. Only a stamp written in a later tick
    # than the cache's ctime vouches for it ("racy git" has the same rule).
    return recorded == key and stamp_ctime > key["ctime_ns"]


def _write_stamp(path: Path, key: dict) -> None:
    """Record that `path` holds, as `key` describes it, the bytes its stored crc32s were computed from.
    Rewritten until its own ctime is past the cache's (one clock tick, up to 2 s on coarse
    filesystems). Best effort: where it cannot be written, every load verifies in full."""
    stamp, deadline = stamp_path(path), time.monotonic() + 2.5
    try:
        while True:
            atomic_write(stamp, lambda tmp: Path(tmp).write_text(json.dumps(key)))
            if stamp.stat().st_ctime_ns > key["ctime_ns"] or time.monotonic() > deadline:
                return
            time.sleep(0.002)
    except OSError:
        pass


def load(path: Path, catalog: Catalog, cfg: FeatureConfig, seconds_since: float | None = None) -> FeatureSet:
    """Memory-map a cache file written by `write` and check it matches `cfg`. Raises CacheError.

    The crc32 of the feature bytes is verified only when the file may have changed since it was last
    written or verified (its stamp, `<cache>.verified`, does not match it); that read of every byte
    is most of a load's time at RAVDESS size (BENCHMARKS.md)."""
    t0 = seconds_since if seconds_since is not None else time.perf_counter()
    table, meta, before, base = map_ipc(path, _META_KEY)
    if meta.get("version") != EXTRACTOR_VERSION or meta.get("config") != cfg.to_dict():
        raise CacheError("written with other feature settings")
    missing = {"recording", *_FIELDS, "has_audio", "has_video", "crop"} - set(table.column_names)
    if missing:
        raise CacheError(f"missing column(s) {sorted(missing)}")
    audio = tensor_column(table, "audio", cfg.audio_shape, np.float32)
    video = tensor_column(table, "video", cfg.video_shape, np.uint8)
    # (a cache written before checksums were stored has none to verify; its schema was checked above)
    crc = meta.get("crc32") or {}
    checks = {
        f"{s} features": (a, crc[s]) for s, a in (("audio", audio), ("video", video)) if a is not None and s in crc
    }
    verify_mapped(path, before, base, checks)
    return FeatureSet(
        table=table,
        config=cfg,
        root=catalog.root,
        path=path,
        skipped=[s.to_dict() for s in catalog.skipped] + meta["skipped_by_content"],
        notes=meta["notes"],
        from_cache=True,
        seconds=time.perf_counter() - t0,
        audio=audio,
        video=video,
    )
