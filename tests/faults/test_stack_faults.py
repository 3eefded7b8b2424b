"""Fault matrix, whole stack: webhooks over real HTTP into the local stack (moto server, the
dispatch poller, the handlers Lambda runs) against the Unpod sandbox's fault windows.

Time is compressed through the retry schedule's configuration: RETRY_TIME_SCALE = 1/3600, so a
simulated hour of outage lasts one second and the 30 s .. 1 h schedule steps become whole seconds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3

from local.signing import LOCAL_BEARER_TOKEN
from local.stack import LocalStack, StackOptions

pytestmark = [pytest.mark.faults, pytest.mark.integration]

BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}
HOUR = 1.0  # real seconds per simulated hour
ENVIRONMENT = {
    "RETRY_TIME_SCALE": str(HOUR / 3600),
    "RETRY_HORIZON_SECONDS": "3600",  # one simulated hour: every outage below outlasts the horizon
    "CIRCUIT_FAILURE_THRESHOLD": "3",
    "UNPOD_MAX_RETRIES": "0",
    "UNPOD_READ_TIMEOUT": "1.0",
    "UNPOD_REQUESTS_PER_SECOND": "0",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(port=0, retry_delay_seconds=1, environment=ENVIRONMENT)) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(stack: LocalStack) -> None:
    assert stack.sandbox is not None
    assert stack.resources is not None
    stack.wait_idle(timeout=60)
    stack.sandbox.reset()
    stack.sandbox.outage_until = 0.0
    stack.client("dynamodb").delete_item(TableName=stack.resources.table_name, Key={"pk": {"S": "circuit#unpod"}})


def new_lead(index: int) -> dict[str, Any]:
    return {
        "id": f"fm-{uuid.uuid4().hex[:12]}",
        "first_name": "Lead",
        "last_name": f"No{index}",
        "phone": f"+1 512 {2000000 + index:07d}",
        "email": f"lead{index}@example.com",
    }


def post(stack: LocalStack, body: dict[str, Any]) -> int:
    return stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)[0]


def calls(stack: LocalStack) -> Counter[str]:
    assert stack.sandbox is not None
    return Counter(task["input"]["document_id"] for task in stack.sandbox.created_tasks)


def wait_until_called(stack: LocalStack, bodies: list[dict[str, Any]], timeout: float) -> None:
    wanted = {f"generic-{body['id']}" for body in bodies}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted <= set(calls(stack)):
        time.sleep(0.1)
    stack.wait_idle(timeout=30)


def statuses(stack: LocalStack, bodies: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str((stack.lead(f"generic#{body['id']}") or {}).get("status")) for body in bodies)


def test_unpod_outage_longer_than_the_horizon(stack, record_figure, faults_profile):
    assert stack.sandbox is not None
    hours, count = (3, 15) if faults_profile == "quick" else (24, 200)
    stack.sandbox.start_outage(hours * HOUR)
    bodies = [new_lead(i) for i in range(count)]
    assert all(post(stack, body) == 202 for body in bodies)

    wait_until_called(stack, bodies, timeout=hours * HOUR + 60)

    per_lead = calls(stack)
    states = statuses(stack, bodies)
    given_up = states["failed"] + states["outcome_unknown"]
    called_once = sum(1 for body in bodies if per_lead[f"generic-{body['id']}"] == 1)
    doubled = sum(1 for n in per_lead.values() if n > 1)
    refused = sum(1 for r in stack.sandbox.requests if r["status"] == 503)
    case = f"Unpod outage of {hours} h (simulated)"
    record_figure(case, f"leads given up, of {count}", given_up, "0", given_up == 0)
    record_figure(case, "leads called once after recovery", called_once, str(count), called_once == count)
    record_figure(case, "second calls", doubled, "0", doubled == 0)
    record_figure(case, "Create Task requests refused (circuit)", refused, "informative", True)
    assert (given_up, called_once, doubled) == (0, count, 0)


def test_token_rejected_then_the_secret_fixed(stack, record_figure, faults_profile):
    assert stack.sandbox is not None
    assert stack.resources is not None
    hours, count = (2, 10) if faults_profile == "quick" else (12, 100)
    old = stack.sandbox.api_token
    stack.sandbox.api_token = f"rotated-{uuid.uuid4().hex[:8]}"  # the old token is now refused (401)
    try:
        bodies = [new_lead(100 + i) for i in range(count)]
        assert all(post(stack, body) == 202 for body in bodies)
        time.sleep(hours * HOUR)
        rejected = sum(1 for r in stack.sandbox.requests if r["status"] == 401)
        failed_while_rejected = statuses(stack, bodies)["failed"]
        secret = {
            "api_token": stack.sandbox.api_token,
            "space_token": stack.sandbox.space_token,
            "org_handle": stack.sandbox.org_handle,
            "pilot": stack.sandbox.pilots[0],
        }
        stack.client("secretsmanager").put_secret_value(
            SecretId=stack.resources.unpod_secret_id, SecretString=json.dumps(secret)
        )  # the user fixes the secret; no redeploy, no restart

        wait_until_called(stack, bodies, timeout=60)
    finally:
        stack.sandbox.api_token = old
        stack.client("secretsmanager").put_secret_value(
            SecretId=stack.resources.unpod_secret_id,
            SecretString=json.dumps({**secret, "api_token": old}),
        )

    per_lead = calls(stack)
    states = statuses(stack, bodies)
    called_once = sum(1 for body in bodies if per_lead[f"generic-{body['id']}"] == 1)
    case = f"token rejected for {hours} h (simulated), then fixed"
    record_figure(case, "401 answers while rejected", rejected, "> 0", rejected > 0)
    record_figure(case, "leads failed permanently", states["failed"] + failed_while_rejected, "0", not states["failed"])
    record_figure(case, "leads called once after the fix", called_once, str(count), called_once == count)
    assert rejected > 0
    assert states["failed"] == failed_while_rejected == 0
    assert called_once == count


def test_429_with_retry_after_is_honoured(stack, record_figure):
    assert stack.sandbox is not None
    stack.sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "3"})
    body = new_lead(300)
    assert post(stack, body) == 202

    wait_until_called(stack, [body], timeout=30)

    requests = stack.sandbox.requests
    waited = requests[1]["received_epoch"] - requests[0]["received_epoch"] if len(requests) > 1 else 0.0
    item = stack.lead(f"generic#{body['id']}") or {}
    case = "429 with Retry-After: 3"
    record_figure(case, "seconds before the next call", waited, ">= 3", waited >= 3)
    record_figure(
        case, "lead failed", int(item.get("status") != "call_requested"), "0", item.get("status") == "call_requested"
    )
    assert requests[0]["status"] == 429
    assert requests[-1]["status"] == 200  # (a 401 between: the secret restored by the previous case, re-read)
    assert waited >= 3  # a lower bound: a slow machine only makes it later
    assert item["lead_failures"] == 0


def test_concurrent_webhooks(stack, record_figure, faults_profile):
    count = 50 if faults_profile == "quick" else 500
    bodies = [new_lead(1000 + i) for i in range(count)]
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def send(body: dict[str, Any]) -> int:
        barrier.wait()
        try:
            with urllib3.PoolManager(retries=False) as sender:  # its own connection, like an independent sender
                response = sender.request(
                    "POST", stack.api_url + "/webhooks/generic", body=json.dumps(body).encode(), headers=BEARER
                )
        except urllib3.exceptions.HTTPError as error:
            errors.append(f"{type(error).__name__}: {getattr(error, 'reason', error)}")
            return 0
        return response.status

    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(send, bodies))
    wait_until_called(stack, bodies, timeout=120)

    recorded = sum(1 for body in bodies if stack.lead(f"generic#{body['id']}") is not None)
    per_lead = calls(stack)
    called_once = sum(1 for body in bodies if per_lead[f"generic-{body['id']}"] == 1)
    accepted = sum(1 for status in answers if status == 202)
    case = f"{count} concurrent webhooks"
    record_figure(case, "answered 202", accepted, str(count), accepted == count)
    record_figure(case, "connection errors", len(errors), "0", not errors)
    record_figure(case, "lead records", recorded, str(count), recorded == count)
    record_figure(case, "leads called once", called_once, str(count), called_once == count)
    assert (accepted, len(errors), recorded, called_once) == (count, 0, count, count), sorted(set(errors))[:3]
