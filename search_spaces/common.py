"""The parts every method's search space is built from, and the checks every space passes.

A space maps `TrainConfig` field names to Ray Tune domains (which `OptunaSearch` converts to Optuna
distributions). Ranges follow the training guide: its recipe (lr 1e-3, weight decay 1e-4, dropout 0.3,
SpecAugment 20 mel bins / 40 frames, modality dropout 0.2, gate starting at 0.3) sits inside every
range, and is the first point each sweep evaluates.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.search.sample import Domain

from emo.config import SPEECH_FRONTENDS, TrainConfig

_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_DEFAULTS = TrainConfig()

# Every method: the optimiser and the classifier head.
OPTIMISER: dict[str, Domain] = {
    "lr": tune.loguniform(1e-4, 3e-3),  # guide: 1e-3, "try 5e-4 or 3e-4 when fusion underperforms"
    "weight_decay": tune.loguniform(1e-6, 1e-2),  # AdamW; guide 1e-4
    "dropout": tune.uniform(0.0, 0.6),  # before the classifier; guide 0.3
}
# Methods that read audio: SpecAugment mask widths, up to the guide's values (0 = no masking), in bins and
# frames of the 64 x 351 `ravdess` log-mel; the model scales them to the features' own size.
SPECAUGMENT: dict[str, Domain] = {
    "freq_mask": tune.randint(0, 21),  # mel bins, 0-20 (randint's upper bound is exclusive)
    "time_mask": tune.randint(0, 41),  # frames, 0-40
}
# Methods that fuse two streams: drop one of them per clip while training (never both).
MODALITY_DROPOUT: dict[str, Domain] = {
    "modality_dropout": tune.uniform(0.0, 0.5),  # guide 0.2; 0.5 drops audio or video on every clip
}

# Model size: searched only by a sweep that minimises a cost beside Macro-F1 (--objectives f1,params,
# ...), where the size is what the cost buys. Every value divides by attn_heads (4) for xattn.
# Over a pretrained speech encoder: a learnt softmax mix of its layers (SUPERB) or the last layer alone.
LAYER_MIX: dict[str, Domain] = {"layer_mix": tune.choice(["learnt", "last"])}
SIZE: dict[str, Domain] = {
    "embed_dim": tune.choice([32, 64, 128, 256]),  # the fusion heads' width; default 128
    "audio_width": tune.choice([8, 16, 32, 64]),  # the light audio CNN's first block; default 32, demo 8
    "video_width": tune.choice([8, 16, 32, 64]),  # the light video CNN's first block; default 32, demo 16
}


# What changes only a stream's own encoder: nothing to search where that stream is read through a frozen
# front end's embeddings (TrainConfig.audio_frontend / video_frontend).
ENCODER_KEYS = {"audio": ("freq_mask", "time_mask", "audio_width", "use_resnet_audio"), "video": ("video_width",)}


class SearchSpaceError(ValueError):
    """A space that names something TrainConfig does not have, or samples an invalid config."""


@dataclass(frozen=True)
class SearchSpace:
    """One method's space: `params` are searched, `fixed` pinned; `recipe` is evaluated first."""

    method: str
    params: dict[str, Domain]
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    base: dict[str, Any] = dataclasses.field(default_factory=dict)  # the recipe's values where not TrainConfig's

    @property
    def recipe(self) -> dict[str, Any]:
        """The training guide's recipe (TrainConfig's defaults, or `base`) for the searched keys."""
        return {k: self.base.get(k, getattr(_DEFAULTS, k)) for k in self.params}

    def sized(self, keys: tuple[str, ...] | list[str]) -> SearchSpace:
        """This space with the model-size keys `keys` (of SIZE) searched too, those that change this
        method's model: embed_dim always, a light CNN's width where that CNN runs. The recipe keeps
        the value each had fixed (the demo's widths, say)."""
        cfg = TrainConfig(**{**self.fixed, "fusion": self.method})
        applies = {"embed_dim": True, "audio_width": "audio" in cfg.streams and not cfg.use_resnet_audio,
                   "video_width": "video" in cfg.streams and cfg.video_backbone == "light"}  # fmt: skip
        add = {k: SIZE[k] for k in keys if applies[k]}
        return SearchSpace(
            self.method,
            {**self.params, **add},
            {k: v for k, v in self.fixed.items() if k not in add},
            {**self.base, **{k: self.fixed[k] for k in add if k in self.fixed}},
        )

    def without_frozen(self) -> SearchSpace:
        """This space less the keys of encoders that a frozen front end replaces (ENCODER_KEYS); over a
        pretrained speech encoder, its layer mix is searched (LAYER_MIX) unless given."""
        cfg = TrainConfig(**{**self.fixed, "fusion": self.method})
        drop = {k for s in cfg.streams if cfg.frozen(s) for k in ENCODER_KEYS[s]}
        params = {k: v for k, v in self.params.items() if k not in drop}
        if "audio" in cfg.streams and cfg.audio_frontend in SPEECH_FRONTENDS and "layer_mix" not in self.fixed:
            params.update(LAYER_MIX)
        return SearchSpace(self.method, params, self.fixed, self.base)

    def pin(self, values: dict[str, Any]) -> SearchSpace:
        """Fix some keys (e.g. `--lr 5e-4` on the command line): they leave the search."""
        return SearchSpace(
            self.method,
            {k: v for k, v in self.params.items() if k not in values},
            {**self.fixed, **values},
            self.base,
        )

    def param_space(self) -> dict[str, Any]:
        """What `Tuner(param_space=...)` takes: the fixed values plus the searched domains."""
        return {**self.fixed, "fusion": self.method, **self.params}

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """One random point (for validation and tests); Optuna does the real sampling."""
        out = {}
        for k, dom in self.params.items():
            out[k] = dom.sample(random_state=rng.randint(0, 2**31 - 1))
        return out

    def config(self, point: dict[str, Any]) -> TrainConfig:
        """The TrainConfig a trial at `point` runs (raises ValueError on a bad value)."""
        merged = {**self.fixed, "fusion": self.method, **point}
        return TrainConfig(**{k: plain(v) for k, v in merged.items()})


