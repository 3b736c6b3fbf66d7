"""The dashboards during a sweep, checked as a person would: in headless Chromium.

Ray's: `python -m sweeps.run` starts Ray here with its dashboard on 127.0.0.1 and token authentication
on (Ray 2.60). Without the token every /api/* route is refused and the page shows Ray's "Authentication
Token Required" dialog; pasting the token from ~/.ray/auth_token (the README's way in) shows the
sweep's job and its trials. Optuna's: `python -m sweeps.dashboard NAME` serves the sweep's study
(sweeps.study) on 127.0.0.1; its trials appear while the sweep runs, ASHA's pruned ones marked so.
Chromium is Debian's `chromium` package (`.ci/run` installs it), driven through Playwright.
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

import pandas as pd
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
def test_dashboards_ray_refuses_without_the_token_and_optuna_shows_the_running_study(tiny_demo, tmp_path):
    from playwright.sync_api import sync_playwright

    argv = [sys.executable, "-m", "sweeps.run", "gated", "--data_root", str(tiny_demo.root), *SWEEP_DATA]
    # Long enough (six trials of up to three epochs, one at a time) to look at both while it runs; at
    # 32 channels the trials' scores differ after one epoch and ASHA (rungs at epochs 1 and 2) prunes.
    argv += ["--num-samples", "6", "--max-epochs", "3", "--grace-period", "1", "--max-concurrent", "1"]
    argv += ["--audio_width", "32", "--video_width", "32"]
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
    optuna_dash = None
    try:
        lines = out.wait_for(lambda ls: any("finished (1/6)" in x for x in ls), 300)
        optuna_dash = subprocess.Popen(
            [sys.executable, "-m", "sweeps.dashboard", "d", "--storage-path", str(tmp_path / "runs"), "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        said = Lines(optuna_dash).wait_for(lambda ls: any("/dashboard/" in x for x in ls), 60)
        study_url = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard/", "".join(said)).group(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{study_url}/dashboard/")
                page.get_by_text("gated").first.wait_for(timeout=60_000)
                # The finished trial and the one training now; reloaded until both show (between two
                # trials, for a moment, none is running).
                for _ in range(30):
                    page.goto(f"{study_url}/dashboard/studies/0/trials")
                    page.get_by_text("Complete").first.wait_for(timeout=60_000)
                    if page.get_by_text("Running").count():
                        break
                    page.wait_for_timeout(1000)
                running = proc.poll() is None and page.get_by_text("Running").count() > 0
                page.screenshot(path=tmp_path / "optuna-trials-running.png")
            finally:
                browser.close()
        assert running, "no running trial was seen in optuna-dashboard while the sweep ran"

        n = len(out.lines)
        lines = out.wait_for(lambda ls: any(" epoch 1/3" in x for x in ls[n:]), 300)
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
        assert proc.returncode == 0, "".join(out.lines[-60:])

        # The finished study, as the same dashboard shows it: every trial, the pruned ones marked so.
        df = pd.read_parquet(tmp_path / "runs" / "d" / "results.parquet")
        pruned = int((df["status"] == "pruned").sum())
        assert pruned >= 1, df[["trial_id", "status", "epochs"]]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{study_url}/dashboard/studies/0/trials")
                page.get_by_text("6 Trials").wait_for(timeout=60_000)
                shown = page.inner_text("body")
                page.screenshot(path=tmp_path / "optuna-trials-done.png")
            finally:
                browser.close()
        states = re.findall(r"^Trial \d+\n(\w+)$", shown, re.M)
        assert len(states) == 6 and states.count("Pruned") == pruned, shown[:1500]
        assert states.count("Complete") == 6 - pruned and "Running" not in states
    finally:
        for p in (proc, optuna_dash):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    names = ("dashboard-token-dialog.png", "dashboard-jobs.png", "dashboard-actors.png")
    for name in (*names, "optuna-trials-running.png", "optuna-trials-done.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
