"""`make run` with a real Unpod base URL: no demo unless asked, REAL in the banner, no sample credentials."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, LOCAL_WEBHOOK_SECRETS
from local.stack import (
    REFUSED_SAMPLE_CREDENTIALS,
    StackOptions,
    StartError,
    main,
    options_from,
    parse_args,
    published_credentials,
    running_stack,
)
from local.unpod_sandbox import UnpodSandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def real_unpod():
    """A stand-in playing the real Unpod: anything it receives would be a real call."""
    with UnpodSandbox(api_token="real-token", space_token="REALSPACE", pilots=("real-pilot",)) as server:
        yield server


def _config(tmp_path: Path, **extra: Any) -> Path:
    config = {"unpod": {"api_token": "real-token", "space_token": "REALSPACE", "pilot": "real-pilot"}, **extra}
    path = tmp_path / "my.json"
    path.write_text(json.dumps(config))
    return path


def _run(tmp_path: Path, *args: str) -> int:
    return main(
        ["--port", "0", "--exit-after-demo", "--log-file", str(tmp_path / "run.log"), "--state-file", "", *list(args)]
    )


def test_real_unpod_runs_no_demo_and_says_calls_are_real(tmp_path, real_unpod, capsys):
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    code = _run(tmp_path, "--unpod-base-url", real_unpod.base_url, "--config", str(_config(tmp_path)))

    # main() gives the caller its signal handlers back: a test process that ran it in-process and
    # kept "ignore SIGINT" (set while stopping) passed it on to every later `make run` it started,
    # which then never stopped on Ctrl-C (test_ctrl_c_twice... timed out in loaded runs)
    assert {number: signal.getsignal(number) for number in handlers} == handlers

    out = capsys.readouterr().out
    assert code == 0
    assert f"Unpod:         {real_unpod.base_url}  *** REAL calls to real phones ***" in out
    assert "No demo" in out
    assert "=== generic" not in out
    assert real_unpod.requests == []  # not one Create Task
    assert LOCAL_BEARER_TOKEN not in out
    assert LOCAL_SIGNING_SECRET not in out


def test_real_unpod_runs_the_demo_only_when_asked(tmp_path, real_unpod, capsys):
    own = {"generic": {"bearer_token": "my-own-long-bearer-token-0123456789"}}
    config = _config(tmp_path, webhooks=own)

    assert _run(tmp_path, "--unpod-base-url", real_unpod.base_url, "--config", str(config), "--demo") == 0

    out = capsys.readouterr().out
    assert "=== generic-bearer: POST /webhooks/generic" in out


def test_real_unpod_without_webhook_credentials_refuses_the_published_samples(real_unpod):
    options = StackOptions(
        port=0,
        unpod_base_url=real_unpod.base_url,
        unpod_secret={"api_token": "real-token", "space_token": "REALSPACE", "pilot": "real-pilot"},
    )
    body = json.dumps({"contact_number": "+14155550100", "name": "Ann", "id": "x-1"}).encode()
    with running_stack(options) as stack:
        bearer = stack.post(
            "/webhooks/generic",
            body,
            {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"},
        )
        nothing = stack.post("/webhooks/hubspot", b"[]", {"content-type": "application/json"})
        assert stack.wait_idle(timeout=10)

    for status, payload in (bearer, nothing):
        assert status == 403
        assert payload == {"error": "webhooks_refused", "message": REFUSED_SAMPLE_CREDENTIALS}
    assert real_unpod.requests == []


def test_published_sample_credentials_in_the_config_are_refused_with_real_calls(tmp_path):
    assert published_credentials(LOCAL_WEBHOOK_SECRETS)  # every sample value is recognised
    assert published_credentials({"generic": {"bearer_token": "mine-0123456789"}}) == []
    config = {"unpod": {"api_token": "t"}, "webhooks": {"generic": {"signing_secret": LOCAL_SIGNING_SECRET}}}
    args = parse_args(["--port", "0", "--unpod-base-url", "https://unpod.example/api"])

    with pytest.raises(StartError, match=r"generic\.signing_secret: these sample credentials are public"):
        options_from(args, config)
    # the sandbox (no real calls) keeps accepting them
    assert options_from(parse_args(["--port", "0"]), config).webhook_secret == config["webhooks"]


def test_a_taken_port_is_one_line_with_the_fix(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--port", str(port), "--aws-port", "0", "--sandbox-port", "0", "--state-file", ""])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert f"port {port} (--port) is already in use" in err
    assert 'ARGS="--port 0"' in err


def test_an_invalid_setting_in_the_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"env": {"DEFAULT_PHONE_REGION": "Mars"}}))

    code = _run(tmp_path, "--config", str(config))

    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.out.splitlines() if line.startswith("make run:")]
    assert lines == [
        "make run: invalid configuration: DEFAULT_PHONE_REGION must be an ISO 3166 region such as US or GB, "
        "got 'MARS' (fix it in the \"env\" of --config)"
    ]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_broken_config_file_is_one_line(tmp_path, capsys, content):
    config = tmp_path / "broken.json"
    config.write_text(content)

    assert _run(tmp_path, "--config", str(config)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"make run: --config {config}")
    assert "\n" not in err
