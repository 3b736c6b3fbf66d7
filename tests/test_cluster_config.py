"""cluster.yaml, checked offline the way `ray up` checks it (Ray has no `ray up --dry-run`), plus the
security properties the README promises."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"
README = CLUSTER_YAML.parent / "README.md"


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


def open_to_the_world(config: dict) -> list[str]:
    """Inbound rules the config adds beyond SSH from a narrow CIDR, and a dashboard off loopback."""
    problems = []
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
        cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        if (rule.get("FromPort"), rule.get("ToPort")) != (22, 22):
            problems.append(f"port {rule.get('FromPort')}-{rule.get('ToPort')} opened")
        problems += [f"SSH from {c}" for c in cidrs if c in ("0.0.0.0/0", "::/0")]
    head_start = " ".join(config["head_start_ray_commands"])
    if "--dashboard-host=127.0.0.1" not in head_start or any(p in head_start for p in ("8265", "10001")):
        problems.append("dashboard or client port not on loopback")
    return problems


def test_only_ssh_is_open_and_the_dashboard_stays_on_loopback(raw, prepared):
    assert "0.0.0.0" not in CLUSTER_YAML.read_text()
    # Ray's group (SSH + node-to-node) with no rule added beyond SSH from a narrow CIDR, or your own
    # group (the ssh-from-one-cidr block) named on every node type: on some only, Ray would still
    # create its world-open group for the others.
    named = [bool(node["node_config"].get("SecurityGroupIds")) for node in prepared["available_node_types"].values()]
    assert all(named) or not any(named), "SecurityGroupIds on some node types only"
    assert open_to_the_world(prepared) == []
    # The check can fail: a dashboard port opened to the world, or SSH from anywhere, is named.
    bad = copy.deepcopy(prepared)
    bad["provider"]["security_group"]["IpPermissions"] = [
        {"FromPort": 8265, "ToPort": 8265, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    ]
    assert open_to_the_world(bad) == ["port 8265-8265 opened", "SSH from 0.0.0.0/0", "SSH from ::/0"]
    # SSH from one narrow CIDR is what a careful user adds: allowed.
    bad["provider"]["security_group"]["IpPermissions"] = [
        {"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}
    ]
    assert open_to_the_world(bad) == []


def test_the_ssh_from_one_cidr_example_is_valid_and_makes_ray_create_no_group(raw):
    """The commented block in cluster.yaml, uncommented: Ray's schema accepts it, and Ray's own AWS
    bootstrap step then uses the named group on every node type and creates or fills none (it returns
    before any AWS call, which is why this runs offline)."""
    from ray.autoscaler._private.aws.config import _configure_security_group

    text = CLUSTER_YAML.read_text()
    block = re.search(r"# ssh-from-one-cidr.*?\n(.*?)\n\s*# end ssh-from-one-cidr", text, re.S).group(1)
    example = yaml.safe_load("\n".join(line.strip()[1:][2:] for line in block.splitlines()))
    config = copy.deepcopy(raw)
    for node_type, extra in example.items():
        config["available_node_types"][node_type]["node_config"].update(extra["node_config"])
    config = prepare_config(config)
    validate_config(config)
    assert set(example) == set(config["available_node_types"])  # every node type, or Ray makes a group
    before = copy.deepcopy(config)
    assert _configure_security_group(config) == before
    assert open_to_the_world(config) == []


def test_workers_get_storage_only_rights_and_every_node_requires_imdsv2(prepared):
    types = prepared["available_node_types"]
    profile = types["gpu"]["node_config"]["IamInstanceProfile"]
    assert profile == {"Name": "emo-sweeps-worker"}, "not the head's ray-autoscaler-v1 (EC2 + S3 full access)"
    for name, node in types.items():
        meta = node["node_config"].get("MetadataOptions", {})
        assert meta.get("HttpTokens") == "required" and meta.get("HttpEndpoint") == "enabled", name


def test_the_readmes_worker_policy_allows_only_the_storage_prefix():
    """The IAM policy the README documents for emo-sweeps-worker: object calls under BUCKET/PREFIX/*,
    listing the bucket only under the prefix; no wildcard action, no other resource."""
    text = README.read_text()
    section = text[text.index("#### Least privilege on AWS") :]
    policy = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    objects, listing = policy["Statement"]
    assert all(st["Effect"] == "Allow" for st in policy["Statement"])
    assert set(objects["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    assert objects["Resource"] == "arn:aws:s3:::YOUR-BUCKET/emo-sweeps/*"
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == "arn:aws:s3:::YOUR-BUCKET"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["emo-sweeps", "emo-sweeps/*"]}}
    assert "*" not in json.dumps([st["Action"] for st in policy["Statement"]])
    assert "role/emo-sweeps-worker" in section and "iam:PassRole" in section


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
        assert "uv sync --frozen" in cmds, key
        # uv from its installer for one pinned release, never whatever astral.sh serves as newest.
        installers = re.findall(r"curl [^|]*\|\s*sh", cmds)
        assert installers and all(re.search(r"https://astral\.sh/uv/\d+\.\d+\.\d+/install\.sh", c) for c in installers)
    assert prepared["file_mounts"]["/home/ubuntu/emo-sweeps"] == "."
    assert ".venv" in prepared["rsync_exclude"]
    # Ray on every node runs from that environment.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("emo-sweeps/.venv/bin" in c for c in prepared[key] if "ray start" in c)


def test_no_secret_is_in_the_config():
    text = CLUSTER_YAML.read_text().lower()
    # Not even as advice: a key in a job's runtime environment sits in Ray's job table.
    for needle in ("wandb_api_key", "aws_secret_access_key", "api_key:", "runtime_env", "runtime environment"):
        assert needle not in text
