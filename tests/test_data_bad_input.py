"""Every bad case the data layer knows, each beside good files in a generated folder."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from emo.config import feature_preset
from emo.data import DataRootError, discover, prepare
from emo.data.decode import DecodeError, decode_audio
from tests.conftest import RAVDESS, requires_speech16k
from tests.media import tone, write_mp4, write_wav

CFG = feature_preset("demo")


def _good(folder: Path, code: str, a: str, seed: int) -> None:
    """A good recording: an audio-video mp4 and its audio-only wav."""
    audio = tone(2.0, 16_000, freq=200 + 40 * seed)
    write_mp4(folder / f"01-{code}-{a}.mp4", frames=30, audio=audio, seed=seed)
    write_wav(folder / f"03-{code}-{a}.wav", audio)


def messy_skips(actor: int = 1) -> dict[str, str]:
    """The files `write_messy` makes that must be skipped -> (part of) the reason."""
    a = f"{actor:02d}"
    d = f"Actor_{a}"
    return {
        f"{d}/01-01-03-01-01-01-{a}.mp4": "truncated or corrupt",
        f"{d}/01-01-03-02-01-01-{a}.mp4": "cannot open as media",
        f"{d}/03-01-04-01-01-01-{a}.wav": "empty file (0 bytes)",
        f"{d}/01-01-05-01-01-01-{a}.mp4": "cannot open as media",
        f"{d}/02-01-07-01-01-01-{a}.mp4": "too short (2 frames; need at least 8)",
        f"{d}/01-01-09-01-01-01-{a}.wav": "invalid emotion code 09",
        f"{d}/03-01-09-01-01-01-{a}.wav": "invalid emotion code 09",
        f"{d}/03-01-08-01-01-01-{a}_1.wav": "text after the 7-field code ('_1')",
        f"{d}/01-01-08-02-01-01-{a}.mp4": "cannot open as media",
        f"{d}/03-01-06-02-01-01-{a}.wav": "audio truncated: the file holds 1.00 s of the 2.00 s",
        f"{d}/.DS_Store": "hidden or system file",
        f"{d}/notes.txt": "not a media file",
        "README.md": "not a media file",
    }


def write_messy(root: Path, actor: int = 1) -> dict[str, str]:
    """Every bad case, beside two good recordings, in ROOT/Actor_NN (plus a stray README.md in ROOT).
    Returns `messy_skips(actor)`."""
    a = f"{actor:02d}"
    a1 = root / f"Actor_{a}"
    a1.mkdir(parents=True, exist_ok=True)
    _good(a1, "01-01-01-01-01", a, 0)
    _good(a1, "01-02-01-01-01", a, 1)
    # truncated mp4 whose index (moov) is at the front, as in real RAVDESS: it opens, then runs dry
    full = write_mp4(root / "tmp.mp4", frames=60, audio=tone(4.0, 16_000), faststart=True).read_bytes()
    (root / "tmp.mp4").unlink()
    (a1 / f"01-01-03-01-01-01-{a}.mp4").write_bytes(full[: len(full) // 2])
    # truncated mp4 with the index at the end: the index is gone
    full = write_mp4(root / "tmp.mp4", frames=60, audio=tone(4.0, 16_000)).read_bytes()
    (root / "tmp.mp4").unlink()
    (a1 / f"01-01-03-02-01-01-{a}.mp4").write_bytes(full[: len(full) // 2])
    (a1 / f"03-01-04-01-01-01-{a}.wav").write_bytes(b"")  # zero-byte wav
    # a wav cut to half its length: FFmpeg decodes the half that is there without an error
    full = write_wav(root / "tmp.wav", tone(2.0, 16_000)).read_bytes()
    (root / "tmp.wav").unlink()
    (a1 / f"03-01-06-02-01-01-{a}.wav").write_bytes(full[: 44 + (len(full) - 44) // 2])
    (a1 / f"01-01-05-01-01-01-{a}.mp4").write_text("this is not a video\n")  # text named .mp4
    write_mp4(a1 / f"01-01-06-01-01-01-{a}.mp4", frames=30, audio=None)  # AV name, no audio stream
    write_mp4(a1 / f"02-01-07-01-01-01-{a}.mp4", frames=2, audio=None)  # 2-frame video
    write_wav(a1 / f"01-01-09-01-01-01-{a}.wav", tone(1.0, 16_000))  # invalid emotion 09 (and modality)
    write_wav(a1 / f"03-01-09-01-01-01-{a}.wav", tone(1.0, 16_000))  # invalid emotion 09
    write_wav(a1 / f"03-01-08-01-01-01-{a}_1.wav", tone(1.0, 16_000))  # suffix after the code
    # a recording whose mp4 is broken but whose wav is fine: kept, audio only
    (a1 / f"01-01-08-02-01-01-{a}.mp4").write_text("garbage")
    write_wav(a1 / f"03-01-08-02-01-01-{a}.wav", tone(2.0, 16_000, freq=500))
    # an mp4 whose audio track is digital silence: kept, video only, with a note
    write_mp4(a1 / f"01-01-02-02-02-02-{a}.mp4", frames=30, audio=np.zeros(32_000, np.float32))
    (a1 / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "README.md").write_text("my notes")
    (a1 / "notes.txt").write_text("x")
    return messy_skips(actor)


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("messy")
    write_messy(root)
    return root


EXPECTED_SKIPS = messy_skips(1)


def test_every_bad_file_is_skipped_with_its_reason_and_good_files_load(messy, tmp_path):
    fs = prepare(messy, CFG, cache_dir=tmp_path, workers=2, progress=False)
    reasons = {s["path"]: s["reason"] for s in fs.skipped}
    for path, reason in EXPECTED_SKIPS.items():
        assert path in reasons, f"{path} not listed as skipped"
        assert reason in reasons[path], (path, reasons[path])
    assert len(reasons) == len(fs.skipped) == len(EXPECTED_SKIPS), "each skipped file listed once"

    rows = {r: i for i, r in enumerate(fs.table.column("recording").to_pylist())}
    assert set(rows) == {
        "01-01-01-01-01-01",  # good
        "01-02-01-01-01-01",  # good
        "01-06-01-01-01-01",  # no audio stream: video only
        "01-08-02-01-01-01",  # broken mp4, good wav: audio only
        "01-02-02-02-02-01",  # silent audio track: video only
    }
    for rec in ("01-01-01-01-01-01", "01-02-01-01-01-01"):
        i = rows[rec]
        assert fs.has_audio[i] and fs.has_video[i]
        assert np.abs(fs.audio[i]).sum() > 0 and fs.video[i].std() > 0
    i = rows["01-06-01-01-01-01"]
    assert not fs.has_audio[i] and fs.has_video[i] and not fs.audio[i].any()
    i = rows["01-08-02-01-01-01"]
    assert fs.has_audio[i] and not fs.has_video[i] and not fs.video[i].any()
    assert fs.table.column("audio_file")[i].as_py() == "Actor_01/03-01-08-02-01-01-01.wav"
    notes = {n["path"]: n["note"] for n in fs.notes}
    assert notes == {
        "Actor_01/01-01-06-01-01-01-01.mp4": "audio: no audio stream",
        "Actor_01/01-01-02-02-02-02-01.mp4": "audio: all-zero track (digital silence), counted as no audio",
    }


def test_skip_reasons_are_stored_in_the_cache_metadata(messy, tmp_path):
    import json

    import pyarrow as pa

    fs = prepare(messy, CFG, cache_dir=tmp_path, workers=1, progress=False)
    meta = json.loads(pa.ipc.open_file(pa.memory_map(str(fs.path))).schema.metadata[b"emo.features"])
    stored = {s["path"] for s in meta["skipped_by_name"] + meta["skipped_by_content"]}
    assert stored == set(EXPECTED_SKIPS)
    again = prepare(messy, CFG, cache_dir=tmp_path, workers=1, progress=False)
    assert again.from_cache and again.skipped == fs.skipped


def test_empty_and_missing_roots_are_clear_errors(tmp_path):
    with pytest.raises(DataRootError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataRootError, match="is empty"):
        prepare(tmp_path / "empty", CFG, cache_dir=tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(DataRootError, match="no RAVDESS file"):
        discover(tmp_path / "junk")
    (tmp_path / "file.mp4").write_text("x")
    with pytest.raises(DataRootError, match="not a folder"):
        discover(tmp_path / "file.mp4")


@requires_speech16k
def test_a_truncated_real_wav_is_skipped_as_truncated(tmp_path):
    """FFmpeg clamps a wav's duration to the bytes that are there, so only the RIFF header tells."""
    src = RAVDESS / "speech16k" / "Actor_01" / "03-01-01-01-01-01-01.wav"
    data = src.read_bytes()
    cut = tmp_path / src.name
    cut.write_bytes(data[: len(data) // 2])
    assert decode_audio(src, 16_000).size > 0
    with pytest.raises(DecodeError, match=r"audio truncated: the file holds 1\.\d\d s of the 3\.\d\d s its WAV header"):
        decode_audio(cut, 16_000)


def test_a_folder_where_no_file_decodes_is_one_error_line_and_writes_no_cache(tmp_path, capfd):
    from emo.data.__main__ import main

    root = tmp_path / "data"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "01-01-03-01-01-01-01.mp4").write_text("this is not a video\n")
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "--data_root", str(root), "--cache_dir", str(tmp_path / "c"), "--quiet"])
    assert exit_.value.code == 2
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: no usable clip in {str(root)!r}: all 1 file(s) were skipped (")
    assert "Actor_01/01-01-03-01-01-01-01.mp4: audio: cannot open as media" in lines[0]
    assert list((tmp_path / "c").iterdir()) == []


def test_symlinked_actor_folders_are_followed_and_each_folder_is_walked_once(tmp_path):
    store = tmp_path / "elsewhere" / "Actor_01"
    write_wav(store / "03-01-01-01-01-01-01.wav", tone(1.0, 16_000))
    root = tmp_path / "data"
    root.mkdir()
    (root / "Actor_01").symlink_to(store, target_is_directory=True)  # the root's only entry is a link
    catalog = discover(root)
    assert [r.files for r in catalog.recordings] == [{3: root / "Actor_01" / "03-01-01-01-01-01-01.wav"}]
    assert catalog.skipped == []
    # a link back up the tree (a loop) and a second link to a folder already walked: listed once each
    (store / "up").symlink_to(root, target_is_directory=True)
    (root / "again").symlink_to(store, target_is_directory=True)
    catalog = discover(root)
    assert len(catalog.recordings) == 1
    assert {s.path: s.reason for s in catalog.skipped} == {
        "again": "same folder as Actor_01 (through a symbolic link): not walked again",
        "Actor_01/up": "same folder as the data root (through a symbolic link): not walked again",
    }


def test_an_unreadable_root_is_reported_as_unreadable_not_empty():
    """Run as root, permission bits do not stop listing a folder: the check then runs in a child
    process that has dropped to the `nobody` user."""
    base = Path(tempfile.mkdtemp(prefix="emo-unreadable-"))  # not under pytest's owner-only tmp folder
    try:
        base.chmod(0o755)
        locked = base / "data"
        write_wav(locked / "Actor_01" / "03-01-01-01-01-01-01.wav", tone(0.5, 16_000))
        locked.chmod(0)
        assert _in_child_as_nobody(lambda: discover(locked)) == (
            f"DataRootError: data root {str(locked)!r} is unreadable (Permission denied): "
            "check that this user may list it"
        )
    finally:
        (base / "data").chmod(0o755)
        shutil.rmtree(base)


def _in_child_as_nobody(fn) -> str:
    """`type: message` of what `fn()` raises, run in a forked child (as user `nobody` if this is root)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                fn()
                msg = "no error"
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                msg = f"{type(e).__name__}: {e}"
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out
