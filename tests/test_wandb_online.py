"""W&B online: a small sweep logs to a stand-in for the W&B backend on 127.0.0.1 (`WANDB_BASE_URL`,
tests/fake_wandb.py) with a recognisable fake API key. The key is used (every request to the backend
carries it) and is nowhere else: no file the sweep, Ray (its session folder, asked of Ray) or W&B (its
own folders, redirected here) wrote, not Ray's job table, not a trial's environment."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_wandb import FakeWandb
from tests.keysearch import FAKE_KEY, search
from tests.test_sweep import SWEEP_DATA

# How the key travels to the backend (HTTP basic auth, user "api"): a file holding this holds the key.
KEY_FORMS = (FAKE_KEY.encode(), base64.b64encode(f"api:{FAKE_KEY}".encode()))


def _ray_token() -> str:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).read_text().strip()


@pytest.fixture(scope="module")
def online(tiny_demo, tmp_path_factory):
    """`python -m sweeps.run gated ... --wandb` (main()) with WANDB_API_KEY set and no WANDB_MODE:
    online, as for a user who has a key. Just before the driver stops Ray, the job table (from the GCS
    and from the dashboard's /api/jobs/) and a Ray worker's view of WANDB_API_KEY are taken."""
    import ray
    import wandb

    from sweeps.run import main

    tmp = tmp_path_factory.mktemp("online")
    seen: dict = {}
    real_init, real_shutdown = ray.init, ray.shutdown

    def init(*args, **kwargs):
        ctx = real_init(*args, **kwargs)
        seen["session"] = Path(ray._private.worker._global_node.get_session_dir_path())
        seen["dashboard"] = ctx.dashboard_url
        return ctx

    def shutdown(*args, **kwargs):
        if ray.is_initialized():
            seen["gcs_jobs"] = json.dumps(ray._private.state.jobs(), default=str)
            req = urllib.request.Request(f"http://{seen['dashboard']}/api/jobs/",
                                         headers={"Authorization": f"Bearer {_ray_token()}"})  # fmt: skip
            with urllib.request.urlopen(req, timeout=30) as r:
                seen["api_jobs"] = r.read().decode()
            seen["worker_env_key"] = ray.get(ray.remote(lambda: os.environ.get("WANDB_API_KEY")).remote())
        return real_shutdown(*args, **kwargs)

    home = tmp / "wandb-home"
    wandb_dirs = {f"WANDB_{d}_DIR": str(home / d.lower()) for d in ("CONFIG", "CACHE", "DATA", "ARTIFACT")}
    wandb_dirs["WANDB_DIR"] = str(home / "dir")
    argv = ["gated", "--data_root", str(tiny_demo.root), *SWEEP_DATA, "--embed_dim", "32", "--num-samples", "2",
            "--max-epochs", "2", "--storage-path", str(tmp / "runs"), "--name", "online", "--wandb"]  # fmt: skip
    with FakeWandb() as fake, pytest.MonkeyPatch.context() as env:
        env.delenv("WANDB_MODE", raising=False)
        env.setenv("WANDB_API_KEY", FAKE_KEY)
        env.setenv("WANDB_BASE_URL", fake.url)
        env.setenv("NETRC", str(tmp / "netrc"))  # a `wandb login` would write here: it must not
        for k, v in wandb_dirs.items():
            env.setenv(k, v)
        env.setattr(ray, "init", init)
        env.setattr(ray, "shutdown", shutdown)
        # W&B keeps its settings (the server address among them) in a process-wide singleton made at
        # the first wandb.init; earlier tests in this process made one for the real, offline W&B.
        wandb.teardown()
        try:
            rc = main(argv)
        finally:
            wandb.teardown()  # and the next test's W&B does not inherit this stand-in server
    return {"rc": rc, "fake": fake, "tmp": tmp, **seen}


def test_an_online_sweep_logs_every_trial_to_the_backend_with_the_key(online):
    fake = online["fake"]
    assert online["rc"] == 0
    assert fake.unknown == [], "the W&B client called something the stand-in does not answer"
    api = [r for r in fake.requests if r.path.startswith(("/graphql", "/files/"))]
    assert api and all(r.headers.get("Authorization") == f"Basic {KEY_FORMS[1].decode()}" for r in api)
    trials = pd.read_parquet(online["tmp"] / "runs" / "online" / "results.parquet")
    assert len(fake.runs) == len(trials) == 2
    for run_id, run in fake.runs.items():
        assert run.project == "emo-sweeps" and run.exit_code == 0, (run_id, run)
        assert run.upserts[0]["groupName"] == "online" and "gated" in run.upserts[0]["tags"]
        epochs = [row["_step"] for row in run.history if "val/f1" in row]
        assert epochs and epochs == list(range(1, len(epochs) + 1)), run.history
        assert {"config.yaml", "wandb-summary.json"} <= set(run.files)


def test_the_key_is_in_no_file_nor_the_job_table_nor_a_trials_environment(online):
    tmp = online["tmp"]
    roots = [tmp / "runs", tmp / "wandb-home", online["session"]]
    assert all(root.is_dir() for root in roots), roots
    hits, checked = search(roots, KEY_FORMS)
    assert hits == []
    assert not (tmp / "netrc").exists()
    for table in ("gcs_jobs", "api_jobs"):
        assert online[table] and FAKE_KEY not in online[table], table
    assert online["worker_env_key"] is None, "a trial's worker could read the W&B key from its environment"
    names = {f.name for f in checked}
    assert {"params.json", "result.json", "results.parquet", "debug-internal.log"} <= names, names
    assert len(checked) > 50
