"""The Ray dashboard during a sweep, checked as a person would: in headless Chromium.

`python -m sweeps.run` starts Ray here with its dashboard on 127.0.0.1 and token authentication on
(Ray 2.60). Without the token every /api/* route is refused and the page shows Ray's "Authentication
Token Required" dialog; pasting the token from ~/.ray/auth_token (the README's way in) shows the
sweep's job and its trials. Chromium is Debian's `chromium` package (`.ci/run` installs it), driven
through Playwright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.procs import Lines
from tests.test_sweep import ROOT, SWEEP_DATA

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
requires_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
)


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@requires_chromium
def test_dashboard_refuses_without_the_token_and_shows_the_sweep_with_it(tiny_demo, tmp_path):
    from playwright.sync_api import sync_playwright

    argv = [sys.executable, "-m", "sweeps.run", "gated", "--data_root", str(tiny_demo.root), *SWEEP_DATA]
    # Long enough (three trials, two epochs each, one at a time) to look at it while it runs: with two
    # trials the sweep ended 16 s after the checks here, too little for a machine half as fast (three: 27 s).
    argv += ["--num-samples", "3", "--max-epochs", "2", "--scheduler", "fifo", "--max-concurrent", "1"]
    argv += ["--storage-path", str(tmp_path / "runs"), "--name", "d"]
    # No RAY_AUTH_MODE (conftest sets it for the tests' own Ray processes): token authentication
    # must be what the driver's locally started Ray does by default, as from a user's shell.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)  # a local start, not a joined cluster
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out = Lines(proc)
    try:
        lines = out.wait_for(lambda ls: any(" epoch 1/2" in x for x in ls), 300)
        url = next(m.group(1) for x in lines if (m := re.search(r"Ray dashboard: (http://\S+)", x)))
        # Ray started by the sweep listens on loopback only.
        assert url.startswith("http://127.0.0.1:"), url
        url = url.rstrip("/")

        # No token, or a wrong one: the API refuses.
        assert _get(f"{url}/api/jobs/")[0] == 401
        assert _get(f"{url}/api/jobs/", token="not-the-token")[0] == 403
        token = (Path.home() / ".ray" / "auth_token").read_text().strip()
        status, body = _get(f"{url}/api/jobs/", token=token)
        assert status == 200 and "sweeps.run gated" in body, (status, body[:500])
        assert any(j["status"] == "RUNNING" for j in json.loads(body))

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{url}/#/jobs")
                dialog = page.get_by_role("dialog", name="Authentication Token Required")
                dialog.wait_for(timeout=60_000)
                page.screenshot(path=tmp_path / "dashboard-token-dialog.png")
                assert "sweeps.run gated" not in page.inner_text("body")  # nothing shown without it

                # The documented way in: paste ~/.ray/auth_token into the dialog.
                dialog.get_by_role("textbox", name="Authentication Token").fill(token)
                dialog.get_by_role("button", name="Submit").click()
                dialog.wait_for(state="hidden", timeout=30_000)
                job = page.get_by_role("row").filter(has_text="sweeps.run gated")
                job.wait_for(timeout=60_000)
                assert "RUNNING" in job.inner_text(), job.inner_text()
                page.screenshot(path=tmp_path / "dashboard-jobs.png")

                # The trials: Tune runs each in an actor of class ImplicitFunc named after the trainable.
                page.goto(f"{url}/#/actors")
                trial = page.get_by_role("row").filter(has_text="ImplicitFunc").filter(has_text="train_trial")
                trial.first.wait_for(timeout=60_000)
                assert "ALIVE" in trial.first.inner_text(), trial.first.inner_text()
                page.screenshot(path=tmp_path / "dashboard-actors.png")
            finally:
                browser.close()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, "".join(out.lines[-60:])
    for name in ("dashboard-token-dialog.png", "dashboard-jobs.png", "dashboard-actors.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
