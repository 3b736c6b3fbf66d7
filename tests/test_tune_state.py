"""`sweeps.tune_state.repair`: a Tune state file cut off in storage by a driver crash is restored from
Ray's staging copy before `--resume`, or `--resume` stops with one line instead of starting over."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sweeps.tune_state import StateError, repair


def _trial(config):
    from ray import tune

    tune.report({"score": config["x"] * 2})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A real (tiny) Tune experiment, finished, in its own storage folder."""
    import ray
    from ray import tune

    storage = tmp_path_factory.mktemp("tune")
    ray.init(num_cpus=1, include_dashboard=False)
    try:
        tune.Tuner(
            _trial,
            param_space={"x": tune.grid_search([1, 2, 3])},
            run_config=tune.RunConfig(name="m", storage_path=str(storage), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    return storage / "m"


def test_a_moved_experiment_restores_from_where_it_is_now(experiment, tmp_path):
    """What `--resume` relies on when it continues a sweep where its sweep.json now is (a folder
    moved or copied elsewhere): Tune restores from the folder it is given, and its trials' paths
    follow, none pointing back to the old place."""
    import shutil

    from ray import tune

    moved = tmp_path / "elsewhere" / "m"
    shutil.copytree(experiment, moved)
    assert tune.Tuner.can_restore(str(moved))
    results = tune.Tuner.restore(str(moved), _trial).get_results()
    assert sorted(r.metrics["score"] for r in results) == [2, 4, 6]
    assert all(Path(r.path).parent == moved for r in results), [r.path for r in results]


def test_a_state_file_cut_off_in_storage_is_restored_from_the_staging_copy(experiment):
    from ray import tune

    state = max(experiment.glob("experiment_state-*.json"))
    whole = state.read_bytes()
    state.write_bytes(b"")  # what a driver killed while Tune copied the file leaves
    [line] = repair(experiment, "m", roots=[Path(tempfile.gettempdir()) / "ray"])
    assert line.startswith(f"{state.name} was cut off when the driver died; restored from Ray's staging copy /")
    assert line.endswith(f"/m/driver_artifacts/{state.name}"), line
    assert state.read_bytes() == whole
    results = tune.Tuner.restore(str(experiment), _trial).get_results()
    assert sorted(r.metrics["score"] for r in results) == [2, 4, 6]
    assert repair(experiment, "m") == []  # intact: nothing to do


def test_a_cut_off_state_file_with_no_intact_copy_stops_resume(experiment, tmp_path):
    state = max(experiment.glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(StateError, match="cannot be restored; its finished trials"):
        repair(experiment, "m", roots=[tmp_path / "no-ray-here"])
