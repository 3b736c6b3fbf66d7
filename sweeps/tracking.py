"""One W&B run per trial, written by the driver from the results Tune already collects.

Why the driver, and not W&B inside the trainable (`setup_wandb`) or Ray's `WandbLoggerCallback`
(measured on this machine with Ray 2.60 and wandb 0.31; see BENCHMARKS.md):

- Inside the trainable, a trial's last epoch is lost. Tune stops a trial at the report where ASHA
  prunes it or where it reaches max_t, by raising SystemExit in the trial's thread; it then syncs
  the trial's artifacts and tears the worker down without waiting for that thread (Ray's
  `FunctionTrainable.cleanup` calls `session.finish(timeout=0)`). W&B writes an offline run's file
  when the run finishes, so storage kept a copy from before it: 4 of 6 offline runs of a 6-trial
  sweep had no history at all, and the last trial of a sweep never finished its run.
- Ray's `WandbLoggerCallback` starts one W&B actor per trial (~137 MB each), blocked the driver for
  up to 5 s per result, and lost a run folder on a reused worker unless given a fixed `dir=`.

Here the driver queues each result (microseconds) and one background thread owns every run: a
worker or node that dies mid-trial loses nothing already reported, a run is finished exactly when
Tune says its trial is complete, and after a driver crash `--resume` reopens the same run ids.
Runs live in their trial's folder (`TRIAL/wandb/...`); with remote storage (s3://) they are written
to a local staging folder and copied next to the trial when finished.

A trial continued after a driver crash (`--resume`) or restarted after an error gets a second W&B
run folder under the same run id. Online, `resume="allow"` continues the server-side run. Offline,
`wandb sync` does not merge two folders of one id: the later upload replaces the earlier run, and
the epochs before the crash would be lost (wandb/wandb#3841, #5865). So an offline run that starts
for a trial with earlier results replays them, from the trial's `result.json` in storage, up to the
epoch of the checkpoint the trial continues from (it trains the later ones again and they are logged
as they come), and the earlier folders of that id move to `TRIAL/wandb/superseded/`, out of the
README's `wandb sync runs/NAME/*/*/wandb/offline-run-*`: one folder per trial, every epoch once.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import threading
from pathlib import Path

from ray.tune import Callback

from search_spaces.common import plain
from sweeps.store import trial_folder
from sweeps.trainable import checkpoint_epoch

log = logging.getLogger(__name__)

# Tune's own bookkeeping keys are not metrics of the model.
_METRIC_KEYS = ("lr", "epoch", "stopped_early")
SUPERSEDED = "superseded"  # TRIAL/wandb/superseded/: earlier offline folders of a continued run


def wandb_run_id(sweep: str, trial_id: str) -> str:
    """W&B run ids allow letters, digits, '-' and '_' (at most 64 characters)."""
    import re

    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sweep}-{trial_id}")[-64:]


def metrics_of(result: dict) -> dict:
    """fit's metrics from a Tune result (train/loss, val/f1, best/val_f1, gate/..., lr, epoch)."""
    out = {}
    for k, v in result.items():
        if not ("/" in k or k in _METRIC_KEYS):
            continue
        v = plain(v)
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out[k] = v
    return out


