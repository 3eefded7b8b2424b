"""The Zoho source: workflow webhooks (form and JSON, token in a header or the query) and Notification API
callbacks (echoed token and channel id, several ids, affected values, thin leads), field by field from the
samples 9.9, hostile bodies, and the status of every answer through the intake on moto."""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

import lead_caller.sources as sources
from lead_caller.contacts import ContactDocument, build_document
from lead_caller.crms.zoho.webhook import ZohoSource, tag_names, zoho_record
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.queue import LeadQueue, QueueError
from lead_caller.sources.base import AuthenticationError, PayloadError, WebhookRequest
from lead_caller.store import LeadStore

EVENTS = Path(__file__).resolve().parents[2] / "events"
WORKFLOW_TOKEN = "zwh_3c1f8e2a9d4b7c6e5f0a1b2c3d4e5f6a"
NOTIFICATION_TOKEN = "zc-7f9a1e2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d"
CHANNEL_ID = "1000000068001"
CREDENTIALS: dict[str, Any] = {
    "token": WORKFLOW_TOKEN,
    "notification_token": NOTIFICATION_TOKEN,
    "channel_id": CHANNEL_ID,
}
MARIA_ID = "5725767000003000064"
FORM = "application/x-www-form-urlencoded"
TOKEN_HEADER = {"x-zoho-token": WORKFLOW_TOKEN}
SOURCE = ZohoSource()


def event(name: str) -> dict[str, Any]:
    """events/zoho-<name>.json."""
    loaded: dict[str, Any] = json.loads((EVENTS / f"zoho-{name}.json").read_text())
    return loaded


def sample(name: str) -> str:
    """The raw body of events/zoho-<name>.json."""
    return str(event(name)["body"])


def notification(**changes: Any) -> dict[str, Any]:
    """The Notification API callback of sample 9.9 (a), with changes."""
    body: dict[str, Any] = json.loads(sample("notification"))
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def request(
    body: bytes | str | Any,
    headers: dict[str, str] | None = None,
    *,
    query: str = "",
    content_type: str = "application/json",
) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    all_headers = {"content-type": content_type, **(TOKEN_HEADER if headers is None else headers)}
    return WebhookRequest(
        source="zoho",
        method="POST",
        path="/webhooks/zoho",
        query=query,
        headers=all_headers,
        body=raw,
        public_url="https://example.test/webhooks/zoho" + (f"?{query}" if query else ""),
        received_at=time.time(),
    )


def callback(body: Any, query: str = "src=zoho-prod") -> WebhookRequest:
    """A notification as Zoho posts it: no workflow token header."""
    return request(body, {}, query=query)


def document(record: Any, override: dict[str, Any] | None = None) -> ContactDocument:
    raw = FieldMapping.compile(ZohoSource.default_mapping, override).apply(record)
    raw.record_id = raw.record_id or "test"
    built, rejection, _ = build_document("zoho", raw, "US")
    assert built is not None, rejection
    return built


def zoho_mappings(settings: Any) -> dict[str, FieldMapping]:
    """The mappings of the registered sources plus zoho's (until it is registered in sources/__init__.py)."""
    return {
        **sources.compile_mappings(settings),
        "zoho": FieldMapping.compile(ZohoSource.default_mapping, settings.field_mappings.get("zoho"), "zoho"),
    }


@pytest.fixture(autouse=True)
def _zoho_registered(monkeypatch):
    monkeypatch.setitem(sources.SOURCES, "zoho", ZohoSource())


def make_intake(settings: Any, credentials: dict[str, Any] | None = None) -> Intake:
    configured = CREDENTIALS if credentials is None else credentials
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name, settings.dedupe_window_seconds),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: configured if source == "zoho" else {},
        mappings=zoho_mappings(settings),
    )


@pytest.fixture
def intake(settings) -> Intake:
    return make_intake(settings)


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [LeadMessage.from_json(message["Body"]) for message in messages]


def answer(reply) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(reply.body)
    return body


# ── workflow webhooks: authentication ──────────────────────────────────


