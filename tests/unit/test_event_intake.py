"""`Lead Created` events on the stack's EventBridge bus, through the intake on moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from lead_caller.event_intake import EventIntake, EventRejectedError
from lead_caller.intake import Intake, IntakeUnavailableError
from lead_caller.leads import LeadMessage
from lead_caller.queue import LeadQueue
from lead_caller.sources.base import WebhookRequest
from lead_caller.store import LeadStore

ROOT = Path(__file__).resolve().parents[2]


def event(detail: Any, source: str = "lead-caller", detail_type: str = "Lead Created") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


@pytest.fixture
def events(settings) -> EventIntake:
    intake = Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda _source: {},
    )
    return EventIntake(intake)


def queued(settings) -> list[LeadMessage]:
    response = boto3.client("sqs").receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)
    return [LeadMessage.from_json(message["Body"]) for message in response.get("Messages", [])]


def test_the_sample_lead_created_event_is_queued(events, settings):
    sample = json.loads((ROOT / "events" / "eventbridge-lead-created.json").read_text())

    outcome = events.handle(sample)

    assert outcome.source == "eventbridge"
    assert [result.status for result in outcome.results] == ["queued"]
    [message] = queued(settings)
    assert message.source == "eventbridge"
    assert message.document is not None
    assert message.document.contact_number == "+15125550142"
    assert message.document.document_id == f"eventbridge-{sample['detail']['id']}"


def test_an_events_leads_are_named_in_its_one_metrics_line(events, captured_logs):
    from lead_caller.observability import metrics

    metrics.clear_metrics()
    sample = json.loads((ROOT / "events" / "eventbridge-lead-created.json").read_text())

    events.handle(sample)

    lines = [json.loads(line) for line in captured_logs().splitlines() if line.startswith('{"_aws"')]
    assert [(line["source"], line["lead_ids"], line["LeadsAccepted"]) for line in lines] == [
        ("eventbridge", [f"eventbridge#{sample['detail']['id']}"], [1.0])
    ]


def test_detail_may_be_an_array_an_envelope_or_a_json_string(events, settings):
    leads = [{"id": "eb-1", "name": "A", "phone": "+15125550101"}, {"id": "eb-2", "name": "B", "phone": "+15125550102"}]

    events.handle(event(leads))
    events.handle(
        event(
            {
                "type": "lead.created",
                "timestamp": "2026-01-01T00:00:00Z",
                "data": {"id": "eb-3", "name": "C", "phone": "+15125550103"},
            }
        )
    )
    events.handle(event(json.dumps({"id": "eb-4", "name": "D", "phone": "+15125550104"})))

    assert sorted(message.record_id for message in queued(settings)) == ["eb-1", "eb-2", "eb-3", "eb-4"]


def test_invalid_leads_are_recorded_rejected_not_raised(events, settings, store):
    outcome = events.handle(event({"id": "eb-nophone", "name": "No Phone"}))

    assert [(r.status, r.reason) for r in outcome.results] == [("rejected", "contact_number: missing")]
    assert store.get("eventbridge#eb-nophone")["status"] == "rejected"
    assert queued(settings) == []


@pytest.mark.parametrize("detail", ["{not json", 42, [], [1, 2], None])
def test_malformed_details_raise_for_the_dead_letter_queue(events, settings, detail):
    with pytest.raises(EventRejectedError):
        events.handle(event(detail))
    assert queued(settings) == []


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [("lead-caller", "Lead Updated"), ("someone-else", "Lead Created"), ("aws.s3", "Object Created")],
)
def test_other_events_are_ignored(events, settings, source, detail_type):
    outcome = events.handle(event({"id": "x", "name": "X", "phone": "+15125550101"}, source, detail_type))

    assert outcome.source is None
    assert queued(settings) == []


def test_a_queue_failure_raises_so_lambda_retries(events, settings):
    class Broken:
        def send_message_batch(self, **_: Any) -> dict[str, Any]:
            raise boto3.client("sqs").exceptions.ClientError(
                {"Error": {"Code": "ServiceUnavailable"}}, "SendMessageBatch"
            )

    events.intake.queue = LeadQueue(Broken(), settings.queue_url)

    with pytest.raises(IntakeUnavailableError):
        events.handle(event({"id": "eb-x", "name": "X", "phone": "+15125550101"}))


def test_the_same_lead_by_event_twice_is_queued_once_called(events, settings, store):
    events.handle(event({"id": "eb-dup", "name": "X", "phone": "+15125550101"}))
    [message] = queued(settings)
    store.claim(message, "m-1")
    store.mark_call_requested(message.lead_id, "m-1", "R" + "3" * 32, ["T" + "3" * 32])

    outcome = events.handle(event({"id": "eb-dup", "name": "X", "phone": "+15125550101"}))

    assert [result.status for result in outcome.results] == ["duplicate"]


def test_the_eventbridge_source_is_not_reachable_over_http(events):
    request = WebhookRequest(
        "eventbridge",
        "POST",
        "/webhooks/eventbridge",
        "",
        {"content-type": "application/json"},
        b"{}",
        "https://x",
        0.0,
    )

    assert events.intake.handle(request).status == 404
