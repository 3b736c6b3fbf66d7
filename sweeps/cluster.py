"""Starting or joining Ray, and what a Ray cluster holds: the driver's and the report's one way in.

Token authentication (Ray 2.60 keeps it on), the dashboard's exposure, the W&B key kept out of Ray's
processes, GPU shares and how many trials fit at once.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys

from emo.cli import fail


def joins_cluster(address: str | None) -> bool:
    """Whether ray.init joins a running cluster: --address, or RAY_ADDRESS (which `ray job submit`
    sets for the driver) instead of starting Ray here."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def gpu_share(given: float | None, cluster_gpus: float, joined: bool) -> float:
    """GPUs per trial: --gpus-per-trial when given; else 1 when Ray sees a GPU, and 0 (CPUs) on a Ray
    started here without one. A joined cluster without a GPU now is refused (ValueError): an
    autoscaling cluster starts with no GPU worker, and a share of 0 would run every trial on the head's
    CPUs and never ask the autoscaler for one."""
    if given is not None:
        return float(given)
    if cluster_gpus >= 1:
        return 1.0
    if joined:
        raise ValueError(
            f"the cluster has no GPU now ({cluster_gpus:g}); pass --gpus-per-trial N to wait for GPU workers "
            "(autoscaling), or --gpus-per-trial 0 to train on CPUs"
        )
    return 0.0


DRIVER_ONLY_ENV = ("WANDB_API_KEY",)


def start_ray(address: str | None, dashboard_host: str) -> tuple[bool, str | None]:
    """Join `--address` (or RAY_ADDRESS) or start Ray here, with the dashboard on loopback. Returns
    (started here, URL)."""
    import ray

    if joins_cluster(address):
        ctx = ray.init(address=address, log_to_driver=True)
        started = False
    else:
        # Ray's processes started here inherit this process's environment, and every trial's worker
        # inherits theirs. The W&B key is the driver's alone (no trial talks to W&B): keep it out.
        hidden = {k: os.environ.pop(k) for k in DRIVER_ONLY_ENV if k in os.environ}
        try:
            ctx = ray.init(include_dashboard=True, dashboard_host=dashboard_host)
        finally:
            os.environ.update(hidden)
        started = True
    url = getattr(ctx, "dashboard_url", None)
    return started, (f"http://{url}" if url and "://" not in url else url)


def trials_that_fit(resources: dict, gpus: float, cpus: float, num_samples: int) -> int:
    """How many trials the cluster runs at once: its GPUs and its CPUs must both have room (a box with
    8 GPUs and 16 CPUs runs 16 trials of 0.25 GPU and 1 CPU, not 32), at most `num_samples`. More
    would only be proposed by TPE with fewer results to learn from, and then wait."""
    fit_ = math.floor(resources.get("CPU", 1) / cpus) if cpus else num_samples
    if gpus:
        fit_ = min(fit_, math.floor(resources.get("GPU", 0) / gpus))
    return max(1, min(fit_, num_samples))


def check_address(address: str | None) -> None:
    """Refuse Ray Client (`ray://`): Ray documents that Tune and Train may not work through it, and
    here `Tuner.fit` failed at once under it (the runtime environment `uv run` gives Ray names a local
    folder the cluster does not have). A sweep must also outlive the connection it was started from.
    The driver belongs on the cluster, which is what `ray job submit` does."""
    if address and address.startswith("ray://"):
        fail(
            "--address ray://... (Ray Client) is not supported; run the driver on the cluster: "
            "RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --working-dir . -- "
            "python -m sweeps.run ... (README: On a cluster)"
        )


def local_token_auth() -> bool:
    """Whether a Ray started here uses token authentication: Ray 2.60's ray.init turns it on for a new
    local cluster unless RAY_AUTH_MODE says otherwise (ray._private.authentication)."""
    mode = os.environ.get("RAY_AUTH_MODE")
    return mode is None or mode.lower() == "token"


def check_dashboard_host(host: str) -> None:
    """The dashboard of a Ray started here runs anyone's code for whoever reaches it (CVE-2023-48022):
    off loopback it needs token authentication (refused without), and even with it, say so once."""
    if is_loopback(host):
        if not local_token_auth():
            print(
                f"warning: RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE')}: the Ray started here has no "
                "authentication; any process on this machine can submit code to it. That setting is only "
                "for joining (--address) a cluster that was started without token authentication.",
                file=sys.stderr,
            )
        return
    if not local_token_auth():
        fail(
            f"--dashboard-host {host} with token authentication off (RAY_AUTH_MODE="
            f"{os.environ.get('RAY_AUTH_MODE')}): anyone who reaches the port could run code on this machine; "
            "keep the dashboard on 127.0.0.1 (reach it through an SSH tunnel) or leave RAY_AUTH_MODE unset"
        )
    print(
        f"warning: the Ray dashboard listens on {host}, reachable from other machines; only the token in "
        "~/.ray/auth_token stands between them and running code here. Prefer 127.0.0.1 and an SSH tunnel.",
        file=sys.stderr,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def token_auth_for_address(argv: list[str]) -> None:
    """Clusters of Ray 2.60 (`ray start --head`, `ray up cluster.yaml`) use token authentication, and
    a driver joining one (`--address`) must too. Ray reads this when it is imported, so call this
    before anything imports ray. RAY_AUTH_MODE=disabled in the environment joins a cluster started
    without it."""
    if any(a.split("=")[0] == "--address" for a in argv):
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def torch_threads_from_ray() -> None:
    """In a Ray task or trial: as many torch threads as the CPUs Ray gave it (a reused worker keeps torch's
    setting from its last task)."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