@pytest.mark.parametrize(
    ("headers", "query", "credentials"),
    [
        pytest.param(TOKEN_HEADER, "", CREDENTIALS, id="default-header"),
        pytest.param({}, f"token={WORKFLOW_TOKEN}", CREDENTIALS, id="default-query-param"),
        pytest.param({}, f"src=zoho&token={WORKFLOW_TOKEN}", CREDENTIALS, id="query-param-among-others"),
        pytest.param(
            {"x-webhook-token": WORKFLOW_TOKEN},
            "",
            {**CREDENTIALS, "token_header": "X-Webhook-Token"},
            id="custom-header",
        ),
        pytest.param({}, f"key={WORKFLOW_TOKEN}", {**CREDENTIALS, "token_param": "key"}, id="custom-param"),
        pytest.param(
            {"authorization": f"Bearer {WORKFLOW_TOKEN}"},
            "",
            {**CREDENTIALS, "token_header": "Authorization"},
            id="bearer",
        ),
        pytest.param({"x-zoho-token": "wrong"}, f"token={WORKFLOW_TOKEN}", CREDENTIALS, id="right-param-wrong-header"),
    ],
)
def test_the_workflow_token_is_accepted_in_a_header_or_the_query(headers, query, credentials):
    SOURCE.authenticate(request(sample("workflow-json"), headers, query=query), credentials)


@pytest.mark.parametrize(
    ("headers", "query", "credentials"),
    [
        pytest.param({"x-zoho-token": "zwh_wrong"}, "", CREDENTIALS, id="wrong-header"),
        pytest.param({}, "token=zwh_wrong", CREDENTIALS, id="wrong-param"),
        pytest.param({}, "", CREDENTIALS, id="missing"),
        pytest.param({"x-zoho-token": ""}, "token=", CREDENTIALS, id="empty"),
        pytest.param({"x-zoho-token": WORKFLOW_TOKEN[:-1]}, "", CREDENTIALS, id="prefix"),
        pytest.param({"x-zoho-token": WORKFLOW_TOKEN + "x"}, "", CREDENTIALS, id="longer"),
        pytest.param({}, f"tok={WORKFLOW_TOKEN}", CREDENTIALS, id="other-param"),
        pytest.param({"x-other": WORKFLOW_TOKEN}, "", CREDENTIALS, id="other-header"),
        pytest.param(TOKEN_HEADER, "", {"notification_token": NOTIFICATION_TOKEN}, id="no-token-configured"),
        pytest.param(TOKEN_HEADER, "", {}, id="nothing-configured"),
        pytest.param(
            {"authorization": f"Basic {WORKFLOW_TOKEN}"},
            "",
            {**CREDENTIALS, "token_header": "authorization"},
            id="other-scheme",
        ),
        pytest.param({}, "&".join(["a=b"] * 150) + f"&token={WORKFLOW_TOKEN}", CREDENTIALS, id="huge-query"),
    ],
)
def test_a_wrong_missing_or_unconfigured_workflow_token_is_refused(headers, query, credentials):
    with pytest.raises(AuthenticationError):
        SOURCE.authenticate(request(sample("workflow-json"), headers, query=query), credentials)


@pytest.mark.parametrize(
    ("headers", "query", "credentials", "status"),
    [
        pytest.param(TOKEN_HEADER, "", CREDENTIALS, 200, id="header"),
        pytest.param({}, f"token={WORKFLOW_TOKEN}", CREDENTIALS, 200, id="query-param"),
        pytest.param({"x-zoho-token": "nope"}, "", CREDENTIALS, 401, id="wrong"),
        pytest.param({}, "", CREDENTIALS, 401, id="missing"),
        pytest.param(TOKEN_HEADER, "", {}, 401, id="fail-closed-without-credentials"),
    ],
)
def test_workflow_authentication_decides_between_401_and_200(settings, headers, query, credentials, status):
    reply = make_intake(settings, credentials).handle(request(sample("workflow-json"), headers, query=query))

    assert reply.status == status
    if status == 401:
        assert answer(reply) == {"error": "unauthorized", "message": "the request could not be authenticated"}
        assert queued(settings) == []
    else:
        assert answer(reply)["results"] == [{"index": 0, "status": "queued", "lead_id": f"zoho#{MARIA_ID}"}]


# ── workflow webhooks: the samples field by field ──────────────────────


