from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real RAVDESS recordings live beside the checkout (never copied into the repo).
RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "ravdess"
requires_ravdess = pytest.mark.skipif(
    not (RAVDESS / "sample").is_dir(),
    reason=f"real RAVDESS files not found at {RAVDESS} (the shared folder beside the checkout)",
)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own cache root: tests never read a user's ~/.cache/emo-sweeps."""
    if "EMO_CACHE_DIR" not in os.environ:
        os.environ["EMO_CACHE_DIR"] = str(tmp_path_factory.mktemp("emo-cache"))
    yield
