"""Search spaces, one module per fusion method, each over `TrainConfig` field names.

    from search_spaces import get_space
    sp = get_space("gated")          # validated; sp.params (Tune domains), sp.recipe (evaluated first)
    sp = sp.pin({"lr": 5e-4})        # a key given on the command line leaves the search

Adding a method: a module here with `SPACE = space("name", ...)` and its name in `METHODS`.
"""

from __future__ import annotations

import importlib

from emo.config import FUSIONS
from search_spaces.common import SearchSpace, SearchSpaceError, space, validate

METHODS: tuple[str, ...] = tuple(FUSIONS)  # audio, video, late, concat, gated, xattn


def get_space(method: str) -> SearchSpace:
    """The validated space of `method`; an unknown name raises SearchSpaceError listing the valid ones."""
    if method not in METHODS:
        raise SearchSpaceError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}, or all")
    sp = importlib.import_module(f"search_spaces.{method}").SPACE
    validate(sp)
    return sp


def sweep_space(method: str, fixed: dict, size: tuple[str, ...] | list[str] = ()) -> SearchSpace:
    """What a sweep searches for `method`: its space with the sweep's fixed settings pinned, for a sweep
    that minimises a cost the model-size keys `size` searched (SearchSpace.sized), and nothing searched
    that only an encoder a frozen front end replaces would read (SearchSpace.without_frozen)."""
    return get_space(method).pin(fixed).sized(size).without_frozen()


__all__ = ["METHODS", "sweep_space", "SearchSpace", "SearchSpaceError", "get_space", "space", "validate"]
