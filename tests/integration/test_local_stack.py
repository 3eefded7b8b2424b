"""The whole pipeline through the local stack over real HTTP: CRM request in, Unpod request out,
DynamoDB item written. The handlers are the ones Lambda runs; AWS is a moto server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, sign_request, standard_webhook_headers
from local.stack import ROOT, LocalStack, StackOptions

pytestmark = pytest.mark.integration
BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


NO_PHONE_DEDUPE = '{"dedupe_by_phone": false}'


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        port=0,
        retry_delay_seconds=1,
        # many records share Maria's number here: one call per phone number is tested in test_policy.py
        environment={
            "UNPOD_READ_TIMEOUT": "1.0",
            "MAX_RECEIVE_COUNT": "3",
            "CALLING_POLICY": NO_PHONE_DEDUPE,
            "RETRY_TIME_SCALE": "0.01",
        },
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
    # The template's default (IntakeDuplicateCheck=false): no read before queueing; the
    # dispatcher's claim skips the lead already called.
    assert third[1]["results"][0]["status"] == "queued"
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
        if item and item.get("status") == "failed":
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


def _wait_for_status(stack: LocalStack, lead_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    item: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        item = stack.lead(lead_id)
        # moto applies an UpdateItem's actions one by one: a read from another thread can see an
        # item half-written (real DynamoDB is atomic), so look for the status, not for the key.
        if item and item.get("status") == status:
            return item
        time.sleep(0.1)
    raise AssertionError(f"{lead_id} is {item and item.get('status')}, not {status}")


def test_a_hubspot_contact_creation_event_is_enriched_from_the_api_and_called(stack):
    assert stack.hubspot_api is not None
    stack.hubspot_api.add_contact(
        "777001", {"firstname": "Grace", "lastname": "Hopper", "phone": "+1 212 555 0100", "jobtitle": "Rear Admiral"}
    )
    body = json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 62515,
                "appId": 3,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.creation",
                "attemptNumber": 0,
                "objectId": 777001,
                "changeFlag": "NEW",
            }
        ]
    ).encode()
    url = f"https://{stack.api_url.split('://', 1)[1]}/webhooks/hubspot"
    headers = sign_request("hubspot", "POST", url, {"content-type": "application/json"}, body)

    status, answer = stack.post("/webhooks/hubspot", body, headers)

    assert status == 200, answer
    item = _wait_for_status(stack, "hubspot#62515:777001", "call_requested")
    assert item["document"]["name"] == "Grace Hopper"
    assert item["document"]["occupation"] == "Rear Admiral"
    [task] = tasks_for_document(stack, "hubspot-62515:777001")
    assert task["input"]["contact_number"] == "+12125550100"


def test_a_hubspot_event_whose_contact_was_deleted_is_recorded_rejected(stack):
    body = json.dumps(
        [
            {
                "eventId": 9,
                "portalId": 62515,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.creation",
                "objectId": 404404,
            }
        ]
    ).encode()
    url = f"https://{stack.api_url.split('://', 1)[1]}/webhooks/hubspot"

    status, _ = stack.post(
        "/webhooks/hubspot", body, sign_request("hubspot", "POST", url, {"content-type": "application/json"}, body)
    )

    assert status == 200
    item = _wait_for_status(stack, "hubspot#62515:404404", "rejected")
    assert "no longer exists" in item["reason"]
    assert tasks_for_document(stack, "hubspot-62515:404404") == []


def test_a_pipedrive_lead_is_called_with_the_persons_phone_and_organisation(stack):
    assert stack.pipedrive_api is not None
    stack.pipedrive_api.add_organization({"id": 4242, "name": "Analytical Engines Ltd"})
    stack.pipedrive_api.add_person(
        {
            "id": 4243,
            "name": "Ada Lovelace",
            "org_id": 4242,
            "phones": [{"label": "work", "value": "+44 20 7946 0958", "primary": True}],
            "emails": [],
        }
    )
    event = json.loads((ROOT / "events" / "pipedrive-v2-lead.json").read_text())
    payload = json.loads(event["body"])
    payload["data"]["person_id"], payload["data"]["organization_id"] = 4243, 4242
    payload["meta"]["id"] = str(uuid.uuid4())
    body = json.dumps(payload).encode()
    headers = sign_request("pipedrive", "POST", "", {"content-type": "application/json"}, body)

    status, answer = stack.post("/webhooks/pipedrive", body, headers)

    assert status == 200, answer
    item = _wait_for_status(stack, "pipedrive#8087566-person-4243", "call_requested")
    assert item["document"]["name"] == "Ada Lovelace"
    assert item["document"]["company_name"] == "Analytical Engines Ltd"
    assert item["document"]["contact_number"] == "+442079460958"


def test_pipedrive_gets_200_even_for_a_body_it_cannot_use_but_401_for_bad_credentials(stack):
    good = sign_request("pipedrive", "POST", "", {"content-type": "application/json"}, b"{")
    bad = {
        "content-type": "application/json",
        "authorization": "Basic " + base64.b64encode(b"pd-webhook:wrong").decode(),
    }

    assert stack.post("/webhooks/pipedrive", b"{not json", good)[0] == 200
    assert stack.post("/webhooks/pipedrive", b"{}", bad)[0] == 401


def tasks_for_document(stack: LocalStack, document_id: str) -> list[dict[str, Any]]:
    assert stack.sandbox is not None
    return [task for task in stack.sandbox.created_tasks if task["input"]["document_id"] == document_id]


def test_a_lead_created_event_on_the_bus_is_called(stack):
    sample = json.loads((ROOT / "events" / "eventbridge-lead-created.json").read_text())
    sample["detail"]["id"] = f"eb-{uuid.uuid4().hex[:8]}"
    sample["detail"]["phone"] = "+1 512 555 0188"

    result = stack.put_event(sample)

    assert [r["status"] for r in result["results"]] == ["queued"]
    item = _wait_for_status(stack, f"eventbridge#{sample['detail']['id']}", "call_requested")
    assert item["document"]["contact_number"] == "+15125550188"


def test_a_malformed_event_fails_the_invocation_for_the_dead_letter_queue(stack):
    sample = json.loads((ROOT / "events" / "eventbridge-lead-created.json").read_text())
    sample["detail"] = "{not json"

    result = stack.put_event(sample)

    assert result["error"] == "EventRejectedError"
