"""`emo.paths.atomic_write`, which every file a crash could leave half-written goes through (the
feature cache, checkpoints, results.parquet, sweep.json, the report): a reader sees the old file or
the new one, never half of one, even when the writer is killed with SIGKILL mid-write."""

from __future__ import annotations

import os
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "features.arrow"
    target.write_bytes(b"A" * 1000)
    # A child process writes 1 MB of the new file, then hangs; it is killed there, as a preempted
    # node or an OOM kill would do.
    child = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from emo.paths import atomic_write\n"
        "def write(tmp):\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'B' * 2**20); f.flush()\n"
        "        print('writing', flush=True); time.sleep(120)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".features.arrow.")]
        assert len(partial) == 1 and partial[0].stat().st_size == 2**20
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"A" * 1000
    # What a kill leaves is the hidden temporary beside it, which no reader opens (RELIABILITY.md).
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["features.arrow"]
