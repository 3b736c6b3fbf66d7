"""A sweep's files in its storage folder, local or a URI such as s3://: STORAGE/NAME/sweep.json (its
settings, what --resume continues) and STORAGE/NAME/results.parquet (one row per trial).

The one reader and writer of both. Writes are atomic: a local file is written beside and renamed, an
s3:// object is one PUT. Nothing here imports Ray or torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from emo.paths import atomic_write
from sweeps.spec import SweepSpec

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.parquet"


class NotASweep(FileNotFoundError):
    """The folder holds no sweep.json (or no results.parquet, for `read_results`)."""


def storage_fs(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a storage path and the path in it (a local folder made absolute)."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def storage_root(storage_path: str) -> str:
    """--storage-path as the sweep records it: a URI as given, a local folder made absolute."""
    return storage_path.rstrip("/") if "://" in storage_path else str(Path(storage_path).resolve())


def sweep_dir(storage_path: str, name: str) -> str:
    return f"{storage_path.rstrip('/')}/{name}"


def experiment_name(method: str, stage: int = 0) -> str:
    """A method's Tune experiment, STORAGE/NAME/<this>: `gated` for the sweep's first run, `gated.grow1`
    for the trials the first growth added (--resume --num-samples N), and so on."""
    return method if stage == 0 else f"{method}.grow{stage}"


def trial_folder(method: str, trial_id: str) -> str:
    """`gated_3f2a1b0c`: a trial's folder under STORAGE/NAME/METHOD/ (Ray's default spells out the config)."""
    return f"{method}_{trial_id}"


def write_storage(storage_path: str, relpath: str, data: bytes) -> str:
    """Write `data` to STORAGE/relpath, local (atomically: write beside, rename) or a URI such as
    s3:// (one object PUT, atomic already). Returns where it went."""
    if "://" in storage_path:
        fs, root = storage_fs(storage_path)
        fs.create_dir(f"{root}/{relpath}".rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(f"{root}/{relpath}") as f:
            f.write(data)
        return f"{storage_path.rstrip('/')}/{relpath}"
    return str(atomic_write(Path(storage_path, relpath), lambda tmp: Path(tmp).write_bytes(data)))


def write_sweep(storage_path: str, spec: SweepSpec) -> str:
    """STORAGE/NAME/sweep.json: the sweep's settings, what --resume continues and the report reads."""
    text = json.dumps(spec.to_json(), indent=1, default=str)
    return write_storage(storage_path, f"{spec.name}/{SWEEP_FILE}", text.encode())


def read_sweep(run_dir: str) -> SweepSpec:
    """RUN_DIR/sweep.json. NotASweep when it is missing; ValueError, saying why, when it is not a sweep
    this code wrote (unreadable, not JSON, or not a sweep's settings)."""
    fs, path = storage_fs(run_dir)
    info = fs.get_file_info(f"{path}/{SWEEP_FILE}")
    if info.type != pafs.FileType.File:
        raise NotASweep(f"{run_dir} holds no {SWEEP_FILE}")
    try:
        with fs.open_input_stream(info.path) as f:
            return SweepSpec.from_json(json.loads(f.read()))
    except (OSError, ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"{run_dir}/{SWEEP_FILE} is unreadable ({type(e).__name__}: {e}); it is not a sweep this code wrote"
        ) from e


def newest_sweep(storage_path: str) -> str | None:
    """The name of the sweep in `storage_path` whose sweep.json changed last, None when there is none."""
    fs, root = storage_fs(storage_path)
    found = []
    for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        f = fs.get_file_info(f"{i.path}/{SWEEP_FILE}")
        if f.type == pafs.FileType.File:
            found.append((f.mtime, i.base_name))
    return max(found)[1] if found else None


def table_of(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table with the union of their keys (missing values null). `from_pylist` alone
    takes the first row's keys: the searched keys of every later method were silently dropped."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows])


def write_results(rows: list[dict], storage_path: str, name: str, metadata: dict) -> str:
    """STORAGE/NAME/results.parquet, one row per trial, with `metadata` (the sweep's settings and the
    data summary) in the schema under `emo.sweep`."""
    table = table_of(rows).replace_schema_metadata({b"emo.sweep": json.dumps(metadata, default=str).encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return write_storage(storage_path, f"{name}/{RESULTS_FILE}", buf.getvalue().to_pybytes())


def read_results(run_dir: str) -> list[dict]:
    """RUN_DIR/results.parquet as rows. NotASweep when it is missing (the sweep has not finished);
    ValueError, saying why, when it cannot be read."""
    fs, path = storage_fs(run_dir)
    res = f"{path}/{RESULTS_FILE}"
    if fs.get_file_info(res).type != pafs.FileType.File:
        raise NotASweep(f"{run_dir} has no {RESULTS_FILE}")
    try:
        with fs.open_input_file(res) as f:
            return pq.read_table(f).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        why = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise ValueError(f"{run_dir}/{RESULTS_FILE} is unreadable ({why})") from e
