"""A sweep's Optuna study, kept in a journal file beside sweep.json: STORAGE/NAME/optuna.journal.

Ray Tune's OptunaSearch keeps its study in memory unless it is given a storage; here every sweep
gives it this one, with one study per method (the study's name is the method). Each trial's
objective (`emo.metric_names.OBJECTIVE`, what ASHA ranks) is an intermediate value per epoch,
trials ASHA stopped are PRUNED (sweeps.search), so `python -m sweeps.dashboard NAME`
(optuna-dashboard) shows the history, the intermediate values, parallel coordinates and parameter
importance while the sweep runs.

Why a journal file and not SQLite: the only writer is the driver (OptunaSearch runs in it), on the
head node of a cluster. A journal is an append-only file of JSON lines, each append locked and synced,
readable while it is written (the dashboard replays it), safe on NFS, where SQLite's locking is not,
and a sweep's whole study is one small file that can be copied to s3:// as one object. With s3://
storage the driver writes a local copy (~/.cache/emo-sweeps/studies/...) and uploads it after every
finished trial and at the end of each method; --resume on a new head node downloads it first.

A journal belongs to one sweep: each study records the sweep's name and start time, and a journal
from another sweep is refused. Nothing here imports Ray or torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.fs as pafs

from sweeps import store
from sweeps.spec import SweepSpec

JOURNAL_FILE = "optuna.journal"
IDENTITY = "emo-sweeps"  # a study's user attribute: {"sweep": NAME, "created": ..., "space": {...}}
LOST = "lost"  # the user attribute of a trial asked before the driver stopped, and never run
# The journal each sweep's driver uses in this process, by sweep (name, start time): a searcher restored
# by Tune was pickled with the path it had then, which a moved sweep folder or a new head node no
# longer has.
_OPEN: dict[tuple, str] = {}


class StudyError(ValueError):
    """A journal that is not this sweep's, or that cannot be read."""


def remote(sweep: SweepSpec) -> bool:
    return "://" in sweep.storage


def journal_path(sweep: SweepSpec) -> Path:
    """Where the driver writes the journal: in the sweep folder, or for s3:// storage a local copy
    under ~/.cache/emo-sweeps/studies/ (one folder per storage URI and sweep)."""
    if not remote(sweep):
        return Path(store.sweep_dir(sweep.storage, sweep.name), JOURNAL_FILE)
    where = hashlib.sha256(sweep.storage.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "emo-sweeps" / "studies" / where / sweep.name / JOURNAL_FILE


def storage(path: str | Path):
    """The Optuna storage of a journal file (created empty when missing)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    except (ValueError, KeyError, TypeError) as e:  # a line that is not an Optuna journal record
        raise StudyError(f"{path} is not an Optuna journal ({type(e).__name__}: {e})") from None


def identity(sweep: SweepSpec) -> dict:
    return {"sweep": sweep.name, "created": sweep.created}


def open_for(sweep: SweepSpec) -> str:
    """The driver's journal for `sweep`, ready to use: fetched from s3:// when this machine has no
    newer copy, checked to be this sweep's, and registered for searchers Tune restores. StudyError
    when it belongs to another sweep."""
    path = journal_path(sweep)
    if remote(sweep):
        _download(sweep, path)
    if path.exists():
        check(storage(path), sweep, path)
    _OPEN[_key(identity(sweep))] = str(path)
    return str(path)


def current(ident: dict, pickled: str) -> str:
    """The journal a restored searcher of the sweep `ident` (`identity`) uses: the one its driver
    opened, else the one it was pickled with."""
    return _OPEN.get(_key(ident), pickled)


def _key(ident: dict) -> tuple:
    return (ident.get("sweep"), ident.get("created"))


def check(st, sweep: SweepSpec, path) -> None:
    """Every study in the journal was written by this sweep (name and start time)."""
    import optuna

    mine = identity(sweep)
    for s in optuna.get_all_study_summaries(st, include_best_trial=False):
        theirs = (s.user_attrs.get(IDENTITY) or {}) if s.user_attrs else {}
        if {k: theirs.get(k) for k in mine} != mine:
            raise StudyError(
                f"{path} holds study {s.study_name!r} of sweep {theirs.get('sweep')!r} (started "
                f"{theirs.get('created')}), not of sweep {sweep.name!r} (started {sweep.created}): the folder holds "
                "another sweep of that name, or the journal was copied from another sweep; choose another --name, "
                "or move the journal away to start this sweep's study afresh"
            )


def upload(sweep: SweepSpec) -> None:
    """s3:// storage: copy the local journal to STORAGE/NAME/optuna.journal (one PUT)."""
    path = journal_path(sweep)
    if remote(sweep) and path.exists():
        store.write_storage(sweep.storage, f"{sweep.name}/{JOURNAL_FILE}", path.read_bytes())


def _download(sweep: SweepSpec, path: Path) -> None:
    """The stored journal, unless this machine's copy is at least as long (a journal only grows)."""
    fs, root = store.storage_fs(store.sweep_dir(sweep.storage, sweep.name))
    info = fs.get_file_info(f"{root}/{JOURNAL_FILE}")
    if info.type != pafs.FileType.File or (path.exists() and path.stat().st_size >= (info.size or 0)):
        return
    with fs.open_input_stream(info.path) as f:
        data = f.read()
    from emo.paths import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def space_json(space: dict) -> dict:
    """A search space (Optuna distributions by name) as JSON, to compare two sweeps' spaces."""
    from optuna.distributions import distribution_to_json

    return {k: json.loads(distribution_to_json(d)) for k, d in sorted(space.items())}