def test_the_form_sample_maps_field_by_field():
    [lead] = SOURCE.parse(request(sample("workflow-form"), content_type=FORM))

    assert lead.record_id == MARIA_ID
    assert lead.enrichment is None
    doc = document(lead.record)
    assert doc.name == "Maria Gonzalez"
    assert doc.email == "maria.gonzalez@acme-logistics.example"
    assert doc.contact_number == "+15125550142"
    assert doc.alternate_number == "+15125550199"
    assert doc.occupation == "Director of Operations"
    assert doc.company_name == "Acme Logistics"
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert doc.about == "Requested a callback about fleet pricing."
    assert doc.labels == ("Web Download",)


def test_the_json_sample_maps_field_by_field_with_semicolon_tags():
    [lead] = SOURCE.parse(request(sample("workflow-json")))

    assert lead.record_id == MARIA_ID
    assert lead.record is not None
    assert lead.record["Tag"] == ["inbound", "pricing"]
    doc = document(lead.record)
    assert (doc.name, doc.contact_number, doc.alternate_number) == ("Maria Gonzalez", "+15125550142", "+15125550199")
    assert doc.email == "maria.gonzalez@acme-logistics.example"
    assert doc.occupation == "Director of Operations"
    assert doc.company_name == "Acme Logistics"
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert doc.about == "Requested a callback about fleet pricing."
    assert doc.labels == ("inbound", "pricing")


def test_a_body_with_zoho_api_names_maps_the_same_way():
    body = {
        "Record_Id": "zcrm_5725767000003000064",
        "First_Name": "Maria",
        "Last_Name": "Gonzalez",
        "Email": "maria.gonzalez@acme-logistics.example",
        "Phone": "+1 (512) 555-0142",
        "Mobile": "+1 512 555 0199",
        "Designation": "Director of Operations",
        "Company": "Acme Logistics",
        "Street": "1200 Congress Ave, Suite 400",
        "City": "Austin",
        "State": "TX",
        "Zip_Code": "78701",
        "Country": "United States",
        "Description": "Requested a callback about fleet pricing.",
        "Tag": [{"name": "inbound", "id": "1"}, {"name": "pricing", "id": "2"}],
        "Lead_Source": "Web Download",
        "Lead_Status": "Not Contacted",
    }

    [lead] = SOURCE.parse(request(body))

    assert lead.record_id == MARIA_ID  # the zcrm_ prefix of some merge fields is dropped
    doc = document(lead.record)
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert doc.labels == ("inbound", "pricing", "Web Download", "Not Contacted")


def test_a_contact_record_reads_title_account_and_mailing_address():
    record = zoho_record(
        {
            "id": "5725767000003001001",
            "First_Name": "Priya",
            "Last_Name": "Raman",
            "Phone": "+44 20 7946 0321",
            "Title": "Head of Customer Success",
            "Account_Name": {"name": "Brightpath Analytics", "id": "5725767000002000001"},
            "Mailing_City": "London",
            "Mailing_Country": "United Kingdom",
        }
    )

    doc = document(record)

    assert (doc.occupation, doc.company_name) == ("Head of Customer Success", "Brightpath Analytics")
    assert doc.address == "London, United Kingdom"
    assert doc.contact_number == "+442079460321"


def test_repeated_form_tags_and_a_lone_mobile():
    form = urlencode(
        [("Lead_Id", "42"), ("Last_Name", "Okafor"), ("Mobile", "(415) 555-0117"), ("tag", "a"), ("tag", "b,c")]
    )

    [lead] = SOURCE.parse(request(form, content_type=FORM))

    doc = document(lead.record)
    assert lead.record_id == "42"
    assert (doc.name, doc.contact_number, doc.alternate_number) == ("Okafor", "+14155550117", None)
    assert doc.labels == ("a", "b", "c")


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("inbound;pricing", ["inbound", "pricing"]),
        ("inbound, pricing,,", ["inbound", "pricing"]),
        ([{"name": "x"}, {"id": "no-name"}, "y"], ["x", "y"]),
        (None, []),
        ({"name": "solo"}, ["solo"]),
    ],
)
def test_tag_names(value, names):
    assert tag_names(value) == names


def test_a_user_mapping_reads_a_custom_field(settings):
    intake = make_intake(dataclasses.replace(settings, field_mappings={"zoho": {"context": "Call_Objective__c"}}))
    body = {**json.loads(sample("workflow-json")), "Call_Objective__c": "Offer the fleet pricing webinar."}

    reply = intake.handle(request(body))

    assert reply.status == 200
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.context == "Offer the fleet pricing webinar."


