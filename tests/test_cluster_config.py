"""cluster.yaml, checked offline the way `ray up` checks it (Ray has no `ray up --dry-run`), plus the
security properties the README promises."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    config = prepare_config(copy.deepcopy(raw))  # merged with Ray's AWS defaults, as `ray up` does
    validate_config(config)
    return config


def test_ray_accepts_the_config(prepared):
    assert prepared["provider"]["type"] == "aws"
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] == "head" and set(types) == {"head", "gpu"}
    # Autoscaling GPU workers: none while idle, up to max_workers when trials wait.
    assert types["gpu"]["min_workers"] == 0 and types["gpu"]["max_workers"] >= 1
    assert types["gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert types["head"]["resources"].get("GPU", 0) == 0


def test_ray_schema_rejects_a_broken_config(raw):
    # The check above can fail: Ray's schema refuses a misspelt top-level key.
    bad = prepare_config(copy.deepcopy(raw))
    bad["max_worker"] = 4
    with pytest.raises(Exception, match="max_worker"):
        validate_config(bad)


def test_only_ssh_is_open_and_the_dashboard_stays_on_loopback(raw, prepared):
    text = CLUSTER_YAML.read_text()
    assert "0.0.0.0" not in text
    # No inbound rule beyond Ray's defaults (SSH + node-to-node).
    assert "IpPermissions" not in prepared["provider"].get("security_group", {})
    for node in prepared["available_node_types"].values():
        assert "SecurityGroupIds" not in node["node_config"]
    head_start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    for port in ("8265", "10001"):
        assert port not in head_start


def test_token_auth_stays_on_and_nodes_share_one_token(prepared):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in prepared[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
        assert not any("RAY_AUTH_MODE=disabled" in c for c in prepared[key])
    mounts = prepared["file_mounts"]
    assert mounts["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"


def test_nodes_install_the_locked_project_with_uv(prepared):
    for key in ("head_setup_commands", "worker_setup_commands"):
        cmds = " ; ".join(prepared[key])  # setup_commands merged into both by prepare_config
        assert "uv sync --frozen" in cmds and "install.sh" in cmds, key
    assert prepared["file_mounts"]["/home/ubuntu/emo-sweeps"] == "."
    assert ".venv" in prepared["rsync_exclude"]
    # Ray on every node runs from that environment.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("emo-sweeps/.venv/bin" in c for c in prepared[key] if "ray start" in c)


def test_no_secret_is_in_the_config():
    text = CLUSTER_YAML.read_text().lower()
    for needle in ("wandb_api_key=", "aws_secret_access_key", "api_key:"):
        assert needle not in text
