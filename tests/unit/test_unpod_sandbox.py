"""Tests for the local Unpod sandbox (local/unpod_sandbox.py), over real HTTP."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.unpod_sandbox import EXPIRED_TOKEN, UnpodSandbox

TOKEN = "sandbox-api-token"
SPACE = "SANDBOXSPACE0000000000001"
PILOT = "sandbox-agent"
RUN_ID = re.compile(r"R[0-9a-f]{32}")
TASK_ID = re.compile(r"T[0-9a-f]{32}")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Reply:
    """A decoded HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: Any


def call(
    method: str,
    url: str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    token: str | None = TOKEN,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """Send one request; never raises on HTTP error statuses."""
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, reply_headers, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, reply_headers, text = error.code, dict(error.headers), error.read()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text.decode()
    return Reply(status, reply_headers, body)


def task_body(*contacts: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A valid Create Task body (one default contact unless given)."""
    default = {"name": "Asha Rao", "contact_number": "+919876543210", "document_id": "lead-1"}
    docs = list(contacts) or [default]
    return {
        "pilot": PILOT,
        "context": "Qualify the lead.",
        "documents": docs,
        "schedule": {"type": "now"},
    } | overrides


@pytest.fixture
def sandbox() -> Iterator[UnpodSandbox]:
    with UnpodSandbox() as sb:
        yield sb


def create_url(sb: UnpodSandbox, space: str = SPACE) -> str:
    return f"{sb.base_url}/spaces/{space}/tasks/create/"


def test_base_url_and_lifecycle() -> None:
    sb = UnpodSandbox().start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v2/platform", sb.base_url)
        with pytest.raises(RuntimeError):
            sb.start()
    finally:
        sb.stop()
    sb.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = sb.base_url


def test_create_task_success(sandbox: UnpodSandbox) -> None:
    contacts = (
        {"name": "Asha", "contact_number": "+919876543210", "document_id": "lead-1", "labels": ["warm"]},
        {"name": "Ben", "contact_number": "+14155550123"},
    )
    reply = call("POST", create_url(sandbox), task_body(*contacts), headers={"Org-Handle": "sandbox-org"})
    assert reply.status == 200
    assert reply.body["status_code"] == 200
    assert reply.body["message"] == "Task Created Successfully"
    data = reply.body["data"]
    assert RUN_ID.fullmatch(data["run_id"])
    assert len(data["task_ids"]) == 2
    assert all(TASK_ID.fullmatch(t) for t in data["task_ids"])
    assert data["status"] == "pending"
    tasks = sandbox.created_tasks
    assert [t["task_id"] for t in tasks] == data["task_ids"]
    assert {t["run_id"] for t in tasks} == {data["run_id"]}
    assert [t["ref_id"] for t in tasks] == ["lead-1", None]
    assert tasks[0]["input"] == contacts[0]
    assert tasks[0]["status"] == "pending"
    assert tasks[0]["created"]
    (recorded,) = sandbox.requests
    assert recorded["method"] == "POST"
    assert recorded["path"].endswith("/tasks/create/")
    assert recorded["headers"]["authorization"] == f"Token {TOKEN}"
    assert recorded["headers"]["org-handle"] == "sandbox-org"
    assert recorded["json"]["documents"] == list(contacts)
    assert recorded["status"] == 200
    assert recorded["fault"] is None


def test_old_alias_path_and_schedules(sandbox: UnpodSandbox) -> None:
    alias = f"{sandbox.base_url}/spaces/{SPACE}/tasks/"
    assert call("POST", alias, task_body()).status == 200
    assert call("POST", create_url(sandbox), task_body(schedule={"type": "auto"})).status == 200
    future = {"type": "custom", "calling_date": "2099-01-01", "calling_time": "10:30:00+05:30"}
    assert call("POST", create_url(sandbox), task_body(schedule=future)).status == 200
    body = task_body()
    del body["schedule"]
    assert call("POST", create_url(sandbox), body).status == 200
    assert len(sandbox.created_tasks) == 4


def test_status_as_map_variant() -> None:
    with UnpodSandbox(status_as_map=True) as sb:
        data = call("POST", create_url(sb), task_body()).body["data"]
        assert data["status"] == {data["task_ids"][0]: "pending"}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_401(sandbox: UnpodSandbox, token: str | None) -> None:
    reply = call("POST", create_url(sandbox), task_body(), token=token)
    assert reply.status == 401
    assert reply.body == {"status_code": 401, "message": "Invalid token.", "data": {}}
    assert sandbox.created_tasks == []
    assert sandbox.requests[0]["status"] == 401


def test_bearer_auth_is_401(sandbox: UnpodSandbox) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    reply = call("POST", create_url(sandbox), task_body(), token=None, headers=bearer)
    assert reply.status == 401


def test_expired_token_is_403(sandbox: UnpodSandbox) -> None:
    reply = call("POST", create_url(sandbox), task_body(), token=EXPIRED_TOKEN)
    assert reply.status == 403
    assert reply.body["message"] == "Token has expired."


def test_wrong_org_handle_is_403(sandbox: UnpodSandbox) -> None:
    reply = call("POST", create_url(sandbox), task_body(), headers={"Org-Handle": "other.org"})
    assert reply.status == 403
    assert reply.body["message"] == "You do not have access to this organization"
    assert sandbox.created_tasks == []


def test_invalid_space_is_206(sandbox: UnpodSandbox) -> None:
    reply = call("POST", create_url(sandbox, "NOSUCHSPACE"), task_body())
    assert reply.status == 206
    assert reply.body == {"status_code": 206, "message": "Invalid Space Token", "data": {}}
    assert sandbox.created_tasks == []


def test_bad_contact_number_is_206_and_creates_nothing(sandbox: UnpodSandbox) -> None:
    good = {"name": "Asha", "contact_number": "+919876543210"}
    bad = {"name": "Ben", "contact_number": "98765 43210"}
    reply = call("POST", create_url(sandbox), task_body(good, bad))
    assert reply.status == 206
    errors = {"documents": {"1": {"contact_number": ["Enter a valid phone number."]}}}
    assert reply.body == {
        "status_code": 206,
        "message": "There is some Validation error",
        "data": {"errors": errors},
        "errors": errors,
    }
    assert sandbox.created_tasks == []
    assert sandbox.runs == []
    assert call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/").body["count"] == 0


def test_missing_name_is_206(sandbox: UnpodSandbox) -> None:
    reply = call("POST", create_url(sandbox), task_body({"contact_number": "+919876543210"}))
    assert reply.status == 206
    assert reply.body["errors"] == {"documents": {"0": {"name": ["This field is required."]}}}


@pytest.mark.parametrize("documents", [None, [], "x"])
def test_bad_documents_is_206(sandbox: UnpodSandbox, documents: Any) -> None:
    body = task_body()
    if documents is None:
        del body["documents"]
    else:
        body["documents"] = documents
    reply = call("POST", create_url(sandbox), body)
    assert reply.status == 206
    assert "documents" in reply.body["errors"]


@pytest.mark.parametrize("context", [None, "", "   "])
def test_blank_or_missing_context_is_206(sandbox: UnpodSandbox, context: str | None) -> None:
    body = task_body()
    if context is None:
        del body["context"]
    else:
        body["context"] = context
    reply = call("POST", create_url(sandbox), body)
    assert reply.status == 206
    assert reply.body["message"] == "There is some Validation error"
    assert list(reply.body["errors"]) == ["context"]
    assert sandbox.created_tasks == []


@pytest.mark.parametrize("pilot", [None, "no-such-agent"])
def test_unknown_pilot_is_404(sandbox: UnpodSandbox, pilot: str | None) -> None:
    body = task_body(pilot=pilot)
    reply = call("POST", create_url(sandbox), body)
    assert reply.status == 404
    assert reply.body["message"] == "Agent not found"


def test_non_json_body_is_400(sandbox: UnpodSandbox) -> None:
    reply = call("POST", create_url(sandbox), raw=b"not json")
    assert reply.status == 400
    assert sandbox.requests[0]["json"] is None
    assert sandbox.requests[0]["body"] == "not json"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            {"type": "custom", "calling_date": "2020-01-01", "calling_time": "10:00:00+05:30"},
            "Task Creation Failed: calling time must be in the future",
        ),
        ({"type": "custom", "calling_date": "01/01/2099", "calling_time": "10:00"}, None),
        ({"type": "later"}, None),
    ],
)
def test_bad_schedule_is_400(sandbox: UnpodSandbox, schedule: dict[str, str], message: str | None) -> None:
    reply = call("POST", create_url(sandbox), task_body(schedule=schedule))
    assert reply.status == 400
    assert reply.body["message"].startswith("Task Creation Failed")
    if message is not None:
        assert reply.body["message"] == message
    assert sandbox.created_tasks == []


def test_status_fault_429_with_retry_after_then_normal(sandbox: UnpodSandbox) -> None:
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "1"})
    sandbox.enqueue_fault("status", status=502, body="<html>Bad Gateway</html>")
    first = call("POST", create_url(sandbox), task_body())
    assert first.status == 429
    assert first.headers["Retry-After"] == "1"
    second = call("POST", create_url(sandbox), task_body())
    assert second.status == 502
    assert second.body == "<html>Bad Gateway</html>"
    assert sandbox.created_tasks == []
    assert call("POST", create_url(sandbox), task_body()).status == 200
    assert [(r["status"], r["fault"]) for r in sandbox.requests] == [
        (429, "status"),
        (502, "status"),
        (200, None),
    ]
    assert len(sandbox.created_tasks) == 1


def test_faults_only_hit_create_task(sandbox: UnpodSandbox) -> None:
    sandbox.enqueue_fault("status", status=500)
    assert call("GET", f"{sandbox.base_url}/agents/").status == 200
    assert call("POST", create_url(sandbox), task_body()).status == 500


def test_delay_fault_creates_task_but_client_times_out(sandbox: UnpodSandbox) -> None:
    sandbox.enqueue_fault("delay", seconds=0.3)
    with pytest.raises(TimeoutError):
        call("POST", create_url(sandbox), task_body(), timeout=0.1)
    assert len(sandbox.created_tasks) == 1
    assert sandbox.requests[0]["status"] == 200
    assert sandbox.requests[0]["fault"] == "delay"


def test_delay_fault_answers_late(sandbox: UnpodSandbox) -> None:
    sandbox.enqueue_fault("delay", seconds=0.2)
    started = time.monotonic()
    reply = call("POST", create_url(sandbox), task_body())
    assert reply.status == 200
    assert time.monotonic() - started >= 0.2


def test_drop_fault_closes_connection(sandbox: UnpodSandbox) -> None:
    sandbox.enqueue_fault("drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        call("POST", create_url(sandbox), task_body())
    assert sandbox.created_tasks == []
    assert sandbox.requests[0]["status"] is None
    assert sandbox.requests[0]["fault"] == "drop"
    assert call("POST", create_url(sandbox), task_body()).status == 200


def test_enqueue_fault_validates(sandbox: UnpodSandbox) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        sandbox.enqueue_fault("explode")
    with pytest.raises(ValueError, match="needs status"):
        sandbox.enqueue_fault("status")
    with pytest.raises(ValueError, match="needs seconds"):
        sandbox.enqueue_fault("delay", seconds=-1)
    with pytest.raises(ValueError, match="unknown option"):
        sandbox.enqueue_fault("drop", status=500)
    assert sandbox.pending_faults == []


def test_runs_and_run_tasks(sandbox: UnpodSandbox) -> None:
    first = call("POST", create_url(sandbox), task_body()).body["data"]
    docs = ({"name": "C", "contact_number": "+14155550100", "document_id": "lead-2"},)
    second = call("POST", create_url(sandbox), task_body(*docs)).body["data"]
    runs = call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/").body
    assert runs["status_code"] == 200
    assert runs["count"] == 2
    assert [r["run_id"] for r in runs["data"]] == [second["run_id"], first["run_id"]]
    assert set(runs["data"][0]) >= {"run_id", "status", "created", "modified"}
    assert runs["data"][0]["status"] == "pending"
    page2 = call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/?page=2&page_size=1").body
    assert page2["count"] == 2
    assert [r["run_id"] for r in page2["data"]] == [first["run_id"]]

    tasks = call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/{second['run_id']}/tasks/").body
    assert tasks["status_code"] == 200
    assert tasks["count"] == 1
    (task,) = tasks["data"]
    assert task["task_id"] == second["task_ids"][0]
    assert task["run_id"] == second["run_id"]
    assert task["ref_id"] == "lead-2"
    assert task["input"] == docs[0]
    assert task["status"] == "pending"
    assert task["output"] == {}

    sandbox.update_task(task["task_id"], status="completed", output={"call_status": "completed"})
    runs = call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/").body
    assert runs["data"][0]["status"] == "completed"

    missing = call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/R{'0' * 32}/tasks/")
    assert missing.status == 404
    assert call("GET", f"{sandbox.base_url}/spaces/NOPE/runs/").status == 206
    assert call("GET", f"{sandbox.base_url}/spaces/{SPACE}/runs/", token=None).status == 401


def test_discovery_endpoints(sandbox: UnpodSandbox) -> None:
    orgs = call("GET", f"{sandbox.base_url}/organizations/").body
    assert orgs["data"][0]["domain_handle"] == "sandbox-org"
    spaces = call("GET", f"{sandbox.base_url}/spaces/", headers={"Org-Handle": "sandbox-org"}).body
    assert spaces["data"][0]["token"] == SPACE
    agents = call("GET", f"{sandbox.base_url}/agents/").body
    assert agents["data"] == [{"name": PILOT, "handle": PILOT, "type": "Voice", "state": "published"}]
    assert call("GET", f"{sandbox.base_url}/agents/", token=EXPIRED_TOKEN).status == 403


def test_unknown_paths_and_methods(sandbox: UnpodSandbox) -> None:
    unknown = call("GET", f"{sandbox.base_url}/nope/")
    assert unknown.status == 404
    assert unknown.body["status_code"] == 404
    assert call("POST", f"{sandbox.base_url}/spaces/{SPACE}/tasks/create", task_body()).status == 404
    assert call("GET", f"{sandbox.root_url}/").status == 404
    assert call("GET", create_url(sandbox)).status == 405


def test_admin_http_api(sandbox: UnpodSandbox) -> None:
    admin = sandbox.admin_url
    fault = {"kind": "status", "status": 503, "headers": {"Retry-After": "2"}}
    queued = call("POST", f"{admin}/faults", fault)
    assert queued.status == 201
    assert call("POST", f"{admin}/faults", {"kind": "nope"}).status == 400
    assert call("GET", f"{admin}/faults").body["count"] == 1
    reply = call("POST", create_url(sandbox), task_body())
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "2"
    assert call("POST", create_url(sandbox), task_body()).status == 200

    requests = call("GET", f"{admin}/requests").body
    assert [r["status"] for r in requests["data"]] == [503, 200]
    tasks = call("GET", f"{admin}/tasks").body
    assert tasks["count"] == 1
    assert tasks["data"][0]["ref_id"] == "lead-1"
    task_id = tasks["data"][0]["task_id"]
    updated = call("POST", f"{admin}/tasks/{task_id}", {"status": "completed"})
    assert updated.status == 200
    assert updated.body["status"] == "completed"
    assert call("GET", f"{admin}/config").body["space_token"] == SPACE

    assert call("POST", f"{admin}/reset").status == 200
    assert call("GET", f"{admin}/requests").body == {"count": 0, "data": []}
    assert sandbox.created_tasks == []
    assert sandbox.pending_faults == []


def test_reset_clears_everything(sandbox: UnpodSandbox) -> None:
    call("POST", create_url(sandbox), task_body())
    sandbox.enqueue_fault("drop")
    sandbox.reset()
    assert (sandbox.requests, sandbox.created_tasks, sandbox.pending_faults) == ([], [], [])


def test_server_is_silent(sandbox: UnpodSandbox, capfd: pytest.CaptureFixture[str]) -> None:
    call("POST", create_url(sandbox), task_body())
    call("GET", f"{sandbox.base_url}/nope/")
    sandbox.enqueue_fault("drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        call("POST", create_url(sandbox), task_body())
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_main_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.unpod_sandbox", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(7)]
        match = re.search(r"(http://127\.0\.0\.1:\d+/api/v2/platform)", banner[0])
        assert match, banner
        assert call("GET", f"{match.group(1)}/agents/").status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert err == ""
    assert any(TOKEN in line for line in banner)
    assert any(SPACE in line for line in banner)
