"""Where emo-sweeps keeps generated files: `$EMO_CACHE_DIR`, else `~/.cache/emo-sweeps`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("EMO_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "emo-sweeps"