def test_a_workflow_body_without_an_id_gets_a_derived_key(intake, settings):
    body = {k: v for k, v in json.loads(sample("workflow-json")).items() if k != "id"}

    reply = intake.handle(request(body))

    [result] = answer(reply)["results"]
    assert result["status"] == "queued"
    assert result["lead_id"].startswith("zoho#h")


def test_a_record_without_a_phone_is_recorded_as_rejected_with_200(intake, settings, store):
    body = {k: v for k, v in json.loads(sample("workflow-json")).items() if k not in ("phone", "mobile")}

    reply = intake.handle(request(body))

    assert reply.status == 200
    assert answer(reply) == {
        "accepted": 0,
        "rejected": 1,
        "results": [
            {"index": 0, "status": "rejected", "lead_id": f"zoho#{MARIA_ID}", "reason": "contact_number: missing"}
        ],
    }
    assert store.get(f"zoho#{MARIA_ID}")["status"] == "rejected"
    assert queued(settings) == []


# ── malformed and hostile bodies ───────────────────────────────────────


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        pytest.param(b"{not json", "application/json", 400, "not valid JSON", id="malformed-json"),
        pytest.param(b"", "application/json", 400, "empty", id="empty-json"),
        pytest.param(b"{}", "application/json", 400, "no fields", id="empty-object"),
        pytest.param(b"[1, 2]", "application/json", 400, "expected a JSON object", id="array"),
        pytest.param(b'"text"', "application/json", 400, "expected a JSON object", id="string"),
        pytest.param(b"\xff\xfe\x00bad", "application/json", 400, "UTF-8", id="json-not-utf8"),
        pytest.param(_nested(100_000), "application/json", 400, "nested too deeply", id="deeply-nested"),
        pytest.param(b"first_name=Maria&broken", FORM, 400, "not a valid form", id="malformed-form"),
        pytest.param(b"", FORM, 400, "empty", id="empty-form"),
        pytest.param(b"first_name=\xff\xfe", FORM, 400, "UTF-8", id="form-not-utf8"),
        pytest.param("&".join(f"k{i}=v" for i in range(600)).encode(), FORM, 400, "not a valid form", id="many"),
        pytest.param(b"first_name=Maria", "text/plain", 415, "Content-Type", id="media-type"),
        pytest.param(b"<xml/>", "application/xml", 415, "Content-Type", id="xml"),
    ],
)
def test_malformed_bodies_get_a_4xx_naming_the_problem(intake, settings, body, content_type, status, words):
    reply = intake.handle(request(body, content_type=content_type))

    assert reply.status == status
    assert words in answer(reply)["message"]
    assert queued(settings) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_nested(100_000), id="deeply-nested"),
        pytest.param(b"\xff\xfe\x00bad", id="not-utf8"),
        pytest.param(b'{"channel_id": ' * 5000, id="truncated-nesting"),
        pytest.param(json.dumps({"channel_id": {"x": 1}, "ids": "nope"}).encode(), id="odd-notification"),
    ],
)
def test_hostile_bodies_without_credentials_get_401(intake, settings, body):
    reply = intake.handle(request(body, {}))

    assert reply.status == 401
    assert queued(settings) == []


def test_an_oversized_body_gets_413(intake, settings):
    intake.settings = dataclasses.replace(settings, max_body_bytes=1024)

    reply = intake.handle(request(b"x=" + b"y" * 2000, content_type=FORM))

    assert reply.status == 413
    assert answer(reply)["error"] == "body_too_large"


def test_a_lead_that_cannot_be_stored_gets_503(intake, settings):
    class BrokenQueue:
        def send(self, messages: list[LeadMessage]) -> None:
            raise QueueError("SendMessageBatch failed: EndpointConnectionError")

    intake.queue = BrokenQueue()

    reply = intake.handle(request(sample("workflow-json")))

    assert reply.status == 503
    assert reply.headers["Retry-After"] == "5"
    assert answer(reply)["error"] == "unavailable"


# ── Notification API callbacks ─────────────────────────────────────────


