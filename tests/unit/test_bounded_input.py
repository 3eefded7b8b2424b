"""Bounded and validated input (issue 12 points 4 and 5): batch sizes, record ids, integers JSON
cannot read, UTF-8 queue messages split by bytes, and leads too large for one SQS message."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from lead_caller.contacts import ContactDocument
from lead_caller.crms.hubspot.webhook import MAX_EVENTS_PER_REQUEST, HubSpotSource
from lead_caller.leads import LeadMessage
from lead_caller.queue import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, LeadQueue, QueueError, batches, oversize_problem
from lead_caller.sources.base import PayloadError, load_json, record_id_problem
from tests.faults.hostile import build_intake, drain, request


def events(count: int, object_id: Any = 1246978) -> bytes:
    item = {"subscriptionType": "contact.creation", "objectId": object_id, "portalId": 62515}
    return json.dumps([{**item, "eventId": index} for index in range(count)]).encode()


@pytest.fixture
def intake(settings):
    return build_intake(settings)


# ---- parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["generic", "hubspot", "pipedrive", "zoho"])
def test_an_integer_of_more_than_4300_digits_is_a_400_not_a_500(intake, source):
    huge = "9" * 5000
    for body in (huge, f'{{"id": {huge}, "channel_id": "1", "ids": [{huge}]}}'):
        reply = intake.handle(request(source, body.encode()))
        assert reply.status < 500
        assert "invalid_payload" in reply.body


def test_load_json_names_the_problem():
    with pytest.raises(PayloadError, match="cannot be read") as raised:
        load_json(b"[" + b"1" * 4301 + b"]", "an array")
    assert raised.value.status == 400


# ---- record ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_id", "ok"),
    [
        ("62515:1246978", True),
        ("8087566-person-8", True),
        ("00Q5f00000Lk9XyEAJ", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("a/b", False),
        ("a b", False),
        ("é", False),
        ("", False),
        (None, False),
    ],
)
def test_record_ids_are_checked_before_queueing(record_id, ok):
    assert (record_id_problem(record_id) is None) is ok


def test_a_hubspot_object_id_of_3000_characters_is_rejected_not_queued(intake, settings):
    reply = intake.handle(request("hubspot", events(1, "1" * 3000)))

    assert reply.status == 200
    [result] = json.loads(reply.body)["results"]
    assert result["status"] == "rejected"
    assert list(drain(settings)) == []


@pytest.mark.parametrize("object_id", [1.5, 2.5e16, -4, 0, True, "12ab", {"id": 1}, 10**25])
def test_hubspot_object_ids_must_be_positive_integers(object_id):
    [lead] = HubSpotSource().parse(request("hubspot", events(1, object_id)))
    assert lead.record_id is None


def test_a_pipedrive_person_id_too_long_for_a_key_is_rejected(intake, settings):
    body = {"meta": {"action": "create", "entity": "lead"}, "data": {"id": "l1", "person_id": "9" * 200}}
    reply = intake.handle(request("pipedrive", json.dumps(body).encode()))

    assert reply.status == 200
    assert json.loads(reply.body)["results"][0]["status"] == "rejected"
    assert "record id must be at most 128" in json.loads(reply.body)["results"][0]["reason"]
    assert list(drain(settings)) == []


# ---- HubSpot batch bound ---------------------------------------------------------------------


def test_hubspot_accepts_100_events_and_answers_413_beyond(intake, settings):
    accepted = intake.handle(request("hubspot", events(MAX_EVENTS_PER_REQUEST)))
    refused = intake.handle(request("hubspot", events(2000)))

    assert accepted.status == 200
    assert refused.status == 413
    assert "at most 100 events" in refused.body
    assert len(list(drain(settings))) == 1  # 100 events of one contact: one lead


# ---- queue messages ------------------------------------------------------------------------


def big_lead(record_id: str, text: str) -> LeadMessage:
    document = ContactDocument(
        name="Emoji Person",
        contact_number="+15125550142",
        document_id=f"generic-{record_id}",
        about=text,
        context=text,
        description=text,
    )
    return LeadMessage("generic", record_id, 1.0, document)


def test_messages_are_utf8_not_escaped():
    message = big_lead("e1", "😀" * 10)
    body = message.to_json()

    assert "😀" in body
    plain = big_lead("e1", "a" * 10).to_json()
    assert len(body.encode()) - len(plain.encode()) == 3 * 10 * 3  # 4 bytes an emoji (not 12), 3 fields
    assert LeadMessage.from_json(body) == message


def test_characters_sqs_refuses_stay_escaped():
    message = LeadMessage("generic", "s1", 1.0, None, {"context": "a\ud800\ufffeb"}, None)
    body = message.to_json()

    body.encode("utf-8")  # no lone surrogate left
    assert "\\ud800" in body
    assert "\\ufffe" in body
    assert LeadMessage.from_json(body).routing == {"context": "a\ud800\ufffeb"}


def test_batches_are_split_by_bytes_and_count():
    bodies = ["x" * 100_000] * 5 + ["y"] * 12

    groups = batches(bodies)

    assert [len(group) for group in groups] == [2, 2, 10, 3]
    assert all(sum(len(bodies[i]) for i in group) <= MAX_BATCH_BYTES for group in groups)
    assert sorted(i for group in groups for i in group) == list(range(len(bodies)))


def test_eight_leads_with_large_fields_are_queued_not_503(intake, settings):
    """Issue 11: a valid 493 KB delivery of 8 leads was answered 503 forever."""
    text = "Notes 😀 " * 500  # 4,000 characters: the document limit of about/context/description
    leads = [
        {
            "id": f"big-{index}",
            "name": "Big Lead",
            "phone": f"+1512555{index:04d}",
            "notes": text,
            "context": text,
            "description": text,
        }
        for index in range(8)
    ]

    reply = intake.handle(request("generic", json.dumps(leads, ensure_ascii=False).encode()))

    assert reply.status == 202, reply.body
    assert len(list(drain(settings))) == 8


def test_a_lead_too_large_for_one_message_is_rejected_naming_the_field(intake, settings):
    detail = {f"{'a' * 40}": {"value": "z" * 1000} for _ in range(1)}
    deal = {"id": 7, "person_id": 11, "title": "Big deal", "notes": "😀" * 70_000, "custom_fields": detail}
    body = {"meta": {"action": "create", "entity": "deal", "company_id": "8087566"}, "data": deal}

    reply = intake.handle(request("pipedrive", json.dumps(body).encode()))

    assert reply.status == 200
    [result] = json.loads(reply.body)["results"]
    assert result["status"] == "rejected"
    assert result["reason"].startswith("enrichment.deal:")
    assert f"{MAX_MESSAGE_BYTES}-byte limit" in result["reason"]
    assert list(drain(settings)) == []


def test_oversize_problem_is_none_for_ordinary_leads():
    assert oversize_problem(big_lead("o1", "text")) is None


def test_the_queue_refuses_a_message_over_the_budget_instead_of_looping(settings):
    queue = LeadQueue(boto3.client("sqs"), settings.queue_url)
    huge = LeadMessage("generic", "h1", 1.0, None, {"context": "x" * MAX_MESSAGE_BYTES}, None)

    with pytest.raises(QueueError, match="larger than"):
        queue.send([huge])
