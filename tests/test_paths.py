"""`emo.paths.atomic_write`, which every file a crash could leave half-written goes through (the
feature cache, checkpoints, results.parquet, sweep.json, the report): a reader sees the old file or
the new one, never half of one, even when the writer is killed with SIGKILL mid-write."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emo.paths import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old")

    def half_then_fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"new but only half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]

    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # an ordinary file, not 0600


def test_the_new_file_is_synced_before_the_rename_and_its_folder_after(tmp_path, monkeypatch):
    """Without the syncs, a power cut or kernel crash soon after the rename can leave the real name on
    an empty or partly written file (ext4 writes data later than the rename). A folder the filesystem
    refuses to sync is no error; a file that cannot be synced is, and leaves the old file."""
    target = tmp_path / "state.pt"
    target.write_bytes(b"old")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", name))
        if Path(name).is_dir():
            raise OSError(errno.EINVAL, "Invalid argument")  # as some filesystems answer for a folder
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    (what, tmp), *rest = events
    assert what == "fsync" and Path(tmp).name.startswith(".state.pt.") and Path(tmp).parent == tmp_path
    assert rest == [("rename", str(target)), ("fsync", str(tmp_path))]

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"newer"))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_writer_killed_mid_write_leaves_the_old_file_whole_and_the_next_write_removes_its_temporary(tmp_path):
    target = tmp_path / "features.arrow"
    target.write_bytes(b"A" * 1000)
    # Two child processes each write 1 MB of a new file, then hang; one is killed there, as a
    # preempted node or an OOM kill would do, the other is still writing.
    child = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from emo.paths import atomic_write\n"
        "def write(tmp):\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'B' * 2**20); f.flush()\n"
        "        print(tmp, flush=True); time.sleep(120)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        killed, writing = (Path(p.stdout.readline().strip()) for p in procs)
        assert killed.name.startswith(".features.arrow.") and killed.stat().st_size == 2**20
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(timeout=30)
        assert target.read_bytes() == b"A" * 1000
        # What a kill leaves is the hidden temporary beside it, which no reader opens (RELIABILITY.md)...
        assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["features.arrow"]
        assert killed.exists()
        old = killed.stat().st_mtime - 120  # past the grace period that covers a temporary not yet locked
        for f in (killed, writing):
            os.utime(f, (old, old))
        # ...until the next write into the folder, which removes it and leaves the live writer's alone.
        atomic_write(tmp_path / "results.parquet", lambda tmp: Path(tmp).write_bytes(b"C"))
        assert not killed.exists()
        assert writing.exists() and writing.stat().st_size == 2**20
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


def test_a_killed_trials_scratch_folder_is_removed_by_the_next_one_and_a_live_one_is_kept(tmp_path):
    """A sweep trial keeps its checkpoints in `scratch_dir` (hundreds of MB at RAVDESS size). A trial
    whose worker is killed cannot remove it; the next trial on the machine does, and leaves alone the
    folders of trials still running."""
    from emo.paths import scratch_dir

    hold = (
        "import sys, time\n"
        "from emo.paths import scratch_dir\n"
        "with scratch_dir('t-', sys.argv[1]) as d:\n"
        "    (d / 'state.pt').write_bytes(b'x' * 1000)\n"
        "    print(d, flush=True)\n"
        "    time.sleep(600)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        killed, alive = (Path(p.stdout.readline().strip()) for p in procs)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=30)
        assert (killed / "state.pt").exists()  # the killed process could not clean up
        old = killed.stat().st_mtime - 120  # past the grace period that covers a folder not yet locked
        for d in (killed, alive):
            os.utime(d, (old, old))
        with scratch_dir("next-", tmp_path) as mine:
            assert mine.is_dir() and not killed.exists()
            assert (alive / "state.pt").exists()  # its owner still holds the lock
        assert not mine.exists()  # a trial that ends normally removes its own
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


@pytest.mark.parametrize("case", ["writable by others", "a link", "another owner"])
def test_a_scratch_root_another_user_could_have_prepared_is_refused(tmp_path, case):
    """The scratch root's name is predictable ($TMPDIR/emo-sweeps-scratch-UID): whoever made it first,
    or may write into it, could plant the checkpoints a trial resumes from. scratch_dir refuses it in
    one PermissionError line and creates nothing in it."""
    from emo.paths import scratch_dir

    root = tmp_path / "scratch"
    if case == "writable by others":
        root.mkdir(mode=0o777)
        root.chmod(0o777)  # mkdir's mode is cut by the umask
        expect = "is writable by other users (mode 777)"
    elif case == "a link":
        (tmp_path / "elsewhere").mkdir()
        root.symlink_to(tmp_path / "elsewhere")
        expect = "is not a folder (a link, or a file)"
    else:
        if os.getuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        root.mkdir(mode=0o700)
        os.chown(root, 4242, 4242)
        expect = "is owned by uid 4242, not by this user (uid 0)"
    with pytest.raises(PermissionError, match=f"^{re.escape(f'scratch folder {root} {expect}')}: another user"):
        with scratch_dir("t-", root):
            pass
    assert list(root.iterdir()) == []


def test_a_new_scratch_root_is_private(tmp_path):
    from emo.paths import scratch_dir

    with scratch_dir("t-", tmp_path / "new") as d:
        assert d.parent == tmp_path / "new" and (d.parent.stat().st_mode & 0o077) == 0
