"""The feature cache: loads decode nothing, any change rebuilds, arrays are read-only memory maps."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import emo.data.cache as cache_mod
from emo.config import feature_preset
from emo.data import discover, prepare
from tests.media import tone, write_mp4, write_wav

CFG = feature_preset("demo")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def small_root(tmp_path) -> Path:
    root = tmp_path / "data"
    for actor in (1, 2):
        for emotion in (1, 3, 5):
            code = f"01-{emotion:02d}-01-01-01-{actor:02d}"
            audio = tone(2.0, 16_000, freq=150 * emotion + 20 * actor)
            write_mp4(root / f"Actor_{actor:02d}" / f"01-{code}.mp4", frames=20, audio=audio, seed=emotion)
            write_wav(root / f"Actor_{actor:02d}" / f"03-{code}.wav", audio)
    return root


def _no_extraction(*args, **kwargs):
    raise AssertionError("the cache should have been used: extraction was called")


def test_second_load_decodes_nothing_and_maps_read_only(small_root, tmp_path, monkeypatch):
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=2, progress=False)
    assert not first.from_cache and len(first) == 6
    # Any extraction or decoding from here on fails the test.
    monkeypatch.setattr(cache_mod, "extract_all", _no_extraction)
    monkeypatch.setattr("emo.data.features.decode_audio", _no_extraction)
    monkeypatch.setattr("emo.data.features.decode_video", _no_extraction)
    allocated = pa.total_allocated_bytes()
    second = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=2, progress=False)
    assert second.from_cache and second.path == first.path
    # zero-copy: Arrow allocated nothing for the arrays; numpy views memory it does not own
    assert pa.total_allocated_bytes() - allocated < 64 * 1024
    for arr in (second.audio, second.video):
        assert not arr.flags.writeable and not arr.flags.owndata
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    np.testing.assert_array_equal(second.audio, first.audio)
    np.testing.assert_array_equal(second.video, first.video)
    assert second.audio.shape == (6, *CFG.audio_shape) and second.video.shape == (6, *CFG.video_shape)


def test_touched_file_rebuilds_and_replaces_the_stale_cache(small_root, tmp_path):
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    wav = next(small_root.rglob("03-*.wav"))
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    logs: list[str] = []
    second = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False, log=logs.append)
    assert not second.from_cache and second.path != first.path
    assert not first.path.exists() and any("stale" in m for m in logs)
    # no temp files left, and the stale cache's stamp went with it
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [second.path.name, second.path.name + ".verified"]


def test_changed_setting_rebuilds_and_keeps_the_other(small_root, tmp_path):
    a = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    b = prepare(small_root, CFG.replace(n_mels=16), cache_dir=tmp_path / "c", workers=1, progress=False)
    assert not b.from_cache and b.path != a.path and a.path.exists()
    assert b.audio.shape[1] == 16
    assert prepare(small_root, CFG, cache_dir=tmp_path / "c", progress=False).from_cache


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_cache_is_detected_and_rebuilt(small_root, tmp_path, damage):
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    data = first.path.read_bytes()
    expected_audio = np.array(first.audio)
    del first
    cache_file = next((tmp_path / "c").glob("*.arrow"))
    cache_file.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x00" * len(data))
    logs: list[str] = []
    again = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False, log=logs.append)
    assert not again.from_cache
    assert any("unusable" in m and "rebuilding" in m for m in logs), logs
    np.testing.assert_array_equal(again.audio, expected_audio)


@pytest.mark.parametrize("stream", ["audio", "video"])
def test_a_changed_byte_in_the_features_is_detected_and_rebuilt(small_root, tmp_path, stream):
    """A bit flip leaves the file's size, footer and schema intact: only the stored crc32 finds it."""
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    path, expected = first.path, np.array(getattr(first, stream))
    del first
    with pa.memory_map(str(path)) as mm:  # where the stream's values lie in the file
        base = mm.read_buffer(1).address
        mm.seek(0)
        values = pa.ipc.open_file(mm).read_all().column(stream).chunk(0).storage.values.buffers()[1]
        offset = values.address - base + values.size // 2
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    logs: list[str] = []
    again = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False, log=logs.append)
    assert not again.from_cache
    assert any(f"the {stream} features changed on disk (crc32 mismatch)" in m and "rebuilding" in m for m in logs), logs
    np.testing.assert_array_equal(getattr(again, stream), expected)
    assert prepare(small_root, CFG, cache_dir=tmp_path / "c", progress=False).from_cache  # the rebuilt one verifies


