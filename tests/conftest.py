from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every Ray process the tests start or join speaks token authentication, Ray 2.60's default for the
# clusters users start (`ray start --head`, `ray up`). Ray reads this when it is imported, and a
# driver and a cluster that disagree fail obscurely (trials die before they run: "Missing
# authorization header"), so it is set here, before any test module imports ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")

# Real RAVDESS recordings live beside the checkout (never copied into the repo).
RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "ravdess"


def _requires(part: str):
    return pytest.mark.skipif(
        not (RAVDESS / part).is_dir(),
        reason=f"real RAVDESS files not found at {RAVDESS / part} (the shared folder beside the checkout)",
    )


requires_ravdess = _requires("sample")  # the original mp4s and wavs
requires_reencoded = _requires("reencoded")  # the two re-encoded oddities
requires_speech16k = _requires("speech16k")  # the audio-only speech set of actors 01-18 at 16 kHz


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own cache root: tests never read a user's ~/.cache/emo-sweeps."""
    if "EMO_CACHE_DIR" not in os.environ:
        os.environ["EMO_CACHE_DIR"] = str(tmp_path_factory.mktemp("emo-cache"))
    yield


# A small demo set shared by the training (and later sweep) tests: 4 actors -> actor split 2/1/1,
# with features smaller than the `demo` preset so a CPU epoch takes a second or two.
TINY_FEATURES = dict(audio_seconds=1.2, n_mels=32, num_frames=4, frame_size=32, face_crop=False)


def _tiny_set(tmp_path_factory, actors: int):
    from emo.config import feature_preset
    from emo.data.cache import prepare
    from emo.data.synth import generate

    root = generate(tmp_path_factory.mktemp("demo") / f"tiny{actors}", actors=actors, workers=2, progress=False)
    return prepare(
        root,
        feature_preset("demo").replace(**TINY_FEATURES),
        cache_dir=tmp_path_factory.mktemp("features"),
        workers=2,
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    return _tiny_set(tmp_path_factory, actors=4)


@pytest.fixture(scope="session")
def learn_demo(tmp_path_factory):
    """6 actors of tiny features: enough clips (252 to train on, stratified) for every method to learn in
    seconds (tests/test_learning.py)."""
    return _tiny_set(tmp_path_factory, actors=6)


@pytest.fixture
def no_internet(monkeypatch, tmp_path):
    """Every outgoing connection refused (wherever the test runs, internet or not), no proxy, and an
    empty TORCH_HOME so that a download is tried; yields that TORCH_HOME."""
    import socket

    def refused(address, *args, **kwargs):
        raise ConnectionRefusedError(f"[Errno 111] Connection refused (test: no internet to {address[0]})")

    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    return tmp_path / "torch"
