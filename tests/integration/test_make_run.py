"""`make run`'s entry point as a user starts it: a separate process, real ports, the demo output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_make_run_starts_everything_sends_the_samples_and_shows_the_outcome(tmp_path):
    log_file = tmp_path / "run.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.stack",
            "--port",
            "0",
            "--exit-after-demo",
            "--log-file",
            str(log_file),
            "--state-file",
            str(tmp_path / "stack.json"),
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    out = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "API:           http://127.0.0.1:" in out
    assert "embedded AWS:  http://127.0.0.1:" in out
    assert "table:         lead-caller-leads" in out
    assert "=== the Unpod sandbox received" in out
    # every webhook sample in events/ was sent, and answered 2xx (202, or 200 where a CRM wants it)
    samples = [path for path in (ROOT / "events").glob("*.json") if _is_webhook_sample(path)]
    answers = re.findall(r"^=== [\w-]+: POST /webhooks/\S+ -> HTTP (\d+)", out, re.MULTILINE)
    assert len(answers) == len(samples) >= 3
    assert all(code.startswith("2") for code in answers), answers
    assert "/tasks/create/ -> HTTP 200" in out
    assert re.search(r"^=== \d+ Call Completed event\(s\) on the bus: .*completed \d+", out, re.MULTILINE)
    assert re.search(r"^=== write-backs: hubspot notes [1-9]", out, re.MULTILINE)
    assert re.search(r"^SOURCE +RECORD +STATUS +REASON$", out, re.MULTILINE)
    # the sandbox's simulated calls end (agent webhook, re-calls): no lead is left open
    assert re.search(r"^generic +web-1001 +completed", out, re.MULTILINE)
    # the sandbox's calls end (agent webhook, re-calls): the only open lead is the one planned for later
    open_rows = re.findall(
        r"^\S+ +\S+ +(?:dispatching|call_requested|in_progress|recall_pending) .*$", out, re.MULTILINE
    )
    assert len(open_rows) == 1, open_rows
    assert "outside calling hours" in open_rows[0]
    assert re.search(r"^generic +zap-lead-20260101-0008 +suppressed ", out, re.MULTILINE)
    assert re.search(r" attempt [23]: ", out)  # re-called after no answer / busy
    assert re.search(r"^generic +web-1003 +rejected +contact_number: missing$", out, re.MULTILINE)
    assert '{"level"' not in out  # the JSON logs went to the file the banner names
    assert f"JSON logs:     {log_file}" in out
    logs = log_file.read_text()
    assert '"message":"call requested"' in logs
    assert '"status": "completed"' in logs  # the full items are in the log file
    assert "sandbox-api-token" not in out + logs  # the printed Unpod request has its credentials masked
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


def test_ctrl_c_twice_stops_the_stack_without_a_traceback(tmp_path):
    import signal
    import time

    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    ports = ["--port", "0", "--aws-port", "0", "--sandbox-port", "0"]
    command = [sys.executable, "-m", "local.stack", *ports, "--no-demo", "--log-file", str(tmp_path / "run.log")]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # started with SIGINT ignored (`make run &` in a script): Ctrl-C must still stop it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while "Serving; press Ctrl-C to stop." not in process.stdout.readline():
            assert process.poll() is None, "the stack stopped before serving"
            assert time.monotonic() < deadline, "the stack did not start"
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # impatient: again while it stops
        _, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, errors[-2000:]
    assert "Traceback" not in errors


def _is_webhook_sample(path: Path) -> bool:
    raw_path = json.loads(path.read_text()).get("rawPath")
    return isinstance(raw_path, str) and raw_path.startswith("/webhooks/")
