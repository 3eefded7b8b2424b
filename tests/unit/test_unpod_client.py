"""The Unpod client against the sandbox over real HTTP: every documented outcome, retries and limits."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from lead_caller.unpod import UnpodClient, UnpodCredentials
from local.unpod_sandbox import EXPIRED_TOKEN
from tests.conftest import fast_client

DOC = {"name": "Maria Gonzalez", "contact_number": "+15125550142", "document_id": "generic-lead-1"}
CONTEXT = "Call the lead and discuss the project requirements."
NOW = {"type": "now"}


def create(client: UnpodClient, credentials: UnpodCredentials, documents=None, **kwargs):
    return client.create_task(
        credentials,
        documents or [DOC],
        context=kwargs.pop("context", CONTEXT),
        schedule=kwargs.pop("schedule", NOW),
        **kwargs,
    )


def test_success_returns_run_and_task_ids_and_sends_the_documented_request(client, credentials, sandbox):
    outcome = create(
        client, credentials, [DOC, {**DOC, "document_id": "generic-lead-2", "contact_number": "+15125550199"}]
    )

    assert outcome.kind == "accepted"
    assert outcome.run_id is not None
    assert outcome.run_id.startswith("R")
    assert len(outcome.run_id) == 33
    assert len(outcome.task_ids) == 2
    request = sandbox.requests[0]
    assert request["method"] == "POST"
    assert request["path"] == f"/api/v2/platform/spaces/{sandbox.space_token}/tasks/create/"
    assert request["headers"]["authorization"] == f"Token {sandbox.api_token}"
    assert request["headers"]["org-handle"] == sandbox.org_handle
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {
        "pilot": sandbox.pilots[0],
        "documents": [DOC, {**DOC, "document_id": "generic-lead-2", "contact_number": "+15125550199"}],
        "context": CONTEXT,
        "schedule": NOW,
    }


def test_org_handle_is_left_out_when_not_configured(client, credentials, sandbox):
    outcome = create(client, UnpodCredentials(credentials.api_token, credentials.space_token, None, credentials.pilot))

    assert outcome.kind == "accepted"
    assert "org-handle" not in sandbox.requests[0]["headers"]


def test_create_task_path_is_configurable_for_the_older_endpoint(sandbox, credentials):
    client = fast_client(sandbox.base_url, create_task_path="/spaces/{space_token}/tasks/")

    outcome = create(client, credentials)

    assert outcome.kind == "accepted"
    assert sandbox.requests[0]["path"].endswith("/tasks/")


@pytest.mark.parametrize(
    ("change", "status", "message_part"),
    [
        ({"api_token": "wrong"}, 401, ""),
        ({"api_token": EXPIRED_TOKEN}, 403, "expired"),
        ({"space_token": "NOSUCHSPACE"}, 206, "Invalid Space Token"),
        ({"pilot": "no-such-agent"}, 404, ""),
    ],
)
def test_permanent_failures_are_not_retried_and_keep_unpods_message(
    client, credentials, sandbox, change, status, message_part
):
    bad = UnpodCredentials(
        api_token=change.get("api_token", credentials.api_token),
        space_token=change.get("space_token", credentials.space_token),
        org_handle=credentials.org_handle,
        pilot=change.get("pilot", credentials.pilot),
    )

    outcome = create(client, bad)

    assert outcome.kind == "permanent"
    assert outcome.http_status == status
    assert message_part.lower() in outcome.message.lower()
    assert outcome.message
    assert len(sandbox.requests) == 1  # no retry
    assert sandbox.created_tasks == []


def test_http_206_validation_error_is_a_failure_with_the_errors(client, credentials, sandbox):
    outcome = create(client, credentials, [DOC, {**DOC, "contact_number": "12345", "document_id": "x"}])

    assert outcome.kind == "permanent"
    assert outcome.http_status == 206
    assert outcome.is_validation_error
    assert outcome.errors
    assert sandbox.created_tasks == []


def test_blank_context_is_refused_by_the_backend(client, credentials):
    outcome = create(client, credentials, context="   ")

    assert outcome.kind == "permanent"
    assert outcome.http_status == 206


def test_schedule_in_the_past_is_a_permanent_400_that_splitting_cannot_fix(client, credentials):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    outcome = create(
        client, credentials, schedule={"type": "custom", "calling_date": yesterday, "calling_time": "10:00:00+05:30"}
    )

    assert outcome.kind == "permanent"
    assert outcome.http_status == 400
    assert outcome.message.startswith("Task Creation Failed")
    assert not outcome.is_validation_error


def test_429_is_retried_honouring_retry_after_then_succeeds(client, credentials, sandbox):
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "0.1"})

    started = time.monotonic()
    outcome = create(client, credentials)

    assert outcome.kind == "accepted"
    assert [request["status"] for request in sandbox.requests] == [429, 200]
    assert time.monotonic() - started >= 0.1  # it waited as told
    assert len(sandbox.created_tasks) == 1


def test_retry_after_longer_than_the_cap_is_returned_not_retried_early(sandbox, credentials):
    client = fast_client(sandbox.base_url, max_retry_after=0.05, max_retries=1)
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "3600"})

    outcome = create(client, credentials)

    assert outcome.kind == "transient"  # never called again before Retry-After
    assert outcome.retry_after == 3600  # the dispatcher delays the message that long
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_succeeds(client, credentials, sandbox, status):
    sandbox.enqueue_fault("status", status=status)

    outcome = create(client, credentials)

    assert outcome.kind == "accepted"
    assert [request["status"] for request in sandbox.requests] == [status, 200]


def test_retries_are_limited_and_end_transient_with_retry_after(client, credentials, sandbox):
    for _ in range(5):
        sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "0"})

    outcome = create(client, credentials)

    assert outcome.kind == "transient"
    assert outcome.http_status == 429
    assert outcome.retry_after == 0
    assert len(sandbox.requests) == 3  # the first try + max_retries=2
    assert sandbox.created_tasks == []


def test_zero_retries_means_a_single_attempt(sandbox, credentials):
    client = fast_client(sandbox.base_url, max_retries=0)
    sandbox.enqueue_fault("status", status=503)

    outcome = create(client, credentials)

    assert outcome.kind == "transient"
    assert len(sandbox.requests) == 1


def test_connection_refused_is_transient(credentials):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = fast_client(f"http://127.0.0.1:{port}/api/v2/platform", max_retries=1)

    outcome = create(client, credentials)

    assert outcome.kind == "transient"
    assert outcome.failure_kind == "connection"


def test_timeout_after_the_request_was_sent_is_unknown_and_not_resent(sandbox, credentials):
    client = fast_client(sandbox.base_url, read_timeout=0.3)
    sandbox.enqueue_fault("delay", seconds=1.0)

    outcome = create(client, credentials)

    assert outcome.kind == "unknown"
    assert outcome.failure_kind == "timeout"
    assert len(sandbox.requests) == 1  # never resent: Unpod may have created it
    assert len(sandbox.created_tasks) == 1  # ...and here it did


def test_dropped_connection_after_sending_is_unknown(client, credentials, sandbox):
    sandbox.enqueue_fault("drop")

    outcome = create(client, credentials)

    assert outcome.kind == "unknown"
    assert len(sandbox.requests) == 1


def test_http_200_without_run_id_is_not_success(client, credentials, sandbox):
    sandbox.enqueue_fault("status", status=200, body='{"status_code": 200, "message": "ok", "data": {}}')

    outcome = create(client, credentials)

    assert outcome.kind == "permanent"
    assert outcome.run_id is None


def test_find_task_locates_a_created_task_by_document_id(client, credentials):
    since = datetime.now(UTC) - timedelta(minutes=1)
    created = create(
        client, credentials, [DOC, {**DOC, "document_id": "generic-other", "contact_number": "+15125550199"}]
    )

    found = client.find_task(credentials, "generic-lead-1", since)

    assert found is not None
    run_id, task_ids = found
    assert run_id == created.run_id
    assert task_ids == (created.task_ids[0],)
    assert client.find_task(credentials, "generic-never-sent", since) is None


def test_find_task_ignores_runs_older_than_since(client, credentials):
    create(client, credentials)

    assert client.find_task(credentials, "generic-lead-1", datetime.now(UTC) + timedelta(minutes=1)) is None
