"""Where emo-sweeps keeps generated files (`$EMO_CACHE_DIR`, else `~/.cache/emo-sweeps`), how it
writes a file a crash must not leave half-written, and scratch folders a killed process cannot leak."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# One root per user: a shared machine's /tmp may hold another user's root, which this one cannot write.
SCRATCH = f"emo-sweeps-scratch-{os.getuid()}"
# A folder or temporary this young may be one whose owner has created it and not locked it yet.
_GRACE_S = 60.0
_TMP_SUFFIX = ".emo-tmp"  # atomic_write's temporaries: .NAME.RANDOM.emo-tmp


def cache_root() -> Path:
    root = os.environ.get("EMO_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "emo-sweeps"


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one rename: a
    reader sees the old file or the new one, never half of one. The temporary file goes on failure.

    The temporary is synced to disk before the rename and the folder after it, so a power cut or a
    kernel crash right after `atomic_write` returns also leaves the new file whole, not an empty or
    partly written one under the real name.

    A writer killed mid-write (SIGKILL, a lost node) cannot remove its temporary, which at RAVDESS size
    can be a 1 GB feature cache. The writer holds an flock on it until the rename; the next
    `atomic_write` into the same folder removes the temporaries nobody holds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: the temporary is then only removed by age
            pass
        write(tmp)
        _fsync(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only; these are ordinary files
        os.replace(tmp, path)
        try:  # the rename itself is durable once the folder is synced
            _fsync(path.parent)
        except OSError:  # best effort: some filesystems refuse to sync a folder
            pass
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


def _fsync(path: str | Path) -> None:
    """Sync `path`'s data (a file, by its name: `write` may have opened it anew) or entries (a folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # cannot sync here: not an error
            raise
    finally:
        os.close(fd)


def remove_abandoned_temporaries(folder: str | Path) -> list[Path]:
    """Remove `atomic_write`'s temporaries in `folder` whose writer is gone; returns them."""
    removed = []
    for path in Path(folder).glob(f".*{_TMP_SUFFIX}"):
        if _owner_gone(path, os.O_RDWR):  # read-write: NFS grants an exclusive lock only to a writer
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _owner_gone(path: Path, mode: int) -> bool:
    """Whether no process holds `path`'s flock, and it is older than the grace period that covers one
    created and not locked yet. Unsure (no permission, no lock support) counts as not gone."""
    try:
        if time.time() - path.stat().st_mtime < _GRACE_S:
            return False
        fd = os.open(path, mode)
    except OSError:  # gone meanwhile (its owner finished), or not ours
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # BlockingIOError: alive
        return False
    finally:
        os.close(fd)


@contextmanager
def scratch_dir(prefix: str, root: str | Path | None = None) -> Iterator[Path]:
    """A private folder under `root` (default $TMPDIR/emo-sweeps-scratch-UID) for one process's working
    files, removed when the block ends. Its owner holds an flock on it while it lives; a process that
    is killed (SIGKILL, a lost node, Ray killing a worker) cannot remove its folder, but the kernel
    drops its lock, and the next `scratch_dir` on this machine removes the folder."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / SCRATCH
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(root)
    remove_abandoned(root)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def check_private(folder: Path) -> None:
    """Refuse a folder another user could have prepared: the scratch root's name is predictable, and
    whoever owns it, or may write into it, could plant the checkpoints a trial resumes from (or swap a
    link for it). It must be a real folder (not a link), owned by this user, writable by no one else."""
    st = os.lstat(folder)
    problem = None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "is not a folder (a link, or a file)"
    elif st.st_uid != os.getuid():
        problem = f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    elif st.st_mode & 0o022:
        problem = f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    if problem:
        raise PermissionError(
            f"scratch folder {folder} {problem}: another user could plant files a trial would read; "
            "remove it, or point TMPDIR at a private folder"
        )


def remove_abandoned(root: str | Path) -> list[Path]:
    """Remove the folders under `root` whose owner is gone (no process holds their lock); returns them."""
    removed = []
    for path in Path(root).iterdir():
        if path.is_dir() and _owner_gone(path, os.O_RDONLY):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