def plain(v):
    """numpy scalars (what Tune's samplers return) to Python numbers, for TrainConfig, JSON, Parquet
    and W&B; anything else as it is."""
    return v.item() if hasattr(v, "item") else v


def space(method: str, *parts: dict[str, Domain]) -> SearchSpace:
    params: dict[str, Domain] = {}
    for part in parts:
        params.update(part)
    return SearchSpace(method, params)


def validate(sp: SearchSpace, samples: int = 32, seed: int = 0) -> None:
    """Fail now, not an hour into a sweep: every key is a TrainConfig field, the method is known,
    the recipe lies inside the space, and sampled points build valid configs."""
    unknown = sorted((set(sp.params) | set(sp.fixed)) - _FIELDS)
    if unknown:
        raise SearchSpaceError(
            f"search space {sp.method!r} has key(s) that are not TrainConfig fields: {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(_FIELDS))}"
        )
    for k, dom in sp.params.items():
        if not isinstance(dom, Domain):
            raise SearchSpaceError(f"search space {sp.method!r}: {k} is {dom!r}, not a ray.tune domain")
        if k == "fusion":
            raise SearchSpaceError(f"search space {sp.method!r}: the fusion method is not searched")
    try:
        sp.config(sp.recipe)
        rng = random.Random(seed)
        for _ in range(samples):
            sp.config(sp.sample(rng))
    except (TypeError, ValueError) as e:
        raise SearchSpaceError(f"search space {sp.method!r} samples an invalid config: {e}") from e
    for k, v in sp.recipe.items():
        if not _inside(sp.params[k], v):
            raise SearchSpaceError(f"search space {sp.method!r}: the guide's {k}={v} is outside {sp.params[k]}")


def _inside(dom: Domain, v) -> bool:
    lo, hi = getattr(dom, "lower", None), getattr(dom, "upper", None)
    if lo is None:  # categorical
        return v in getattr(dom, "categories", [v])
    if isinstance(dom, tune.search.sample.Integer):
        return lo <= v < hi
    return lo <= v <= hi
