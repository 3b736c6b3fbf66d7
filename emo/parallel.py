"""Process pools for the CPU-bound work (feature extraction, demo-set generation).

Workers come from a *forkserver*, not a plain fork: forking a process whose OpenCV, OpenMP or BLAS
thread pools are already running can leave a lock held in the child, which then hangs (seen here: a
forked worker stuck in `cv2.setNumThreads` after the parent had resized images). The fork server is a
fresh process that imports `PRELOAD` once and forks clean workers from itself, so they start without
importing torch/OpenCV/PyAV again. As with spawn, each worker imports the caller's main module: a
script that calls `prepare` needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

# What the workers run. One list for every pool: a process starts its fork server once, with the
# preload list of the first pool it makes.
PRELOAD = ["emo.data.features", "emo.data.synth"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all of the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_pool(workers: int, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer)


def one_thread() -> None:
    """Worker initializer: one process per core already, so no intra-op threads in the workers."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
