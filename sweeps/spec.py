"""A sweep's settings, typed: `SweepSpec`, built once from the command line, saved as sweep.json.

The demo-set and real-data defaults (budget, the demo recipe, the report's folds and seeds) are
decided here and nowhere else. The command line's `--max-epochs` is a trial's `epochs`: `trial_fixed`
is the one place that says so. Nothing here imports Ray or torch.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo.config import DEMO_TRAIN, TrainConfig
from emo.metric_names import OBJECTIVES

# The demo set: its recipe (emo.config.DEMO_TRAIN: the light CNNs, sized for CPUs) fixed for every
# trial, and a short budget, so `python -m sweeps.run gated` ends in a few minutes on 2 cores.
DEMO_FIXED = {k: v for k, v in DEMO_TRAIN.items() if k != "epochs"}
DEMO_BUDGET = {"num_samples": 8, "max_epochs": DEMO_TRAIN["epochs"]}
# Real data: TrainConfig's epochs. Audio-only ResNet18 on the real speech16k set, 4 actor folds x 2
# seeds: test Macro-F1 0.441 at 20 epochs, 0.531 at 60, best epochs 32-55 (BENCHMARKS.md, 10:34 and
# 14:03 entries); ASHA stops a sweep's weak trials long before.
DATA_BUDGET = {"num_samples": 16, "max_epochs": TrainConfig().epochs}
# ASHA's first rung is epoch 2: epoch 1 is the learning-rate warmup, when most trials still predict one
# class and their scores rank them poorly (BENCHMARKS.md, "Sweep efficiency", 2026-12-07). A budget of
# fewer epochs starts it at its last.
DEFAULTS = {"grace_period": 2, "reduction_factor": 2, "scheduler": "asha", "search": "tpe", "max_failures": 3}
# The report's confirmation folds over actors and seeds per fold.
DEMO_FOLDS_SEEDS = (4, 2)  # demo set: 7 actors in 4 folds, 2 seeds: 72 runs, 44 min on 2 cores (examples/demo-report)
DATA_FOLDS_SEEDS = (4, 3)  # real RAVDESS: 22 actors in 4 folds of 5-6 test actors (the usual 4-fold protocol)
# Flags that define a sweep: fixed when it starts, read back from sweep.json on --resume.
DEFINING = (
    "num_samples", "max_epochs", "grace_period", "reduction_factor", "scheduler", "search",
    "gpus_per_trial", "cpus_per_trial", "max_concurrent", "max_failures", "objectives",
)  # fmt: skip
# Model-size settings a sweep with a cost objective searches (search_spaces.common.SIZE), unless given.
SIZE_KEYS = ("embed_dim", "audio_width", "video_width")


class SpecError(ValueError):
    """A setting a sweep cannot have; the message names the flag."""


def is_demo(fixed: dict) -> bool:
    """Whether these TrainConfig settings train on the built-in demo set (no --data_root)."""
    return fixed.get("data_root") is None


def report_folds_seeds(demo: bool) -> tuple[int, int]:
    return DEMO_FOLDS_SEEDS if demo else DATA_FOLDS_SEEDS


@dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep, and what the driver adds once it knows the cluster."""

    name: str  # the sweep's folder under the storage path
    methods: tuple[str, ...]
    fixed: dict[str, Any]  # TrainConfig settings of every trial (the demo recipe and the flags given)
    num_samples: int  # trials per method
    max_epochs: int  # a trial's `epochs`, ASHA's max_t
    grace_period: int = DEFAULTS["grace_period"]
    reduction_factor: int = DEFAULTS["reduction_factor"]
    scheduler: str = DEFAULTS["scheduler"]  # asha or fifo
    search: str = DEFAULTS["search"]  # tpe or random
    gpus_per_trial: float | None = None  # None: 1 when Ray sees a GPU, else 0 (sweeps.cluster.gpu_share)
    cpus_per_trial: float | None = None  # None: 1
    max_concurrent: int | None = None  # None: what the cluster holds
    max_failures: int = DEFAULTS["max_failures"]
    objectives: tuple[str, ...] = ("f1",)  # f1 (maximised, what ASHA ranks), then costs (minimised)
    size: tuple[str, ...] = ()  # SIZE_KEYS searched because a cost is an objective
    storage: str = ""  # the storage path it was written under (local: absolute)
    created: str = ""
    finished: tuple[str, ...] = ()  # Tune experiments (METHOD, METHOD.grow1, ...) that have ended
    grown: tuple[int, ...] = ()  # num_samples before each growth (--resume --num-samples N): stages' ends
    concurrent: int | None = None  # trials at once, decided when the sweep first started
    resources: dict[str, float] | None = None  # {"cpu": ..., "gpu": ...} per trial, decided then too

    @classmethod
    def from_flags(
        cls, methods: list[str], fixed_flags: dict, flags: dict, name: str | None, storage: str
    ) -> SweepSpec:
        """A new sweep from the command line: `fixed_flags` the TrainConfig flags given, `flags` the
        defining flags (None where not given). Fills in the demo-set or real-data defaults and checks
        every value; SpecError names the flag at fault."""
        demo = is_demo(fixed_flags)
        budget = DEMO_BUDGET if demo else DATA_BUDGET
        f = dict(flags)
        for k in ("num_samples", "max_epochs"):
            f[k] = budget[k] if f.get(k) is None else f[k]
        if f.get("grace_period") is None:
            f["grace_period"] = min(DEFAULTS["grace_period"], f["max_epochs"])
        for k, v in DEFAULTS.items():
            f[k] = v if f.get(k) is None else f[k]
        f["objectives"] = parse_objectives(f.get("objectives"))
        for k in ("num_samples", "max_epochs", "grace_period", "reduction_factor"):
            if f[k] < 1:
                raise SpecError(f"--{_flag(k)} must be >= 1, got {f[k]}")
        if f["grace_period"] > f["max_epochs"]:
            raise SpecError(f"--grace-period ({f['grace_period']}) is longer than --max-epochs ({f['max_epochs']})")
        if f["max_failures"] < -1:
            raise SpecError(f"--max-failures must be >= 0 (or -1: retry forever), got {f['max_failures']}")
        for k in ("gpus_per_trial", "cpus_per_trial", "max_concurrent"):
            if f.get(k) is not None and (f[k] < 0 or (k != "gpus_per_trial" and f[k] == 0)):
                raise SpecError(f"--{_flag(k)} must be > 0, got {f[k]}")
        if f.get("gpus_per_trial") and f["gpus_per_trial"] > 1 and f["gpus_per_trial"] % 1:
            raise SpecError(f"--gpus-per-trial above 1 must be a whole number, got {f['gpus_per_trial']}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if f["search"] == "nsga2" and len(f["objectives"]) == 1:
            raise SpecError("--search nsga2 is a multi-objective sampler: add a cost, e.g. --objectives f1,params")
        fixed = {**(DEMO_FIXED if demo else {}), **fixed_flags}
        for k in ("audio_encoder", "video_encoder"):  # the report may run from another folder
            if fixed.get(k):
                fixed[k] = str(Path(fixed[k]).expanduser().absolute())
        return cls(
            name=name or f"{'-'.join(methods) if len(methods) < 4 else 'all'}-{stamp}",
            methods=tuple(methods),
            fixed=fixed,
            **{k: f.get(k) for k in DEFINING},
            size=tuple(k for k in SIZE_KEYS if k not in fixed_flags) if len(f["objectives"]) > 1 else (),
            storage=storage,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )

    @property
    def demo(self) -> bool:
        return is_demo(self.fixed)

    @property
    def trial_fixed(self) -> dict:
        """The TrainConfig settings every trial starts from: the fixed ones and the epoch budget."""
        return {**self.fixed, "epochs": self.max_epochs}

    @property
    def costs(self) -> tuple[str, ...]:
        """The objectives minimised beside Macro-F1 (emo.metric_names.COSTS keys); () for one objective."""
        return tuple(o for o in self.objectives if o != "f1")

    @property
    def stage_sizes(self) -> list[int]:
        """Trials per method in each Tune experiment: the first run, then each growth's added ones."""
        ends = (0, *self.grown, self.num_samples)
        return [b - a for a, b in zip(ends[:-1], ends[1:], strict=True)]

    def grow(self, num_samples: int) -> SweepSpec:
        """This sweep with `num_samples` trials per method, the ones beyond today's a new stage."""
        if num_samples < self.num_samples:
            raise SpecError(
                f"--num-samples {num_samples}: sweep {self.name!r} has {self.num_samples} trials per method "
                "already; a sweep grows, it does not shrink"
            )
        if num_samples == self.num_samples:
            return self
        return self.replace(num_samples=num_samples, grown=(*self.grown, self.num_samples))

    def replace(self, **changes) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """sweep.json's content: plain JSON types, lists for tuples."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> SweepSpec:
        """A spec from sweep.json's content; ValueError naming what is missing or unknown. Keys added
        since the first sweeps were written (max_failures, ...) take their defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}: written by another version of emo-sweeps?")
        if not isinstance(d["fixed"], dict):
            raise ValueError("'fixed' is not an object")
        tuples = {k: tuple(d[k]) for k in ("methods", "finished", "grown", "objectives", "size") if k in d}
        return cls(**{**d, **tuples})


def parse_objectives(text: str | None) -> tuple[str, ...]:
    """`--objectives f1,params,latency` as ('f1', 'params', 'latency'): Macro-F1 first (it is what ASHA
    ranks and prunes on), each name once. SpecError for a name that does not exist or no f1."""
    if text is None:
        return ("f1",)
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        what = ", ".join(unknown) or "empty"
        raise SpecError(f"--objectives {text!r}: unknown {what}; choose from {', '.join(OBJECTIVES)}")
    if "f1" not in names:
        raise SpecError(f"--objectives {text!r}: f1 must be one of them (ASHA prunes on validation Macro-F1)")
    return ("f1", *dict.fromkeys(n for n in names if n != "f1"))


def _flag(name: str) -> str:
    return name.replace("_", "-")