def test_cli_prepare_prints_summary(small_root, tmp_path):
    env = {**os.environ, "EMO_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "emo.data", "prepare", "--data-root", str(small_root), "--preset", "demo"]
    out = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "6 clips from" in out.stdout and "built" in out.stdout
    assert "per class:    neutral 2, happy 2, angry 2" in out.stdout
    assert "per actor:    01: 3, 02: 3" in out.stdout
    assert "per modality: audio+video 6" in out.stdout
    assert "skipped files: 0" in out.stdout and "cache: " in out.stdout
    again = subprocess.run(cmd + ["--quiet", "--json"], capture_output=True, text=True, env=env, cwd=REPO)
    assert '"from_cache": true' in again.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data_root", "/definitely/not/here"], "error: data root '/definitely/not/here' does not exist"),
        (["--n_mels", "0"], "error: FeatureConfig.n_mels must be > 0"),
        (["--workers", "0"], "error: --workers must be >= 1"),
        (["--preset", "huge"], "invalid choice: 'huge'"),
    ],
)
def test_cli_bad_input_is_one_line_no_traceback(args, message, small_root, tmp_path):
    if "--data_root" not in args:
        args = ["--data_root", str(small_root), *args]
    out = subprocess.run(
        [sys.executable, "-m", "emo.data", "prepare", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "EMO_CACHE_DIR": str(tmp_path)},
    )
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


# ------------------------------------------------------------------ verification stamp (`<cache>.verified`)


def test_an_unchanged_cache_loads_without_reading_its_features_and_a_missing_stamp_verifies_again(
    small_root, tmp_path, monkeypatch
):
    """The crc32 of every feature byte is most of a RAVDESS-size load (BENCHMARKS.md); the writer's stamp
    says the file is as written, so a load of an unchanged cache reads none of its features."""
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    stamp = first.path.with_name(first.path.name + ".verified")
    assert stamp.exists()
    reads: list[int] = []
    real_crc = cache_mod._file_crc32
    monkeypatch.setattr(cache_mod, "_file_crc32", lambda *a, **k: reads.append(1) or real_crc(*a, **k))
    assert prepare(small_root, CFG, cache_dir=tmp_path / "c", progress=False).from_cache
    assert reads == [], "an unchanged cache with a valid stamp was checksummed again"
    stamp.unlink()  # no stamp (e.g. a cache copied here): verified in full, and stamped for next time
    assert prepare(small_root, CFG, cache_dir=tmp_path / "c", progress=False).from_cache
    assert len(reads) == 2 and stamp.exists()  # audio and video
    assert prepare(small_root, CFG, cache_dir=tmp_path / "c", progress=False).from_cache
    assert len(reads) == 2


def test_a_bit_flip_is_found_even_when_the_file_times_are_set_back(small_root, tmp_path):
    """Restoring mtime (os.utime, `cp -p`, `rsync -t`) cannot hide a change from the stamp: the change
    and the utime both move the inode's ctime, which no call sets back."""
    first = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False)
    path, expected = first.path, np.array(first.audio)
    offset = _values_offset(path, "audio")
    del first
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    logs: list[str] = []
    again = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=1, progress=False, log=logs.append)
    assert not again.from_cache
    assert any("the audio features changed on disk (crc32 mismatch)" in m for m in logs), logs
    np.testing.assert_array_equal(again.audio, expected)


