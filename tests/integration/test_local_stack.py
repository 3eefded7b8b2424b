"""The whole pipeline through the local stack over real HTTP: CRM request in, Unpod request out,
DynamoDB item written. The handlers are the ones Lambda runs; AWS is a moto server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, standard_webhook_headers
from local.stack import LocalStack, StackOptions, demo_requests, run_demo

pytestmark = pytest.mark.integration
BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        port=0,
        retry_delay_seconds=1,
        environment={"UNPOD_READ_TIMEOUT": "1.0", "MAX_RECEIVE_COUNT": "3"},
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_sandbox(stack: LocalStack) -> None:
    assert stack.sandbox is not None
    stack.wait_idle(timeout=30)
    stack.sandbox.reset()


def lead(**overrides: Any) -> dict[str, Any]:
    return {
        "id": f"it-{uuid.uuid4().hex[:12]}",
        "first_name": "Maria",
        "last_name": "Gonzalez",
        "phone": "+1 (512) 555-0142",
        "email": "maria.gonzalez@acme-logistics.example",
        "company": "Acme Logistics",
        **overrides,
    }


def signed_post(stack: LocalStack, body: Any, secret: str = LOCAL_SIGNING_SECRET) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", **standard_webhook_headers(secret, raw)}
    return stack.post("/webhooks/generic", raw, headers)


def tasks_for(stack: LocalStack, record_id: str) -> list[dict[str, Any]]:
    assert stack.sandbox is not None
    return [task for task in stack.sandbox.created_tasks if task["input"]["document_id"] == f"generic-{record_id}"]


def test_a_signed_lead_goes_through_to_unpod_and_into_dynamodb(stack):
    body = lead()

    status, answer = signed_post(stack, body)

    assert status == 202
    assert answer["results"][0]["status"] == "queued"
    assert stack.wait_idle()
    [task] = tasks_for(stack, body["id"])
    assert task["input"]["contact_number"] == "+15125550142"
    assert task["input"]["name"] == "Maria Gonzalez"
    item = stack.lead(f"generic#{body['id']}")
    assert item is not None
    assert item["status"] == "call_requested"
    assert item["run_id"] == task["run_id"]
    assert item["task_ids"] == [task["task_id"]]


def test_a_batch_from_one_request_is_sent_as_one_create_task(stack):
    bodies = [lead(phone=f"+1 512 555 01{n:02d}") for n in range(5)]

    status, answer = stack.post("/webhooks/generic", json.dumps(bodies).encode(), BEARER)

    assert status == 202
    assert answer["accepted"] == 5
    assert stack.wait_idle()
    assert stack.sandbox is not None
    assert sum(len(r["json"]["documents"]) for r in stack.sandbox.requests) == 5
    assert len(stack.sandbox.requests) < 5  # grouped, not one request per lead


def test_duplicate_deliveries_are_answered_2xx_and_called_once(stack):
    body = lead()

    first = signed_post(stack, body)
    second = signed_post(stack, body)  # the CRM retried before we were done
    assert stack.wait_idle()
    third = signed_post(stack, body)  # ...and once more after the call
    assert stack.wait_idle()

    assert [first[0], second[0], third[0]] == [202, 202, 202]
    assert third[1]["results"][0]["status"] == "duplicate"
    assert len(tasks_for(stack, body["id"])) == 1


def test_unpod_outage_is_retried_through_sqs_redelivery(stack):
    assert stack.sandbox is not None
    for _ in range(3):  # the client's own attempts in the first delivery
        stack.sandbox.enqueue_fault("status", status=503, headers={"Retry-After": "0"})
    body = lead()

    assert stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)[0] == 202
    assert stack.wait_idle(timeout=30)

    item = stack.lead(f"generic#{body['id']}")
    assert item is not None
    assert item["status"] == "call_requested"
    assert item["attempts"] == 2
    assert len(tasks_for(stack, body["id"])) == 1


def test_timeout_after_acceptance_does_not_call_twice(stack):
    assert stack.sandbox is not None
    stack.sandbox.enqueue_fault("delay", seconds=2.5)  # longer than UNPOD_READ_TIMEOUT
    body = lead()

    assert stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)[0] == 202
    assert stack.wait_idle(timeout=30)

    assert len(tasks_for(stack, body["id"])) == 1
    item = stack.lead(f"generic#{body['id']}")
    assert item is not None
    assert item["status"] == "call_requested"
    assert item["reconciled"] is True


def test_a_lead_that_keeps_failing_ends_failed_and_in_the_dead_letter_queue(stack):
    assert stack.sandbox is not None
    for _ in range(3 * 3):  # 3 receives x 3 client attempts
        stack.sandbox.enqueue_fault("status", status=500)
    body = lead()

    assert stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)[0] == 202
    deadline = time.monotonic() + 30
    item: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        item = stack.lead(f"generic#{body['id']}")
        if item and item["status"] == "failed":
            break
        time.sleep(0.2)
    assert item is not None
    assert item["status"] == "failed"
    assert "gave up after 3 attempts" in item["reason"]
    assert stack.wait_idle(timeout=30)
    assert stack.resources is not None
    dlq = stack.client("sqs").receive_message(QueueUrl=stack.resources.dlq_url, WaitTimeSeconds=1)
    assert len(dlq.get("Messages", [])) == 1
    assert tasks_for(stack, body["id"]) == []
    stack.sandbox.reset()


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (json.dumps(lead()).encode(), {**BEARER, "authorization": "Bearer wrong"}, 401),
        (json.dumps(lead()).encode(), {"content-type": "application/json"}, 401),
        (b"{oops", BEARER, 400),
        (b"\x00\x01\x02", {**BEARER, "content-type": "application/octet-stream"}, 415),
        (b"name=Maria", {**BEARER, "content-type": "text/plain"}, 415),
    ],
)
def test_bad_requests_get_a_json_4xx_and_nothing_is_called(stack, body, headers, status):
    code, answer = stack.post("/webhooks/generic", body, headers)

    assert code == status
    assert answer["error"]
    assert answer["message"]
    assert "Traceback" not in json.dumps(answer)
    assert stack.wait_idle()
    assert stack.sandbox is not None
    assert stack.sandbox.requests == []


def test_unknown_routes_get_404(stack):
    assert stack.post("/webhooks/nosuchcrm", b"{}", BEARER)[0] == 404
    assert stack.post("/elsewhere", b"{}", BEARER)[0] == 404


def test_make_run_demo_sends_every_sample_event_through(stack):
    lines: list[str] = []

    run_demo(stack, lines.append)

    output = "\n".join(lines)
    samples = demo_requests(stack)
    assert len(samples) >= 3
    answers = re.findall(r"^=== [\w-]+: POST /webhooks/\S+ -> HTTP (\d+)$", output, re.MULTILINE)
    assert len(answers) == len(samples)
    assert all(code.startswith("2") for code in answers), answers  # 202, or 200 where a CRM wants it
    assert '"status": "call_requested"' in output
    assert '"status": "rejected"' in output
    assert "Bearer" not in output  # the demo masks credentials it prints


def test_stack_logs_carry_no_personal_data_or_secrets(stack, captured_logs):
    body = lead(phone="+1 512 555 0177", email="private.person@example.com")

    signed_post(stack, body)
    stack.post("/webhooks/generic", json.dumps(body).encode(), {**BEARER, "authorization": "Bearer not-the-token"})
    assert stack.wait_idle()

    logs = captured_logs()
    assert "webhook accepted" in logs
    assert "call requested" in logs
    for secret in ("5125550177", "555 0177", "private.person@example.com", LOCAL_BEARER_TOKEN, "not-the-token"):
        assert secret not in logs
    assert stack.sandbox is not None
    assert stack.sandbox.api_token not in logs
