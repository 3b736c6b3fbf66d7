"""Check, and where it can be done safely repair, a Tune experiment's state files before `--resume`.

Ray Tune (2.60) writes `experiment_state-*.json` into the driver's staging folder with a plain
`open(..., "w")` and then copies the staging folder into the storage path, file by file and in
place. A driver killed during that copy leaves an empty or cut-off state file in storage, and
`Tuner.restore` then logs "Failed to restore the run state", silently starts the experiment over and
crashes at the first suggestion ("no search space has been defined"), with a traceback, on every
later `--resume` too. A driver killed right after a result (what the driver-kill test does) can land
in that window.

The staging folder (`RAY_TMP/session_*/artifacts/*/METHOD/driver_artifacts/`) lives on the machine
that ran the driver and holds the complete file that was being copied: when the killed driver ran
on this machine, the broken file is replaced by that copy. Otherwise `--resume` stops with a
one-line error rather than a restart over finished work.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from emo.paths import atomic_write

# What Tune reads when it restores (the newest file of each kind, by name) and how it parses it.
STATE_FILES = {
    "experiment_state-*.json": "json",
    "searcher-state-*.pkl": "pickle",
    "search_gen_state-*.json": "pickle",  # (a cloudpickle despite its name)
    "callback-states-*.pkl": "pickle",
}


class StateError(RuntimeError):
    """A state file `--resume` needs is unreadable and no intact copy was found."""


def _readable(path: Path, kind: str) -> bool:
    try:
        data = path.read_bytes()
        if kind == "json":
            json.loads(data)
        else:
            import ray.cloudpickle as cloudpickle

            cloudpickle.loads(data)
        return True
    except Exception:  # any failure to parse is what Tune would fail on
        return False


def ray_temp_roots() -> list[Path]:
    """Where Ray keeps its session folders on this machine (`RAY_TMPDIR`, else the system temp)."""
    roots = [Path(os.environ["RAY_TMPDIR"]) / "ray"] if os.environ.get("RAY_TMPDIR") else []
    return [*roots, Path(tempfile.gettempdir()) / "ray"]


def _staging_copies(name: str, experiment: str, roots: Iterable[Path]) -> list[Path]:
    found = []
    for root in roots:
        found += root.glob(f"session_*/artifacts/*/{experiment}/driver_artifacts/{name}")
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def repair(exp_dir: str | Path, experiment: str, roots: Iterable[Path] | None = None) -> list[str]:
    """Make sure the newest state file of each kind in a local experiment folder is readable,
    replacing a broken one with an intact staging copy. Returns what was repaired (one line each);
    raises StateError when a broken file has no intact copy."""
    exp_dir = Path(exp_dir)
    roots = list(roots) if roots is not None else ray_temp_roots()
    done = []
    for pattern, kind in STATE_FILES.items():
        files = sorted(exp_dir.glob(pattern), key=lambda p: p.name)
        if not files or _readable(files[-1], kind):
            continue
        broken = files[-1]
        good = next((c for c in _staging_copies(broken.name, experiment, roots) if _readable(c, kind)), None)
        if good is None:
            raise StateError(
                f"{broken} is unreadable ({broken.stat().st_size} bytes; the driver was probably killed while Ray "
                "Tune copied it) and no intact copy is left in Ray's staging folders on this machine, so this "
                "experiment cannot be restored; its finished trials' folders and result.json files are still there"
            )
        atomic_write(broken, lambda tmp, good=good: shutil.copyfile(good, tmp))
        done.append(f"{broken.name} was cut off when the driver died; restored from Ray's staging copy {good}")
    return done
