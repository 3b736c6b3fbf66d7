"""The confirmation runs: each chosen configuration retrained over actor folds x seeds as Ray tasks,
finished runs kept in OUT/runs (a report stopped and started again reruns nothing that finished)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from emo.config import OPERATIONAL_FIELDS, TrainConfig
from emo.metric_names import EPOCH_VAL_F1, OBJECTIVE_COLUMN
from emo.paths import atomic_write
from sweeps import cluster
from sweeps.report import stats as A


def same_run(saved: dict, config: dict) -> bool:
    """Whether a finished run's saved config computes what `config` would: equal but for
    OPERATIONAL_FIELDS (a run saved before such a field existed lacks it, and stays valid)."""

    def result_fields(c: dict) -> str:
        return json.dumps({k: v for k, v in c.items() if k not in OPERATIONAL_FIELDS}, sort_keys=True, default=str)

    return result_fields(saved) == result_fields(config)


def _job_file(out: Path, job: dict) -> Path:
    variant = job["variant"].replace("=", "")
    return out / "runs" / f"{job['method']}-{variant}-f{job['fold']}-s{job['seed']}.json"


def _confirm(config: dict, data) -> dict:
    """One confirmation run on a Ray worker: fit's results, minus nothing the report needs."""
    from emo.train import fit

    cluster.torch_threads_from_ray()
    return fit(TrainConfig(**config), data)


def confirm_row(job: dict, res: dict | None, error: str | None, labels_of, selection: dict) -> dict:
    cfg = job["config"]
    row = {
        "method": job["method"],
        "variant": job["variant"],
        "fold": job["fold"],
        "seed": job["seed"],
        "num_classes": cfg["num_classes"],
        "status": "ok" if res is not None else "error",
        "error": error,
        "selection_val_f1": selection.get(job["method"], {}).get(OBJECTIVE_COLUMN),
        "config": cfg,
    }
    if res is None:
        return row
    labels = labels_of(cfg["num_classes"])
    split = res["split"]
    row.update(
        test_f1=res["test/f1"],
        test_acc=res["test/acc"],
        val_f1=res[EPOCH_VAL_F1],
        best_epoch=res["best_epoch"],
        epochs_run=res["epochs_run"],
        train_actors=list(split["train_actors"]),
        val_actors=list(split["val_actors"]),
        test_actors=list(split["test_actors"]),
        recordings=res["test/recordings"],
        pred=res["test/pred"],
        labels=[int(labels[i]) for i in res["test/recordings"]],
        per_class_f1=res["test/per_class_f1"],
        confusion=res["test/confusion"],
        history=res["history"],
        gate_test_mean=res.get("gate", {}).get("test_mean"),
        gate_per_class=res.get("gate", {}).get("test_per_class", {}),
        seconds=res["seconds"],
    )
    return row


def _why(e) -> str:
    """One line for a failed run: the run's own exception (e.g. a diverging loss), or Ray's error
    when the worker or its node died more often than max_retries."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"


def run_confirmations(jobs: list[dict], data, out: Path, resources: dict) -> list[tuple[dict, dict | None, str | None]]:
    """Run every job not already finished in OUT/runs, on Ray, `resources` each; one progress line per
    finished run. `data`: TrainingArrays, or the ObjectRef of ones already in the object store, or
    {fold: either} when each fold reads its own (frozen encoders' embeddings). A run
    that raises (e.g. a diverging loss) is recorded with its error; a worker that dies is retried by
    Ray (max_retries)."""
    import ray

    done: list[tuple[dict, dict | None, str | None]] = []
    todo = []
    for job in jobs:
        f = _job_file(out, job)
        if f.exists():
            saved = json.loads(f.read_text())
            if same_run(saved.get("job", {}).get("config") or {}, job["config"]):
                done.append((job, saved["result"], None))
                continue
        todo.append(job)
    if done:
        print(f"[report] {len(done)} of {len(jobs)} confirmation runs already finished in {out / 'runs'}", flush=True)
    if not todo:
        return done
    remote = ray.remote(_confirm).options(
        num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=2, name="confirm"
    )

    # One copy in the object store, shared by every run (Ray passes a task the object a top-level
    # ObjectRef argument names, mapped read-only from the node's shared memory); one per fold when
    # each fold reads its own frozen encoders' embeddings.
    def put(d):
        return d if isinstance(d, ray.ObjectRef) else ray.put(d)

    refs = {k: put(d) for k, d in data.items()} if isinstance(data, dict) else None
    data_ref = None if refs else put(data)
    t0 = time.perf_counter()
    pending = {remote.remote(job["config"], refs[job["fold"]] if refs else data_ref): job for job in todo}
    print(
        f"[report] {len(todo)} confirmation runs ({resources['cpu']:g} CPU, {resources['gpu']:g} GPU each)", flush=True
    )
    n = len(done)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        n += 1
        what = f"{job['method']} {job['variant']} fold {job['fold']} seed {job['seed']}"
        try:
            res = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            msg = _why(e)
            print(f"[report {time.perf_counter() - t0:5.0f}s] {n}/{len(jobs)} {what}: FAILED {msg}", flush=True)
            done.append((job, None, msg))
            continue
        payload = json.dumps(A.clean({"job": job, "result": res}), default=str)
        f = _job_file(out, job)
        atomic_write(f, lambda tmp, text=payload: Path(tmp).write_text(text))
        print(
            f"[report {time.perf_counter() - t0:5.0f}s] {n}/{len(jobs)} {what}: test Macro-F1 {res['test/f1']:.3f} "
            f"({res['epochs_run']} epochs, {res['seconds']:.0f} s)",
            flush=True,
        )
        done.append((job, res, None))
    return done