def _values_offset(path: Path, stream: str) -> int:
    """Where the middle byte of a stream's feature values lies in the cache file."""
    with pa.memory_map(str(path)) as mm:
        base = mm.read_buffer(1).address
        mm.seek(0)
        values = pa.ipc.open_file(mm).read_all().column(stream).chunk(0).storage.values.buffers()[1]
        return values.address - base + values.size // 2


# ------------------------------------------------------------------------- a cache that cannot be written


@pytest.mark.parametrize("where", ["/proc/nope", "FILE"])
def test_a_cache_folder_that_cannot_be_written_is_one_error_line_before_any_extraction(where, small_root, tmp_path):
    if where == "FILE":
        where = str(tmp_path / "a-file")
        Path(where).write_text("x")
    out = subprocess.run(
        [sys.executable, "-m", "emo.data", "prepare", "--data_root", str(small_root), "--cache_dir", where],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    # one line, and no progress bar: nothing was extracted first
    assert out.stderr.splitlines() == [
        f"error: feature cache folder {where!r} cannot be created or written "
        + ("(it is not a folder)" if "a-file" in where else "(No such file or directory)")
        + ": pass --cache_dir or set EMO_CACHE_DIR to a writable folder"
    ]


def test_a_cache_write_that_fails_midway_is_one_error_line_and_leaves_nothing(tmp_path):
    """The disk fills while the cache is written (here: a file size limit, so the write really fails
    with an OSError): one `error:` line, no traceback, no temporary left behind."""
    root = tmp_path / "data"
    write_wav(root / "Actor_01" / "03-01-01-01-01-01-01.wav", tone(2.0, 16_000))
    limit = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from emo.data.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cache = tmp_path / "c"
    cmd = [sys.executable, "-c", limit, "prepare", "--data_root", str(root), "--cache_dir", str(cache), "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write the feature cache"), lines
    assert "File too large" in lines[0] and "--cache_dir" in lines[0]
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------------- an extraction process that dies


class _KillsItsWorker(type(Path())):
    """A path whose unpickling kills the process with SIGKILL, as the kernel's OOM killer would: the
    extraction worker it is sent to dies before it extracts anything, every time."""

    def __reduce__(self):
        return (signal.raise_signal, (signal.SIGKILL,))


def test_a_recording_that_kills_its_worker_is_skipped_and_every_other_one_is_extracted(
    small_root, tmp_path, monkeypatch
):
    catalog = discover(small_root)
    victim = catalog.recordings[1]
    victim.files = {m: _KillsItsWorker(p) for m, p in victim.files.items()}
    monkeypatch.setattr(cache_mod, "discover", lambda root: catalog)
    logs: list[str] = []
    fs = prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=2, progress=False, log=logs.append)
    assert len(fs) == 5 and victim.recording not in fs.column("recording").tolist()
    assert fs.skipped == [
        {"path": str(p.relative_to(small_root)), "reason": cache_mod.CRASHED} for p in victim.files.values()
    ]
    assert "extractor process crashed" in cache_mod.CRASHED
    assert any("a feature extraction process crashed" in m for m in logs), logs
    assert fs.has_audio.all() and fs.has_video.all()


def test_extraction_that_crashes_whatever_it_extracts_stops_with_one_error(small_root, tmp_path, monkeypatch):
    """Out of memory for any recording, or a broken install: a clear error after a few recordings,
    not one crash per recording of the whole set."""
    catalog = discover(small_root)
    for rec in catalog.recordings:
        rec.files = {m: _KillsItsWorker(p) for m, p in rec.files.items()}
    monkeypatch.setattr(cache_mod, "discover", lambda root: catalog)
    with pytest.raises(cache_mod.ExtractionError, match="feature extraction processes keep crashing: 3 recordings"):
        prepare(small_root, CFG, cache_dir=tmp_path / "c", workers=2, progress=False, log=lambda m: None)
    assert list((tmp_path / "c").glob("*.arrow")) == []
