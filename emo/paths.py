"""Where emo-sweeps keeps generated files (`$EMO_CACHE_DIR`, else `~/.cache/emo-sweeps`), how it
writes a file a crash must not leave half-written, and scratch folders a killed process cannot leak."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# One root per user: a shared machine's /tmp may hold another user's root, which this one cannot write.
SCRATCH = f"emo-sweeps-scratch-{os.getuid()}"
# A folder this young may be one whose owner has created it and not locked it yet.
_SCRATCH_GRACE_S = 60.0


def cache_root() -> Path:
    root = os.environ.get("EMO_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "emo-sweeps"


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one rename: a
    reader sees the old file or the new one, never half of one. The temporary file goes on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def scratch_dir(prefix: str, root: str | Path | None = None) -> Iterator[Path]:
    """A private folder under `root` (default $TMPDIR/emo-sweeps-scratch-UID) for one process's working
    files, removed when the block ends. Its owner holds an flock on it while it lives; a process that
    is killed (SIGKILL, a lost node, Ray killing a worker) cannot remove its folder, but the kernel
    drops its lock, and the next `scratch_dir` on this machine removes the folder."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / SCRATCH
    root.mkdir(parents=True, exist_ok=True)
    remove_abandoned(root)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_abandoned(root: str | Path) -> list[Path]:
    """Remove the folders under `root` whose owner is gone (no process holds their lock); returns them."""
    removed = []
    for path in Path(root).iterdir():
        try:
            if not path.is_dir() or time.time() - path.stat().st_mtime < _SCRATCH_GRACE_S:
                continue
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # gone meanwhile (its owner finished)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # alive
            os.close(fd)
            continue
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)
        removed.append(path)
    return removed
