"""Salesforce change events from EventBridge: the Event Relay and AppFlow samples of events/, Lead and Contact
CREATE with compound Name/Address fields, several recordIds, ignored events, malformed events, and the
dedupe with Outbound Message leads of the same record through the intake on moto."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from lead_caller.contacts import ContactDocument, build_document
from lead_caller.crms.salesforce.events import is_salesforce_source, leads_from_event
from lead_caller.crms.salesforce.webhook import SalesforceSource
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.queue import LeadQueue
from lead_caller.sources import SOURCES
from lead_caller.sources.base import PayloadError, WebhookRequest
from lead_caller.store import LeadStore

EVENTS = Path(__file__).resolve().parents[2] / "events"
SOURCE = SalesforceSource()


def sample(name: str) -> dict[str, Any]:
    """events/eventbridge-salesforce-cdc-<name>.json, as the Lambda target receives it."""
    event: dict[str, Any] = json.loads((EVENTS / f"eventbridge-salesforce-cdc-{name}.json").read_text())
    return event


def document(record: Any) -> ContactDocument:
    raw = FieldMapping.compile(SalesforceSource.default_mapping).apply(record)
    raw.record_id = raw.record_id or "test"
    built, rejection, _ = build_document("salesforce", raw, "US")
    assert built is not None, rejection
    return built


def change(event: dict[str, Any]) -> dict[str, Any]:
    """The change event inside either envelope (to edit a copy of a sample)."""
    detail: dict[str, Any] = event["detail"]
    payload: dict[str, Any] = detail.get("payload", detail)
    return payload


CONTACT_CREATE: dict[str, Any] = {
    "version": "0",
    "id": "0b7c8d9e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
    "detail-type": "ContactChangeEvent",
    "source": "aws.partner/salesforce.com/00D5f000005KcCnEAK/0YL5f000000CabXGAS",
    "account": "123456789012",
    "time": "2026-01-01T00:01:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "payload": {
            "ChangeEventHeader": {
                "entityName": "Contact",
                "recordIds": ["0035f00000AbCdEAAZ"],
                "changeType": "CREATE",
                "changeOrigin": "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
                "transactionKey": "0002bcd9-3f74-0b99-dbc4-42e73424b775",
                "sequenceNumber": 1,
                "commitTimestamp": 1767225658000,
                "commitNumber": 1082985383999,
                "commitUser": "0055f000005mc66AAA",
                "nulledFields": [],
                "diffFields": [],
                "changedFields": [],
            },
            "AccountId": "0015f00000XyZaBAAR",
            "Name": {"Salutation": "Mr.", "FirstName": "Hank", "LastName": "Scorpio"},
            "MailingAddress": {
                "Street": "1 Globex Way",
                "City": "Cypress Creek",
                "State": "OR",
                "PostalCode": "97401",
                "Country": "United States",
                "Latitude": None,
                "Longitude": None,
                "GeocodeAccuracy": None,
            },
            "OtherAddress": None,
            "Phone": "+1 415 555 0100",
            "MobilePhone": None,
            "HomePhone": "+1 415 555 0123",
            "Email": "hank.scorpio@globex.example",
            "Title": "CEO",
            "LeadSource": "Partner Referral",
            "Description": None,
            "OwnerId": "0055f000005mc66AAA",
            "CreatedDate": 1767225658000,
        },
        "schemaId": "a1b2c3d4e5f6g7h8i9j0kA",
        "id": "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f",
    },
}


# ---- the samples, field by field ---------------------------------------------------------


def test_an_event_relay_lead_create_gives_the_lead_with_its_compound_fields_flattened():
    [lead] = leads_from_event(sample("relay"))

    assert lead.record_id == "00Q5f00000Lk9XyEAJ"
    record = lead.record
    assert record is not None
    assert (record["Id"], record["sobject_type"], record["organization_id"]) == (
        "00Q5f00000Lk9XyEAJ",
        "Lead",
        "00D5f000005KcCnEAK",
    )
    assert (record["FirstName"], record["LastName"], record["Salutation"]) == ("Maria", "Gonzalez", None)
    assert (record["Street"], record["City"], record["PostalCode"]) == (
        "1200 Congress Ave, Suite 400",
        "Austin",
        "78701",
    )
    assert record["Address"]["State"] == "TX"  # the compound stays readable (path Address.State)
    contact = document(record)
    assert contact.name == "Maria Gonzalez"
    assert contact.email == "maria.gonzalez@acme-logistics.example"
    assert (contact.contact_number, contact.alternate_number) == ("+15125550142", "+15125550199")
    assert contact.occupation == "Director of Operations"
    assert contact.company_name == "Acme Logistics"
    assert contact.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert contact.about == "Requested a callback about fleet pricing."
    assert contact.labels == ("Web", "Open - Not Contacted")


def test_an_appflow_lead_create_gives_the_same_kind_of_lead():
    [lead] = leads_from_event(sample("appflow"))

    assert lead.record_id == "00Q5f00000Lk9XzEAJ"
    assert lead.record is not None
    assert "organization_id" not in lead.record  # an AppFlow source names the AWS account, not the org
    contact = document(lead.record)
    assert contact.name == "James Chen"
    assert contact.contact_number == "+442079460321"
    assert contact.alternate_number is None
    assert contact.company_name == "Northwind Traders"
    assert contact.address == "12 Fleet Street, London, EC4Y 1AA, United Kingdom"  # State is null: left out
    assert contact.labels == ("Phone Inquiry", "Open - Not Contacted")


def test_a_contact_create_maps_its_mailing_address():
    [lead] = leads_from_event(CONTACT_CREATE)

    assert lead.record_id == "0035f00000AbCdEAAZ"
    assert lead.record is not None
    assert lead.record["MailingCity"] == "Cypress Creek"
    assert lead.record["sobject_type"] == "Contact"
    contact = document(lead.record)
    assert contact.name == "Hank Scorpio"
    assert contact.address == "1 Globex Way, Cypress Creek, OR, 97401, United States"
    assert (contact.contact_number, contact.alternate_number) == ("+14155550100", "+14155550123")
    assert contact.company_name is None  # a change event carries AccountId only
    assert contact.labels == ("Partner Referral",)


def test_flat_fields_are_read_too_and_win_over_compound_parts():
    event = sample("appflow")
    body = change(event)
    del body["Name"], body["Address"]
    body.update({"FirstName": "Jim", "LastName": "Chen", "City": "Leeds"})

    [lead] = leads_from_event(event)

    assert document(lead.record).name == "Jim Chen"
    assert document(lead.record).address == "Leeds"


def test_several_record_ids_give_several_leads_with_the_same_values():
    event = sample("relay")
    change(event)["ChangeEventHeader"]["recordIds"] = ["00Q5f00000Lk9XyEAJ", "00Q5f00000Lk9Y0EAJ", "00Q5f00000Lk9XyEAJ"]

    leads = leads_from_event(event)

    assert [lead.record_id for lead in leads] == ["00Q5f00000Lk9XyEAJ", "00Q5f00000Lk9Y0EAJ"]
    assert [lead.record and lead.record["Id"] for lead in leads] == ["00Q5f00000Lk9XyEAJ", "00Q5f00000Lk9Y0EAJ"]
    assert {document(lead.record).name for lead in leads} == {"Maria Gonzalez"}


def test_a_payload_relayed_as_json_text_is_read():
    event = sample("relay")
    event["detail"]["payload"] = json.dumps(event["detail"]["payload"])

    assert [lead.record_id for lead in leads_from_event(event)] == ["00Q5f00000Lk9XyEAJ"]


# ---- ignored events ------------------------------------------------------------------------


@pytest.mark.parametrize("change_type", ["UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_OVERFLOW"])
def test_only_creates_give_leads(change_type):
    event = sample("relay")
    change(event)["ChangeEventHeader"]["changeType"] = change_type

    assert leads_from_event(event) == []


def _account_event() -> dict[str, Any]:
    event = sample("appflow")
    event["detail-type"] = "AccountChangeEvent"
    change(event)["ChangeEventHeader"]["entityName"] = "Account"
    return event


def _platform_event() -> dict[str, Any]:
    event = sample("relay")
    event["detail-type"] = "Lead_Created__e"
    event["detail"]["payload"] = {"CreatedDate": 1767225598000, "Phone__c": "+15125550142"}
    return event


def _foreign_event() -> dict[str, Any]:
    event = sample("relay")
    event["source"] = "aws.s3"
    return event


@pytest.mark.parametrize(
    "make_event",
    [
        pytest.param(_account_event, id="another-object"),
        pytest.param(_platform_event, id="platform-event"),
        pytest.param(_foreign_event, id="not-salesforce"),
        pytest.param(lambda: {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, id="schedule"),
        pytest.param(lambda: {}, id="empty-object"),
    ],
)
def test_unrelated_events_are_ignored(make_event):
    assert leads_from_event(make_event()) == []


def test_salesforce_partner_sources_are_recognised():
    assert is_salesforce_source("aws.partner/salesforce.com/00D5f000005KcCnEAK/0YL5f000000CabWGAS")
    assert is_salesforce_source("aws.partner/appflow/salesforce.com/123456789012/lead-caller-leads")
    assert is_salesforce_source("aws.partner/appflow.test/salesforce.com/364228160620/CustomSF-Source-Final")
    assert not is_salesforce_source("aws.partner/zendesk.com/123/default")
    assert not is_salesforce_source("salesforce.com")
    assert not is_salesforce_source(None)


# ---- malformed events ---------------------------------------------------------------------


def _edit(name: str, edit: Any) -> dict[str, Any]:
    event = copy.deepcopy(sample(name))
    edit(event)
    return event


def _set_header(key: str, value: Any) -> Any:
    return lambda event: change(event)["ChangeEventHeader"].__setitem__(key, value)


MALFORMED = [
    pytest.param(lambda: _edit("relay", lambda e: e.pop("detail")), "`detail`", id="no-detail"),
    pytest.param(lambda: _edit("relay", lambda e: e.__setitem__("detail", [1])), "`detail`", id="detail-list"),
    pytest.param(lambda: _edit("relay", lambda e: e["detail"].__setitem__("payload", 7)), "payload", id="payload"),
    pytest.param(
        lambda: _edit("relay", lambda e: e["detail"].__setitem__("payload", "{broken")), "not valid JSON", id="text"
    ),
    pytest.param(
        lambda: _edit("appflow", lambda e: e["detail"].__setitem__("ChangeEventHeader", "CREATE")),
        "ChangeEventHeader is not an object",
        id="header-text",
    ),
    pytest.param(lambda: _edit("relay", _set_header("entityName", None)), "entityName", id="no-entity"),
    pytest.param(lambda: _edit("relay", _set_header("changeType", "")), "changeType", id="no-change-type"),
    pytest.param(lambda: _edit("relay", _set_header("recordIds", [])), "recordIds", id="no-record-ids"),
    pytest.param(lambda: _edit("relay", _set_header("recordIds", "00Q5f00000Lk9XyEAJ")), "recordIds", id="ids-text"),
    pytest.param(lambda: _edit("relay", _set_header("recordIds", ["00Q*"])), "recordIds[0]", id="wildcard-id"),
    pytest.param(lambda: ["not", "an", "event"], "expected an EventBridge event", id="not-an-object"),
]


@pytest.mark.parametrize(("make_event", "words"), MALFORMED)
def test_malformed_events_raise_a_payload_error_naming_the_problem(make_event, words):
    with pytest.raises(PayloadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        leads_from_event(make_event())


# ---- through the intake: one lead per record, whichever path delivered it ------------------


@pytest.fixture
def intake(settings, monkeypatch) -> Intake:
    monkeypatch.setitem(SOURCES, "salesforce", SOURCE)  # until sources/__init__.py registers it
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name, settings.dedupe_window_seconds),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: {},
    )


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [LeadMessage.from_json(message["Body"]) for message in messages]


def test_change_event_leads_are_queued_under_the_salesforce_source(intake, settings):
    event = sample("relay")

    results = intake.accept(SOURCE, leads_from_event(event), time.time(), json.dumps(event).encode())

    assert [(r.status, r.lead_id) for r in results] == [("queued", "salesforce#00Q5f00000Lk9XyEAJ")]
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.document_id == "salesforce-00Q5f00000Lk9XyEAJ"
    assert message.document.name == "Maria Gonzalez"


def test_a_record_called_after_its_outbound_message_is_a_duplicate_as_a_change_event(intake, settings, store):
    outbound = json.loads((EVENTS / "salesforce-outbound-message.json").read_text())
    intake.credentials = lambda source: {"organization_ids": ["00D5f000005KcCnEAK"]}
    reply = intake.handle(
        WebhookRequest(
            source="salesforce",
            method="POST",
            path="/webhooks/salesforce",
            query="",
            headers=outbound["headers"],
            body=outbound["body"].encode(),
            public_url="https://example.test/webhooks/salesforce",
            received_at=time.time(),
        )
    )
    assert reply.status == 200
    for message in queued(settings):  # the dispatcher called both leads of the message
        store.claim(message, f"m-{message.record_id}")
        store.mark_call_requested(message.lead_id, f"m-{message.record_id}", "R" + "3" * 32, ["T" + "3" * 32])

    event = sample("relay")  # the same Lead, created and relayed by Change Data Capture
    results = intake.accept(SOURCE, leads_from_event(event), time.time(), json.dumps(event).encode())

    assert [(r.status, r.lead_id) for r in results] == [("duplicate", "salesforce#00Q5f00000Lk9XyEAJ")]
    assert queued(settings) == []