class WandbTrials(Callback):
    """Tune callback: `wandb.init` when a trial starts, `run.log` per result (step = epoch),
    `run.finish` when it completes or fails; all W&B calls on one background thread."""

    def __init__(self, sweep: str, method: str, project: str, staging: str | None = None):
        self.sweep, self.method, self.project = sweep, method, project
        self.staging = staging  # local folder for runs of remote-storage trials
        self._start_thread()

    # Tuner.restore brings a pickled copy of the callbacks: no thread or queue in it.
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_q", "_thread", "_runs", "_done")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_thread()

    def _start_thread(self):
        self._q: queue.Queue = queue.Queue()
        self._runs: dict = {}
        self._done: dict[str, str] = {}  # trial id -> run folder in storage, once finished
        self._thread = threading.Thread(target=self._work, name="wandb-trials", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ Tune's hooks (driver thread)

    def on_trial_start(self, iteration, trials, trial, **info):
        # The epoch of the checkpoint a restored or retried trial continues from (0: from scratch),
        # read here, on the driver thread that owns the trial.
        self._q.put(("start", trial.trial_id, (trial, checkpoint_epoch(trial))))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._q.put(("log", trial.trial_id, metrics_of(result)))
        if result.get("diverged"):  # the trial's last result: its loss went NaN/inf (sweeps.trainable)
            self._q.put(("summary", trial.trial_id, {"diverged": str(result["diverged"])}))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._q.put(("finish", trial.trial_id, 0))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._q.put(("finish", trial.trial_id, 1))

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self, timeout: float = 300.0) -> dict[str, str]:
        """Finish every open run and wait for the thread; returns trial id -> run folder."""
        if self._thread.is_alive():
            self._q.put(("stop", None, None))
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("W&B: runs still being written after %.0f s; they may be incomplete", timeout)
        return dict(self._done)

    # ------------------------------------------------------------------ the W&B thread

    def _work(self):
        while True:
            kind, tid, arg = self._q.get()
            try:
                if kind == "stop":
                    for t in list(self._runs):
                        self._finish(t, 0)
                    if self._done:
                        # Stop the W&B service this process started (and its WANDB_SERVICE variable,
                        # which child processes would otherwise inherit and connect to).
                        import wandb

                        wandb.teardown()
                    return
                if kind == "start":
                    self._start(tid, *arg)
                elif kind == "log" and tid in self._runs:
                    run = self._runs[tid][0]
                    step = arg.get("epoch")
                    # A trial retried from an older checkpoint can report an epoch W&B already has;
                    # W&B would drop it with a warning, so skip it here.
                    if step is None or step > self._runs[tid][2]:
                        run.log(arg, step=step)
                        self._runs[tid][2] = step if step is not None else self._runs[tid][2]
                elif kind == "summary" and tid in self._runs:
                    self._runs[tid][0].summary.update(arg)
                elif kind == "finish" and tid in self._runs:
                    self._finish(tid, arg)
            except Exception as e:  # one bad run must not stop the others being written
                log.warning("W&B: %s for trial %s failed: %s", kind, tid, e)

    def _start(self, tid: str, trial, resumed_epoch: int = 0):
        if tid in self._runs:  # a retried trial: its run is still open
            return
        import pyarrow.fs as pafs

        from emo.tracking import start_run, wandb_mode

        storage = trial.storage
        local = isinstance(storage.storage_filesystem, pafs.LocalFileSystem)
        directory = Path(trial.path) if local else Path(self.staging or ".") / self.sweep / self.method / trial.trial_id
        run_id = wandb_run_id(self.sweep, tid)
        offline = wandb_mode() == "offline"
        # Offline, an earlier folder of this run id (a driver that died, or a run that ended with an
        # error) must leave the sync glob before the new folder is made: see the module docstring.
        fs = storage.storage_filesystem
        moved = supersede_offline_runs(fs, f"{storage.trial_fs_path}/wandb", run_id) if offline else []
        config = {k: plain(v) for k, v in trial.config.items()}
        run = start_run(
            config,
            project=self.project,
            name=trial_folder(self.method, tid),  # the trial's own name
            group=self.sweep,
            tags=(self.method, "sweep"),
            run_id=run_id,
            directory=directory,
            # Several runs open at once in this process; none captures the driver's console or
            # samples the driver machine's CPU as if it were the trial's.
            reinit="create_new",
            settings={"console": "off", "x_disable_stats": True, "silent": True},
        )
        run.config.update({"sweep": self.sweep, "trial_id": tid}, allow_val_change=True)
        self._runs[tid] = [run, (None if local else (storage, directory)), -1]
        replayed = []
        if offline and resumed_epoch:
            # Online, resume="allow" continued the server-side run, which has these epochs already.
            for result in earlier_results(fs, f"{storage.trial_fs_path}/result.json"):
                step = result.get("epoch")
                if isinstance(step, int) and self._runs[tid][2] < step <= resumed_epoch:
                    run.log(metrics_of(result), step=step)
                    self._runs[tid][2] = step
                    replayed.append(step)
        if moved or replayed:
            what = [f"epochs 1-{replayed[-1]} replayed from result.json"] if replayed else []
            if moved:
                what.append(f"{len(moved)} earlier offline folder(s) moved to wandb/{SUPERSEDED}/")
            print(f"[{self.method}] {tid} W&B run {run_id} continued offline: {'; '.join(what)}", flush=True)

    def _finish(self, tid: str, exit_code: int):
        run, remote, _ = self._runs.pop(tid)
        run.finish(exit_code=exit_code)
        folder = Path(run.dir).parent  # .../wandb/offline-run-... (run.dir is its files/ folder)
        if remote is not None:
            import pyarrow.fs as pafs

            storage, _ = remote
            dest = f"{storage.trial_fs_path}/wandb/{folder.name}"
            pafs.copy_files(
                str(folder),
                dest,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=storage.storage_filesystem,
            )
            self._done[tid] = dest
        else:
            self._done[tid] = str(folder)