@pytest.mark.parametrize(
    ("body", "credentials"),
    [
        pytest.param(notification(token="zc-wrong"), CREDENTIALS, id="wrong-token"),
        pytest.param(notification(channel_id="1000000068002"), CREDENTIALS, id="wrong-channel"),
        pytest.param(notification(token=None), CREDENTIALS, id="missing-token"),
        pytest.param(notification(token=12345), CREDENTIALS, id="token-not-text"),
        pytest.param(notification(token=NOTIFICATION_TOKEN[:-1]), CREDENTIALS, id="token-prefix"),
        pytest.param(notification(), {"token": WORKFLOW_TOKEN}, id="notifications-not-configured"),
        pytest.param(notification(), {**CREDENTIALS, "channel_id": None}, id="no-channel-configured"),
        pytest.param(notification(), {}, id="nothing-configured"),
    ],
)
def test_a_wrong_or_unconfigured_notification_is_refused(body, credentials):
    with pytest.raises(AuthenticationError):
        SOURCE.authenticate(callback(body), credentials)


def test_a_notification_is_not_accepted_with_the_workflow_token_alone():
    body = notification(token="zc-wrong")

    with pytest.raises(AuthenticationError):
        SOURCE.authenticate(request(body, TOKEN_HEADER, query=f"token={WORKFLOW_TOKEN}"), CREDENTIALS)


def test_a_numeric_channel_id_is_verified_like_text():
    SOURCE.authenticate(
        callback(notification(channel_id=int(CHANNEL_ID))), {**CREDENTIALS, "channel_id": 1000000068001}
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(notification(), 200, id="good"),
        pytest.param(notification(token="zc-wrong"), 401, id="wrong-token"),
        pytest.param(notification(channel_id="42"), 401, id="wrong-channel"),
        pytest.param(notification(token=None), 401, id="missing-token"),
    ],
)
def test_notification_authentication_decides_between_401_and_200(intake, settings, body, status):
    reply = intake.handle(callback(body))

    assert reply.status == status
    assert len(queued(settings)) == (1 if status == 200 else 0)


def test_affected_values_with_a_phone_are_the_record():
    [lead] = SOURCE.parse(callback(notification()), CREDENTIALS)

    assert lead.record_id == MARIA_ID
    assert lead.enrichment is None
    doc = document(lead.record)
    assert (doc.name, doc.contact_number, doc.company_name) == ("Maria Gonzalez", "+15125550142", "Acme Logistics")
    assert doc.email == "maria.gonzalez@acme-logistics.example"


def test_a_notification_without_affected_values_is_thin():
    [lead] = SOURCE.parse(callback(json.loads(sample("notification-thin"))), CREDENTIALS)

    assert lead.record is None
    assert lead.record_id == "5725767000003000065"
    assert lead.enrichment == {
        "kind": "zoho_record",
        "module": "Leads",
        "id": "5725767000003000065",
        "operation": "insert",
        "channel_id": CHANNEL_ID,
    }


def test_several_ids_are_several_leads_and_values_without_a_phone_are_fetched():
    body = notification(
        ids=["5725767000003000064", "5725767000003000065", 5725767000003000066],
        affected_values=[
            {"record_id": "5725767000003000064", "values": {"Last_Name": "Gonzalez", "Mobile": "+1 512 555 0199"}},
            {"record_id": "5725767000003000065", "values": {"Last_Name": "Okafor", "Email": "j@example.test"}},
            "garbage",
        ],
    )

    leads = SOURCE.parse(callback(body), CREDENTIALS)

    assert [lead.record_id for lead in leads] == ["5725767000003000064", "5725767000003000065", "5725767000003000066"]
    assert leads[0].record is not None
    assert leads[0].enrichment is None
    assert [lead.record is None for lead in leads[1:]] == [True, True]
    assert [dict(lead.enrichment or {})["id"] for lead in leads[1:]] == ["5725767000003000065", "5725767000003000066"]


def test_always_fetch_ignores_affected_values():
    [lead] = SOURCE.parse(callback(notification()), {**CREDENTIALS, "always_fetch": True})

    assert lead.record is None
    assert dict(lead.enrichment or {})["id"] == MARIA_ID


