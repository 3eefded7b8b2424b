"""`make run`'s entry point as a user starts it: a separate process, real ports, the demo output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_make_run_starts_everything_sends_the_samples_and_shows_the_outcome():
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    completed = subprocess.run(
        [sys.executable, "-m", "local.stack", "--port", "0", "--exit-after-demo"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    out = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "API:          http://127.0.0.1:" in out
    assert "embedded AWS: http://127.0.0.1:" in out
    assert "table:        lead-caller-leads" in out
    assert "=== the Unpod sandbox received" in out
    assert "/tasks/create/ -> HTTP 200" in out
    assert '"status": "completed"' in out  # the sandbox's simulated calls end, reported by the agent webhook
    assert "Call Completed event(s) on the bus" in out
    assert '"status": "rejected"' in out
    assert "sandbox-api-token" not in out  # the printed Unpod request has its credentials masked
    assert "Traceback" not in completed.stderr


def test_make_run_refuses_a_real_unpod_url_without_credentials():
    completed = subprocess.run(
        [sys.executable, "-m", "local.stack", "--unpod-base-url", "https://unpod.invalid/api", "--no-demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert "--config" in completed.stderr
