"""The sweep driver: Ray Tune + Optuna + ASHA over `emo.train.fit`, one W&B run per trial.

Importing this package sets Ray's environment defaults, which Ray reads when it is imported:
- `RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`: workers run this interpreter. Ray 2.60 otherwise notices
  `uv run` and starts every worker through `uv run` again (a second virtual environment per node,
  built from a copy of the working directory): the project is already this environment.
- `TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S=0`: with `num_to_keep=1` every epoch's
  checkpoint forces an experiment-state snapshot (the state `--resume` needs); that costs
  milliseconds here, and Ray's warning about it is noise.
"""

import os

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
