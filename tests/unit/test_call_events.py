"""`Call Completed` events from the table's stream (moto EventBridge -> an SQS capture queue)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from lead_caller.call_events import CallCompletedPublisher, PublishError, call_completed_detail, ends_attempt

BUS = "lead-caller-test"
CONTRACT = {
    "lead_id", "source", "record_id", "document_id", "run_id", "task_id", "call_attempt", "status",
    "call_status", "outcome", "summary", "sentiment", "duration", "started_at", "ended_at", "recording_url", "final",
}  # fmt: skip


def lead(status: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "pk": "hubspot#42",
        "source": "hubspot",
        "record_id": "42",
        "status": status,
        "call_attempt": attempt,
        "run_id": "R" + "a" * 32,
        "task_ids": ["T" + "b" * 32],
        "document": {"name": "Ada", "contact_number": "+15125550142", "email": "ada@example.com",
                     "document_id": "hubspot-42"},
        "call_status": "completed",
        "summary": "Wants a demo.",
        "duration": 61,
        "transcript_key": "transcripts/hubspot/42/attempt-1/T.json",
        **extra,
    }  # fmt: skip


@pytest.fixture
def bus() -> Any:
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        url = sqs.create_queue(QueueName="capture")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # the example rule of docs/outcomes.md
        pattern = {"source": ["lead-caller"], "detail-type": ["Call Completed"], "detail": {"final": [True]}}
        events.put_rule(Name="final-outcomes", EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="final-outcomes", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])

        def received() -> list[dict[str, Any]]:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
            return [json.loads(m["Body"]) for m in messages]

        yield received


def test_only_a_transition_into_an_attempts_end_is_an_event():
    assert ends_attempt(lead("in_progress"), lead("completed"))
    assert ends_attempt(None, lead("completed"))
    assert ends_attempt(lead("no_answer", 1), lead("recall_pending", 1))
    assert ends_attempt(lead("recall_pending", 1), lead("completed", 1))
    assert not ends_attempt(lead("completed"), lead("completed"))  # e.g. a write-back field changed
    assert not ends_attempt(lead("dispatching"), lead("call_requested"))
    assert not ends_attempt(lead("completed"), None)


def test_the_detail_follows_the_contract_and_carries_nothing_personal():
    detail = call_completed_detail(lead("completed"))

    assert set(detail) == CONTRACT
    assert detail["final"] is True
    assert detail["task_id"] == "T" + "b" * 32
    text = json.dumps(detail)
    for personal in ("+15125550142", "ada@example.com", "Ada", "transcript"):
        assert personal not in text


def test_a_recall_pending_attempt_is_reported_with_its_own_outcome_and_not_final():
    detail = call_completed_detail(lead("recall_pending", attempt_status="busy"))
    assert (detail["status"], detail["final"]) == ("busy", False)


def test_published_events_reach_a_rule_on_the_bus(bus):
    publisher = CallCompletedPublisher(boto3.client("events"), BUS)

    publisher.publish(lead("in_progress"), lead("completed"))
    publisher.publish(lead("in_progress"), lead("recall_pending", attempt_status="no_answer"))  # not final
    publisher.publish(lead("completed"), lead("completed"))  # no transition: nothing

    [event] = bus()
    assert (event["source"], event["detail-type"]) == ("lead-caller", "Call Completed")
    assert event["detail"]["lead_id"] == "hubspot#42"


class RefusingEvents:
    def __init__(self) -> None:
        self.calls = 0

    def put_events(self, Entries):  # noqa: N803 - boto3's name
        self.calls += 1
        if self.calls == 2:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(self.calls)}]}


def test_a_refused_event_raises():
    publisher = CallCompletedPublisher(RefusingEvents(), BUS)
    publisher.publish(None, lead("completed"))
    with pytest.raises(PublishError, match="ThrottlingException"):
        publisher.publish(None, lead("busy"))


def stream_record(sequence: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()

    def image(item):
        return {key: serializer.serialize(value) for key, value in item.items()}

    change: dict[str, Any] = {"Keys": {"pk": {"S": new["pk"]}}, "NewImage": image(new), "SequenceNumber": sequence,
                              "StreamViewType": "NEW_AND_OLD_IMAGES"}  # fmt: skip
    if old is not None:
        change["OldImage"] = image(old)
    return {"eventID": sequence, "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": change}  # fmt: skip


def test_the_stream_handler_retries_from_the_first_failed_record(monkeypatch):
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    with mock_aws():
        module = importlib.import_module("lead_caller.handlers.call_events")
        module = importlib.reload(module)
        refusing = RefusingEvents()
        monkeypatch.setattr(module, "publisher", CallCompletedPublisher(refusing, BUS))
        event = {
            "Records": [
                stream_record("100", lead("in_progress"), lead("completed")),
                stream_record("200", lead("in_progress"), lead("busy")),
                stream_record("300", lead("in_progress"), lead("voicemail")),
            ]
        }

        class Context:
            function_name = "CallEventsFunction"
            memory_limit_in_mb = 512
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:CallEventsFunction"
            aws_request_id = "req"

        result = module.handler(event, Context())

    assert [item["itemIdentifier"] for item in result["batchItemFailures"]] == ["200", "300"]
    assert refusing.calls == 2  # the record after the failed one was not sent (no duplicate on retry)