def test_a_contacts_notification_names_its_module():
    [lead] = SOURCE.parse(callback(notification(module="Contacts", affected_values=None, operation="create")))

    assert dict(lead.enrichment or {})["module"] == "Contacts"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(notification(operation="update"), id="update"),
        pytest.param(notification(operation="delete"), id="delete"),
        pytest.param(notification(module="Deals"), id="deals"),
        pytest.param(notification(module=None), id="no-module"),
        pytest.param(notification(operation=None), id="no-operation"),
    ],
)
def test_ignored_notifications_get_200_and_nothing_is_queued_or_stored(intake, settings, store, body):
    reply = intake.handle(callback(body))

    assert reply.status == 200
    assert answer(reply) == {
        "accepted": 0,
        "rejected": 0,
        "results": [],
        "message": "nothing to call in this delivery: ignored",
    }
    assert queued(settings) == []
    assert store.get(f"zoho#{MARIA_ID}") is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        pytest.param(notification(ids=None), 400, "`ids` is missing", id="no-ids"),
        pytest.param(notification(ids=[]), 400, "`ids` is missing", id="empty-ids"),
        pytest.param(notification(ids="5725767000003000064"), 400, "not a list", id="ids-text"),
        pytest.param(notification(ids=[str(i) for i in range(501)]), 413, "at most 500", id="too-many"),
    ],
)
def test_a_malformed_notification_gets_a_4xx(intake, settings, body, status, words):
    reply = intake.handle(callback(body))

    assert reply.status == status
    assert words in answer(reply)["message"]
    assert queued(settings) == []


def test_thin_notification_leads_are_queued_for_enrichment(intake, settings):
    body = notification(ids=["5725767000003000065", "not-an-id", "5725767000003000065"], affected_values=None)

    reply = intake.handle(callback(body))

    assert reply.status == 200
    assert answer(reply)["results"] == [
        {"index": 0, "status": "queued", "lead_id": "zoho#5725767000003000065"},
        {
            "index": 1,
            "status": "rejected",
            "lead_id": answer(reply)["results"][1]["lead_id"],
            "reason": "id: the event names no record",
        },
        {"index": 2, "status": "duplicate", "lead_id": "zoho#5725767000003000065"},
    ]
    [message] = queued(settings)
    assert message.document is None
    assert message.enrichment is not None
    assert message.enrichment["kind"] == "zoho_record"


def test_a_workflow_webhook_and_a_notification_of_one_record_are_one_lead(intake, settings, store):
    first = intake.handle(request(sample("workflow-form"), content_type=FORM))
    [message] = queued(settings)
    store.claim(message, "m-1")  # the dispatcher is calling Maria

    second = intake.handle(callback(notification()))

    assert answer(first)["results"][0]["status"] == "queued"
    assert answer(second)["results"] == [{"index": 0, "status": "duplicate", "lead_id": f"zoho#{MARIA_ID}"}]


def test_parse_names_what_is_wrong_without_the_intake():
    with pytest.raises(PayloadError, match="no fields"):
        SOURCE.parse(request(b"{}"))


def test_logs_carry_no_tokens_or_personal_data(intake, captured_logs):
    intake.handle(request(sample("workflow-json")))
    intake.handle(callback(notification()))
    intake.handle(request(sample("workflow-json"), {"x-zoho-token": "zwh_wrong_value_123"}))
    intake.handle(callback(notification(token="zc-wrong-value-456")))

    logs = captured_logs()
    assert "webhook accepted" in logs
    assert "authentication failed" in logs
    for secret in (WORKFLOW_TOKEN, NOTIFICATION_TOKEN, "zwh_wrong_value_123", "zc-wrong-value-456", "555-0142"):
        assert secret not in logs
    assert "maria.gonzalez@" not in logs


# ── the sample events of events/ ───────────────────────────────────────


@pytest.fixture
def webhook_module():
    return importlib.import_module("lead_caller.handlers.webhook")


@pytest.mark.parametrize(
    ("name", "record_ids", "thin"),
    [
        ("workflow-form", [MARIA_ID], False),
        ("workflow-json", [MARIA_ID], False),
        ("notification", [MARIA_ID], False),
        ("notification-thin", ["5725767000003000065"], True),
    ],
)
def test_the_sample_events_authenticate_and_parse(webhook_module, name, record_ids, thin):
    converted = webhook_module.webhook_request(event(name), "zoho", public_base_url=None)

    SOURCE.authenticate(converted, CREDENTIALS)
    leads = SOURCE.parse(converted, CREDENTIALS)

    assert converted.path == "/webhooks/zoho"
    assert [lead.record_id for lead in leads] == record_ids
    assert all((lead.record is None) == thin for lead in leads)


def test_the_schedule_event_is_a_scheduled_eventbridge_event():
    scheduled = event("watch-schedule")

    assert (scheduled["source"], scheduled["detail-type"]) == ("aws.events", "Scheduled Event")
