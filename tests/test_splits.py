import numpy as np
import pytest

from emo.data.splits import (
    SplitError,
    actor_folds,
    actor_split,
    confirmation_folds,
    make_split,
    selection_actors,
    stratified_split,
)

RAVDESS_ACTORS = np.repeat(np.arange(1, 25), 60)  # 24 actors x 60 speech clips


def _actors_of(actors, idx):
    return set(actors[idx].tolist())


@pytest.mark.parametrize("n_actors", [3, 6, 12, 24])
def test_actor_split_disjoint_deterministic_any_subset(n_actors):
    actors = np.repeat(np.arange(1, n_actors + 1), 5)
    s = actor_split(actors)
    parts = [_actors_of(actors, s.train), _actors_of(actors, s.val), _actors_of(actors, s.test)]
    assert all(parts), "every part has an actor"
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(1, n_actors + 1)), "every clip is used"
    assert len(s.train) + len(s.val) + len(s.test) == len(actors)
    again = actor_split(actors[::-1])  # row order does not change who is where
    assert (again.train_actors, again.val_actors, again.test_actors) == (
        s.train_actors,
        s.val_actors,
        s.test_actors,
    )


def test_actor_split_ravdess_protocol():
    s = actor_split(RAVDESS_ACTORS)
    assert s.train_actors == tuple(range(1, 17))
    assert s.val_actors == (17, 18)
    assert s.test_actors == tuple(range(19, 25))
    assert s.sizes() == {"train": 960, "val": 120, "test": 360}


def test_actor_split_too_few_actors_says_how_many():
    with pytest.raises(SplitError, match="needs at least 3 actors; the data has 2"):
        actor_split(np.array([1, 1, 2, 2]))


@pytest.mark.parametrize("n_actors, k", [(24, 4), (12, 3), (6, 2), (24, 6)])
def test_actor_folds_each_actor_tested_once(n_actors, k):
    actors = np.repeat(np.arange(1, n_actors + 1), 3)
    folds = actor_folds(actors, k)
    assert len(folds) == k
    tested = []
    for f in folds:
        tr, va, te = (_actors_of(actors, i) for i in (f.train, f.val, f.test))
        assert tr and va and te and not (tr & va or tr & te or va & te)
        assert tr | va | te == set(range(1, n_actors + 1))
        tested += sorted(te)
    assert sorted(tested) == list(range(1, n_actors + 1))


def test_actor_folds_too_few_actors():
    with pytest.raises(SplitError, match="needs at least 6 actors"):
        actor_folds(np.arange(1, 5), 4)


def test_stratified_split_seeded_and_stratified():
    labels = np.tile(np.arange(8), 30)
    a, b, c = stratified_split(labels, 0), stratified_split(labels, 0), stratified_split(labels, 1)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)
    all_idx = np.concatenate([a.train, a.val, a.test])
    assert sorted(all_idx.tolist()) == list(range(len(labels)))
    for part in (a.train, a.val, a.test):
        counts = np.bincount(labels[part], minlength=8)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1  # balanced classes in every part


def test_stratified_split_too_small():
    with pytest.raises(SplitError, match="at least 3 clips of every class; the rarest has 2"):
        stratified_split(np.array([0, 0, 1, 1, 1]), seed=0)


def test_make_split_unknown_mode_lists_choices():
    with pytest.raises(SplitError, match="unknown split_mode 'speaker'; choose one of: actor, stratified"):
        make_split("speaker", RAVDESS_ACTORS, RAVDESS_ACTORS % 8, 0)


def test_make_split_fold_is_that_confirmation_fold():
    """A run's fold is one of the report's confirmation folds: the actors the default split validates
    on (17-18 of RAVDESS, where sweeps choose configurations) validate every fold and are never
    tested; every other actor is tested exactly once."""
    folds = confirmation_folds(RAVDESS_ACTORS, 4)
    assert selection_actors(RAVDESS_ACTORS) == (17, 18)
    for i, f in enumerate(folds):
        s = make_split("actor", RAVDESS_ACTORS, RAVDESS_ACTORS % 8, seed=3, folds=4, fold=i)
        assert s.test_actors == f.test_actors and np.array_equal(s.train, f.train)
        assert s.val_actors == (17, 18) and not {17, 18} & (set(s.test_actors) | set(s.train_actors))
    tested = [a for f in folds for a in f.test_actors]
    assert sorted(tested) == [a for a in range(1, 25) if a not in (17, 18)]
    with pytest.raises(SplitError, match="need split_mode 'actor'"):
        make_split("stratified", RAVDESS_ACTORS, RAVDESS_ACTORS % 8, 0, folds=4, fold=0)


@pytest.mark.parametrize("n_actors, k", [(4, 2), (8, 4), (12, 3), (24, 6)])
def test_confirmation_folds_keep_the_selection_actors_out_of_test(n_actors, k):
    actors = np.repeat(np.arange(1, n_actors + 1), 2)
    held = set(selection_actors(actors))
    folds = confirmation_folds(actors, k)
    tested = [a for f in folds for a in f.test_actors]
    assert held and not held & set(tested)
    assert sorted(tested) == sorted(set(range(1, n_actors + 1)) - held)
    for f in folds:
        assert f.train_actors and held <= set(f.val_actors)
        assert set(f.train_actors) | set(f.val_actors) | set(f.test_actors) == set(range(1, n_actors + 1))


def test_confirmation_folds_say_how_many_actors_they_need():
    with pytest.raises(SplitError, match=r"needs at least 4 actors besides the 3 kept out of testing \(\[3, 4, 5\]\)"):
        actor_folds(np.arange(1, 7), 4, never_test=(3, 4, 5))
    assert len(actor_folds(np.arange(1, 7), 4, never_test=(6,))) == 4


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"folds": 1}, "folds must be 0"),
        ({"folds": 4, "fold": 4}, r"fold must be in 0..3"),
        ({"folds": 3, "split_mode": "stratified"}, "need split_mode='actor'"),
    ],
)
def test_train_config_rejects_bad_folds(changes, message):
    from emo.config import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_an_overlapping_actor_split_is_an_error_even_under_python_O():
    """The disjointness check is code, not an assert that `python -O` strips."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from emo.data.splits import _by_actor, SplitError\n"
        "try:\n"
        "    _by_actor(np.arange(1, 5), [1, 2], [2], [3, 4])\n"
        "except SplitError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "actor split overlaps: actor(s) [2] in both train and val", out
