"""Train / validation / test splits: actor-independent (the honest one), k-fold over actors, stratified.

All return index arrays into the rows they were given. Under `actor`, the train, val and test actors
are disjoint (checked, also under `python -O`): no speaker's voice or face is seen in training and then tested on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_MODES = ("actor", "stratified")
# Fractions of actors (actor mode) or clips (stratified mode). For the 24 RAVDESS actors this gives
# the common protocol: train 01-16, val 17-18, test 19-24.
VAL_FRACTION = 0.1
TEST_FRACTION = 0.25
MIN_ACTORS = 3  # one each for train, val and test


class SplitError(ValueError):
    """The rows cannot be split as asked; the message says what would be needed."""


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # row indices, int64
    val: np.ndarray
    test: np.ndarray
    # Actors of each part, for the record (None for a stratified split, which mixes actors).
    train_actors: tuple[int, ...] | None = None
    val_actors: tuple[int, ...] | None = None
    test_actors: tuple[int, ...] | None = None

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _part_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    return n_val, n_test


def _by_actor(actors: np.ndarray, train: list[int], val: list[int], test: list[int]) -> Split:
    # A real check, not an assert: `python -O` strips asserts, and an overlap would silently score a
    # model on voices and faces it was trained on.
    parts = {"train": set(train), "val": set(val), "test": set(test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if parts[a] & parts[b]:
            raise SplitError(f"actor split overlaps: actor(s) {sorted(parts[a] & parts[b])} in both {a} and {b}")
    idx = {
        name: np.flatnonzero(np.isin(actors, part)).astype(np.int64)
        for name, part in (("train", train), ("val", val), ("test", test))
    }
    return Split(**idx, train_actors=tuple(train), val_actors=tuple(val), test_actors=tuple(test))


def _unique_actors(actors: np.ndarray, need: int, what: str) -> list[int]:
    unique = sorted(set(np.asarray(actors).tolist()))
    if len(unique) < need:
        raise SplitError(f"{what} needs at least {need} actors; the data has {len(unique)} ({unique})")
    return unique


def actor_split(actors: np.ndarray, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> Split:
    """Deterministic actor-independent split: sorted actors, test = the last block, val = the block
    before it, train = the rest. Works on any subset of at least 3 actors (6 actors -> 3/1/2)."""
    actors = np.asarray(actors)
    unique = _unique_actors(actors, MIN_ACTORS, "an actor-independent split")
    n_val, n_test = _part_sizes(len(unique), val_fraction, test_fraction)
    n_train = len(unique) - n_val - n_test
    return _by_actor(actors, unique[:n_train], unique[n_train : n_train + n_val], unique[n_train + n_val :])


def actor_folds(
    actors: np.ndarray, k: int, val_fraction: float = VAL_FRACTION, never_test: tuple[int, ...] = ()
) -> list[Split]:
    """k folds over actors: fold i tests on the i-th contiguous block of sorted actors, validates on the
    actors that follow it (wrapping round) and trains on the rest. Every actor is tested exactly once.

    `never_test`: actors that are no fold's test actors; every one of them validates every fold instead
    (topped up with the actors after the block where they are fewer than the validation fraction).
    The report passes the actors its sweeps chose configurations on: no clip that picked a
    configuration ever scores it. The other actors are each tested exactly once."""
    actors = np.asarray(actors)
    if k < 2:
        raise SplitError(f"k-fold needs k >= 2, got {k}")
    unique = _unique_actors(actors, k + 2, f"{k}-fold over actors")  # test block + val + train
    held = [a for a in unique if a in never_test]
    testable = [a for a in unique if a not in never_test]
    if len(testable) < k:
        raise SplitError(
            f"{k}-fold over actors needs at least {k} actors besides the {len(held)} kept out of testing "
            f"({held}); the data has {len(unique)} ({unique})"
        )
    blocks = np.array_split(np.array(testable), k)
    n_val = max(1, round(len(unique) * val_fraction), len(held))
    if len(unique) - max(len(b) for b in blocks) - n_val < 1:
        raise SplitError(f"{k}-fold over actors leaves no training actor with {len(unique)} actors")
    folds = []
    for i, block in enumerate(blocks):
        test = block.tolist()
        rest = [a for b in blocks[i + 1 :] + blocks[:i] for a in b.tolist()]  # in order after the block
        rest = held + rest  # the held-out-of-test actors validate first
        folds.append(_by_actor(actors, sorted(rest[n_val:]), sorted(rest[:n_val]), test))
    return folds


def selection_actors(actors: np.ndarray) -> tuple[int, ...]:
    """The actors a sweep chooses configurations on: the validation actors of `actor_split`."""
    return actor_split(actors).val_actors


def confirmation_folds(actors: np.ndarray, k: int) -> list[Split]:
    """The report's k folds: `actor_folds` whose test actors never include `selection_actors`."""
    return actor_folds(actors, k, never_test=selection_actors(actors))


def stratified_split(labels: np.ndarray, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Split:
    """Seeded label-stratified split over clips (actors are shared between parts: an easier, optimistic
    protocol, kept because papers report it)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels) if labels.size else np.zeros(0, int)
    present = counts[counts > 0]
    # Each class must put at least one clip in each of the three parts.
    if labels.size == 0 or present.min() < 3:
        least = int(present.min()) if present.size else 0
        raise SplitError(f"a stratified split needs at least 3 clips of every class; the rarest has {least}")
    from sklearn.model_selection import train_test_split  # 4 s to import: only when asked for

    idx = np.arange(labels.size)
    try:
        trainval, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
        rel_val = val_fraction / (1 - test_fraction)
        train, val = train_test_split(trainval, test_size=rel_val, stratify=labels[trainval], random_state=seed)
    except ValueError as e:  # sklearn's message, e.g. a test part smaller than the number of classes
        raise SplitError(f"cannot stratify {labels.size} clips over {present.size} classes: {e}") from e
    return Split(np.sort(train), np.sort(val), np.sort(test))


def make_split(mode: str, actors: np.ndarray, labels: np.ndarray, seed: int, folds: int = 0, fold: int = 0) -> Split:
    """The split a run trains on; with `folds`, fold `fold` of `confirmation_folds` (actor mode only)."""
    if folds and mode != "actor":
        raise SplitError(f"folds are over actors and need split_mode 'actor', not {mode!r}")
    if mode == "actor":
        return confirmation_folds(actors, folds)[fold] if folds else actor_split(actors)
    if mode == "stratified":
        return stratified_split(labels, seed)
    raise SplitError(f"unknown split_mode {mode!r}; choose one of: {', '.join(SPLIT_MODES)}")
