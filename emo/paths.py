"""Where emo-sweeps keeps generated files (`$EMO_CACHE_DIR`, else `~/.cache/emo-sweeps`), and how it
writes a file a crash must not leave half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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
