"""Search what a run wrote for a secret, byte for byte (binary files too)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# A recognisable stand-in for a W&B API key (40 characters, like a real one), for the tests that look
# for it in everything a run wrote.
FAKE_KEY = "emofakekey" + "0123456789abcdef" * 2 + "x" * 4


def _installed_packages(path: Path) -> bool:
    """Files of a virtual environment's site-packages: under `uv run`, Ray builds one for the workers
    inside its session folder (runtime_resources/working_dir_files/*/.venv, ~6 GB of torch and friends
    hard-linked from uv's cache). Those are package files, not written by the run; reading them would
    take minutes. The environment's own files (pyvenv.cfg, bin/) are still searched."""
    parts = path.parts
    return ".venv" in parts and "site-packages" in parts


def search(roots: Iterable[Path], needles: Iterable[bytes]) -> tuple[list[Path], list[Path]]:
    """(files holding any needle, every file searched) under `roots`; links and sockets are skipped."""
    needles = list(needles)
    hits, checked = [], []
    for root in roots:
        for f in Path(root).rglob("*"):
            if f.is_symlink() or not f.is_file() or f.name.endswith(".sock") or _installed_packages(f):
                continue
            data = f.read_bytes()
            if any(n in data for n in needles):
                hits.append(f)
            checked.append(f)
    return hits, checked
