"""Webhook intake with moto: authentication, malformed input, per-lead results, durability, logs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from functools import partial
from typing import Any

import boto3
import pytest

from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.observability import logger, metrics, register_secrets
from lead_caller.queue import LeadQueue
from lead_caller.secrets import webhook_credentials
from lead_caller.sources.base import WebhookRequest
from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, standard_webhook_headers

BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}
MARIA = {
    "id": "zap-lead-20260101-0001",
    "first_name": "Maria",
    "last_name": "Gonzalez",
    "email": "maria.gonzalez@acme-logistics.example",
    "phone": "+1 (512) 555-0142",
    "company": "Acme Logistics",
}


def request(body: bytes | str | Any, headers: dict[str, str] | None = None, source: str = "generic") -> WebhookRequest:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return WebhookRequest(
        source=source,
        method="POST",
        path=f"/webhooks/{source}",
        query="",
        headers=BEARER if headers is None else headers,
        body=raw,
        public_url=f"https://example.test/webhooks/{source}",
        received_at=time.time(),
    )


def signed(body: Any, secret: str = LOCAL_SIGNING_SECRET, timestamp: float | None = None) -> WebhookRequest:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", **standard_webhook_headers(secret, raw, timestamp=timestamp)}
    return request(raw, headers)


@pytest.fixture
def intake(settings) -> Intake:
    from lead_caller.store import LeadStore

    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=partial(webhook_credentials, settings),
    )


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [LeadMessage.from_json(message["Body"]) for message in messages]


def answer(reply) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(reply.body)
    return body


def test_a_bearer_authenticated_lead_is_queued_with_its_document(intake, settings):
    reply = intake.handle(request(MARIA))

    assert reply.status == 202
    assert answer(reply)["results"] == [{"index": 0, "status": "queued", "lead_id": "generic#zap-lead-20260101-0001"}]
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.name == "Maria Gonzalez"
    assert message.document.contact_number == "+15125550142"
    assert message.document.document_id == "generic-zap-lead-20260101-0001"


def test_a_standard_webhooks_signed_envelope_is_queued(intake, settings):
    envelope = {"type": "contact.created", "timestamp": "2026-01-01T00:00:00Z", "data": {**MARIA, "id": "ct_1"}}

    reply = intake.handle(signed(envelope))

    assert reply.status == 202
    assert [m.record_id for m in queued(settings)] == ["ct_1"]


@pytest.mark.parametrize(
    "make_request",
    [
        pytest.param(
            lambda: signed(MARIA, secret="whsec_" + base64.b64encode(b"another-secret-key-32-bytes!!").decode()),
            id="wrong-secret",
        ),
        pytest.param(lambda: signed(MARIA, timestamp=time.time() - 600), id="stale-timestamp"),
        pytest.param(lambda: signed(MARIA, timestamp=time.time() + 600), id="future-timestamp"),
        pytest.param(
            lambda: dataclasses.replace(signed(MARIA), body=json.dumps({**MARIA, "phone": "+15125550000"}).encode()),
            id="tampered-body",
        ),
        pytest.param(lambda: request(MARIA, {"content-type": "application/json"}), id="no-credentials"),
        pytest.param(lambda: request(MARIA, {**BEARER, "authorization": "Bearer nope"}), id="wrong-token"),
        pytest.param(
            lambda: request(MARIA, {**signed(MARIA).headers, "webhook-signature": "garbage"}), id="malformed-signature"
        ),
    ],
)
def test_unauthenticated_requests_get_401_and_queue_nothing(intake, settings, make_request):
    reply = intake.handle(make_request())

    assert reply.status == 401
    assert answer(reply)["error"] == "unauthorized"
    assert queued(settings) == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", BEARER, 400, "not valid JSON"),
        (b"", BEARER, 400, "empty"),
        (b"\xff\xfe\x00bad", BEARER, 400, "UTF-8"),
        (b'"just a string"', BEARER, 400, "expected a JSON object"),
        (b"[]", BEARER, 400, "no leads"),
        (b"[1, 2]", BEARER, 400, "lead 0"),
        (b"name=Maria", {**BEARER, "content-type": "text/plain"}, 415, "Content-Type"),
        (json.dumps([MARIA] * 101).encode(), BEARER, 413, "at most 100"),
    ],
)
def test_malformed_bodies_get_a_4xx_that_names_the_problem(intake, settings, body, headers, status, words):
    reply = intake.handle(request(body, headers))

    assert reply.status == status
    assert words in answer(reply)["message"]
    assert queued(settings) == []


def test_an_oversized_body_gets_413(intake, settings):
    intake.settings = dataclasses.replace(settings, max_body_bytes=100)

    reply = intake.handle(request({**MARIA, "notes": "x" * 200}))

    assert reply.status == 413
    assert answer(reply)["error"] == "body_too_large"


def test_an_unknown_source_gets_404(intake):
    reply = intake.handle(request(MARIA, source="nosuchcrm"))

    assert reply.status == 404
    assert "nosuchcrm" in answer(reply)["message"]


def test_some_invalid_leads_get_2xx_with_a_result_per_lead_and_are_recorded(intake, settings, store):
    leads = [MARIA, {"id": "no-phone", "name": "Nobody"}, {"id": "bad-phone", "name": "X", "phone": "12"}]

    reply = intake.handle(request(leads))

    assert reply.status == 202
    body = answer(reply)
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert [(r["status"], r.get("reason")) for r in body["results"]] == [
        ("queued", None),
        ("rejected", "contact_number: missing"),
        (
            "rejected",
            "contact_number: not a valid phone number (a national number is read as US, from DEFAULT_PHONE_REGION)",
        ),
    ]
    assert [m.record_id for m in queued(settings)] == ["zap-lead-20260101-0001"]
    item = store.get("generic#no-phone")
    assert (item["status"], item["reason"]) == ("rejected", "contact_number: missing")


def test_a_request_whose_every_lead_is_invalid_gets_422_and_is_recorded(intake, settings, store):
    reply = intake.handle(request({"id": "nameless", "phone": "+15125550142"}))

    assert reply.status == 422
    assert answer(reply)["results"][0]["reason"] == "name: missing"
    assert store.get("generic#nameless")["status"] == "rejected"
    assert queued(settings) == []


def test_the_same_record_twice_in_one_body_is_queued_once(intake, settings):
    reply = intake.handle(request([MARIA, MARIA]))

    assert reply.status == 202
    assert [r["status"] for r in answer(reply)["results"]] == ["queued", "duplicate"]
    assert len(queued(settings)) == 1


def test_a_lead_already_called_is_answered_duplicate_with_2xx_and_not_queued(intake, settings, store):
    first = intake.handle(request(MARIA))
    [message] = queued(settings)
    store.claim(message, "m-1")
    store.mark_call_requested(message.lead_id, "m-1", "R" + "1" * 32, ["T" + "1" * 32])

    again = intake.handle(request(MARIA))

    assert first.status == again.status == 202
    assert answer(again)["results"][0]["status"] == "duplicate"
    assert queued(settings) == []


def test_a_rejected_redelivery_does_not_overwrite_a_lead_that_was_called(intake, settings, store):
    intake.handle(request(MARIA))
    [message] = queued(settings)
    store.claim(message, "m-1")
    store.mark_call_requested(message.lead_id, "m-1", "R" + "2" * 32, ["T" + "2" * 32])

    intake.handle(request({**MARIA, "phone": "not a phone"}))

    assert store.get(message.lead_id)["status"] == "call_requested"


class _BrokenSQS:
    def __init__(self, failed: bool) -> None:
        self.failed = failed

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        if self.failed:
            return {"Successful": [], "Failed": [{"Id": "0", "Code": "InternalError", "SenderFault": False}]}
        raise boto3.client("sqs").exceptions.ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessageBatch")


@pytest.mark.parametrize("failed_entries", [True, False])
def test_when_the_queue_fails_the_sender_gets_503_to_retry(intake, settings, failed_entries):
    intake.queue = LeadQueue(_BrokenSQS(failed_entries), settings.queue_url)

    reply = intake.handle(request(MARIA))

    assert reply.status == 503
    assert reply.headers["Retry-After"]
    assert answer(reply)["error"] == "unavailable"


def test_unreadable_webhook_secret_answers_503_not_401(intake, settings):
    intake.credentials = partial(webhook_credentials, dataclasses.replace(settings, webhook_secret_id="missing"))

    reply = intake.handle(request(MARIA))

    assert reply.status == 503


def test_intake_logs_carry_no_phone_email_or_token(intake, captured_logs):
    intake.handle(request(MARIA))
    intake.handle(request({**MARIA, "id": "x2", "phone": "bad"}))
    intake.handle(request(MARIA, {**BEARER, "authorization": "Bearer wrong-token-value"}))
    intake.handle(request(b"{broken " + MARIA["email"].encode()))

    logs = captured_logs()
    assert "webhook accepted" in logs
    assert "authentication failed" in logs
    for secret in ("5125550142", "555-0142", MARIA["email"], LOCAL_BEARER_TOKEN, "wrong-token-value"):
        assert secret not in logs


def _metrics_lines(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logs.splitlines() if line.startswith('{"_aws"')]


def test_a_delivery_writes_one_line_its_metrics_naming_its_source_leads_and_request(intake, captured_logs):
    metrics.clear_metrics()
    logger.append_keys(function_request_id="req-one-line", correlation_id="api-req-7")
    try:
        reply = intake.handle(request([MARIA, {**MARIA, "id": "zap-bad-phone", "phone": "bad"}]))
        logs = captured_logs()
    finally:
        logger.remove_keys(["function_request_id", "correlation_id"])

    assert reply.status == 202
    [line] = _metrics_lines(logs)
    assert line["message"] == "webhook accepted"
    assert (line["source"], line["queued"], line["duplicate"], line["rejected"]) == ("generic", 1, 0, 1)
    assert line["lead_ids"] == ["generic#zap-lead-20260101-0001", "generic#zap-bad-phone"]
    assert (line["function_request_id"], line["correlation_id"]) == ("req-one-line", "api-req-7")
    assert (line["LeadsReceived"], line["LeadsAccepted"], line["LeadsRejected"]) == ([2.0], [1.0], [1.0])
    assert "LeadsAccepted" in {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert "lead_ids" not in {m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert logs.count("webhook accepted") == 1  # no second line for the same delivery


def test_a_secret_in_a_record_id_is_masked_in_the_metrics_line(intake, captured_logs):
    metrics.clear_metrics()
    register_secrets("zz41-secret-record")

    intake.handle(request({**MARIA, "id": "lead-zz41-secret-record"}))
    logs = captured_logs()

    [line] = _metrics_lines(logs)
    assert line["lead_ids"] == ["generic#lead-[redacted]"]
    assert "zz41-secret-record" not in logs


def test_leads_without_a_record_id_are_keyed_by_the_deliverys_digest_and_their_place(intake):
    body = json.dumps([{"name": "No Id", "phone": "bad"}, {"name": "No Id Either"}]).encode()

    reply = intake.handle(request(body))

    digest = hashlib.sha256(body).hexdigest()[:16]
    assert [result["lead_id"] for result in answer(reply)["results"]] == [
        f"generic#unkeyed-{digest}-0",
        f"generic#unkeyed-{digest}-1",
    ]