def earlier_results(fs, path: str) -> list[dict]:
    """A trial's results so far (its `result.json`, one JSON object per line, on the storage
    filesystem); [] when there is none. A line cut off by a crash is skipped."""
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type != pafs.FileType.File:
        return []
    with fs.open_input_stream(path) as f:
        text = f.read().decode(errors="replace")
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def supersede_offline_runs(fs, wandb_dir: str, run_id: str) -> list[str]:
    """Move every offline run folder of `run_id` in `wandb_dir` (a trial's `wandb/` folder, on the
    storage filesystem) into `wandb_dir/superseded/`. Returns the folders moved."""
    import pyarrow.fs as pafs

    pattern = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}")
    found = [
        i.path
        for i in fs.get_file_info(pafs.FileSelector(wandb_dir, allow_not_found=True))
        if i.type == pafs.FileType.Directory and pattern.fullmatch(i.base_name)
    ]
    if found:
        fs.create_dir(f"{wandb_dir}/{SUPERSEDED}", recursive=True)
    for src in found:
        dest = f"{wandb_dir}/{SUPERSEDED}/{src.rsplit('/', 1)[-1]}"
        try:
            fs.move(src, dest)
        except (OSError, NotImplementedError):  # object stores cannot rename a "directory"
            pafs.copy_files(src, dest, source_filesystem=fs, destination_filesystem=fs)
            fs.delete_dir(src)
    return found


def supersede_lost_trials(
    storage_path: str, sweep: str, method: str, kept: set[str], experiment: str | None = None
) -> list[str]:
    """After a resumed experiment: the trial folders under STORAGE/SWEEP/EXPERIMENT/ (default: METHOD)
    of trials the restored Tune run does not have (the driver that died had started them after Tune
    last saved its experiment state; the searcher proposed others in their place). Their offline W&B
    runs leave the sync glob for `TRIAL/wandb/superseded/`, so that every synced run is a trial of
    results.parquet; the folders stay.
    Returns the trial ids moved."""
    import pyarrow.fs as pafs

    from sweeps.store import storage_fs, sweep_dir

    fs, root = storage_fs(sweep_dir(storage_path, sweep))
    lost = []
    prefix = trial_folder(method, "")
    for info in fs.get_file_info(pafs.FileSelector(f"{root}/{experiment or method}", allow_not_found=True)):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith(prefix):
            continue
        tid = info.base_name[len(prefix) :]
        if tid not in kept and supersede_offline_runs(fs, f"{info.path}/wandb", wandb_run_id(sweep, tid)):
            lost.append(tid)
    return lost
