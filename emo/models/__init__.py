"""Models: one registry of fusion methods. Adding a method = one class with `@register("name")` in
`fusion.py`, one entry in `emo.config.FUSIONS`, and one search-space file."""

from emo.config import FUSIONS, TrainConfig
from emo.models.fusion import MODELS, FusionModel, modality_keep_masks

assert set(MODELS) == set(FUSIONS), f"registry {sorted(MODELS)} != config choices {sorted(FUSIONS)}"


def build_model(cfg: TrainConfig, dims: dict[str, int] | None = None) -> FusionModel:
    """`cfg.fusion`'s model; `dims` gives the embedding width of each stream `cfg` reads through a frozen
    front end (emo.train.embedding_dims)."""
    if cfg.fusion not in MODELS:
        raise ValueError(f"unknown fusion {cfg.fusion!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[cfg.fusion](cfg, dims)


__all__ = ["MODELS", "FusionModel", "build_model", "modality_keep_masks"]
