"""Weights & Biases, imported only when asked for. Offline automatically when no API key is set up;
the key itself is never read into a config, a log or a file by this code."""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def has_wandb_key() -> bool:
    """True if W&B would find an API key: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """The user's WANDB_MODE if set, else online with a key and offline without one."""
    return os.environ.get("WANDB_MODE") or ("online" if has_wandb_key() else "offline")


def start_run(
    config: dict,
    *,
    project: str,
    name: str | None = None,
    group: str | None = None,
    tags: tuple[str, ...] = (),
    job_type: str = "train",
    run_id: str | None = None,
    directory: str | Path | None = None,
    reinit: str = "finish_previous",
    settings: dict | None = None,
):
    """wandb.init with our conventions. `run_id` resumes that run (e.g. after a restart from a
    checkpoint) instead of starting a second one."""
    import wandb

    mode = wandb_mode()
    # wandb reads WANDB_MODE from the environment in places the `mode=` argument does not reach
    # (measured with Ray's callback); setting it keeps every part of wandb in the same mode.
    os.environ.setdefault("WANDB_MODE", mode)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        job_type=job_type,
        config=config,
        mode=mode,
        id=run_id,
        resume="allow" if run_id else None,
        dir=str(directory) if directory is not None else None,
        reinit=reinit,
        settings=settings,
    )
