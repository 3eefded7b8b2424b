"""The Pipedrive source: Basic auth, the samples of events/ (v2 person/lead/deal, v1 person) field by field,
user-mapped custom fields, ignored events, and the status of every answer through the intake on moto."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from lead_caller.contacts import ContactDocument, build_document
from lead_caller.crms.pipedrive.webhook import PipedriveSource
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.queue import LeadQueue, QueueError
from lead_caller.sources.base import AuthenticationError, WebhookRequest
from lead_caller.store import LeadStore
from local.signing import basic_authorization

EVENTS = Path(__file__).resolve().parents[2] / "events"
USER, PASSWORD = "pd-webhook", "s3cr3t-P@ss:with-colon"
CREDENTIALS = {"basic_username": USER, "basic_password": PASSWORD}
HEADERS = {"content-type": "application/json", **basic_authorization(USER, PASSWORD)}
ADDRESS_FIELD = "3d0fa3429dfa2d3dec265b4fc5dc8258ab66cdf3"
JOB_TITLE_FIELD = "9c1b7e2a4d5f6e7a8b9c0d1e2f3a4b5c6d7e8f90"
#: the user mapping of the README: custom fields by their 40-character hash
USER_MAPPING = {
    "occupation": f"custom_fields.{JOB_TITLE_FIELD}.value",
    "address": f"custom_fields.{ADDRESS_FIELD}.value",
}
SOURCE = PipedriveSource()


def sample(name: str) -> dict[str, Any]:
    """The JSON body of events/pipedrive-<name>.json."""
    event = json.loads((EVENTS / f"pipedrive-{name}.json").read_text())
    body: dict[str, Any] = json.loads(event["body"])
    return body


def request(body: bytes | str | Any, headers: dict[str, str] | None = None) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return WebhookRequest(
        source="pipedrive",
        method="POST",
        path="/webhooks/pipedrive",
        query="",
        headers=HEADERS if headers is None else headers,
        body=raw,
        public_url="https://example.test/webhooks/pipedrive",
        received_at=time.time(),
    )


def document(record: Any, override: dict[str, Any] | None = None) -> ContactDocument:
    raw = FieldMapping.compile(PipedriveSource.default_mapping, override).apply(record)
    raw.record_id = raw.record_id or "test"
    built, rejection, _ = build_document("pipedrive", raw, "US")
    assert built is not None, rejection
    return built


def make_intake(settings: Any, credentials: dict[str, Any] | None = None) -> Intake:
    configured = CREDENTIALS if credentials is None else credentials
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name, settings.dedupe_window_seconds),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: configured if source == "pipedrive" else {},
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


def basic(raw: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": "Basic " + base64.b64encode(raw).decode()}


# ---- authentication -------------------------------------------------------------------


def test_the_right_basic_credentials_are_accepted_even_with_a_colon_in_the_password():
    SOURCE.authenticate(request(sample("v2-person")), CREDENTIALS)


@pytest.mark.parametrize(
    ("headers", "credentials"),
    [
        pytest.param(basic(b"pd-webhook:wrong-password"), CREDENTIALS, id="wrong-password"),
        pytest.param(basic(b"someone:s3cr3t-P@ss:with-colon"), CREDENTIALS, id="wrong-user"),
        pytest.param(basic(b"pd-webhook:s3cr3t-P@ss"), CREDENTIALS, id="password-cut-at-its-colon"),
        pytest.param(
            HEADERS,
            {"basic_username": "pd-webhook:s3cr3t-P@ss", "basic_password": "with-colon"},
            id="split-on-the-first-colon-only",
        ),
        pytest.param(basic(b"pd-webhooks3cr3t-P@sswith-colon"), CREDENTIALS, id="no-colon"),
        pytest.param({"content-type": "application/json"}, CREDENTIALS, id="missing"),
        pytest.param({**HEADERS, "authorization": "Basic !!not*base64"}, CREDENTIALS, id="malformed-base64"),
        pytest.param({**HEADERS, "authorization": "Bearer " + PASSWORD}, CREDENTIALS, id="other-scheme"),
        pytest.param(HEADERS, {}, id="nothing-configured"),
        pytest.param(HEADERS, {"basic_username": USER}, id="no-password-configured"),
    ],
)
def test_wrong_missing_or_unconfigured_basic_credentials_are_refused(headers, credentials):
    with pytest.raises(AuthenticationError):
        SOURCE.authenticate(request(sample("v2-person"), headers), credentials)


@pytest.mark.parametrize(
    ("headers", "credentials", "status"),
    [
        pytest.param(HEADERS, CREDENTIALS, 200, id="good"),
        pytest.param(basic(b"pd-webhook:wrong"), CREDENTIALS, 401, id="wrong-password"),
        pytest.param({"content-type": "application/json"}, CREDENTIALS, 401, id="missing"),
        pytest.param({**HEADERS, "authorization": "Basic %%%"}, CREDENTIALS, 401, id="malformed-base64"),
        pytest.param({**HEADERS, "authorization": "Token abc"}, CREDENTIALS, 401, id="other-scheme"),
        pytest.param(HEADERS, {}, 401, id="fail-closed-without-credentials"),
    ],
)
def test_authentication_decides_between_401_and_accepted(settings, headers, credentials, status):
    reply = make_intake(settings, credentials).handle(request(sample("v2-person"), headers))

    assert reply.status == status
    if status == 401:
        assert answer(reply)["error"] == "unauthorized"
        assert queued(settings) == []
    else:
        assert answer(reply)["results"][0]["status"] == "queued"


# ---- the samples, field by field ------------------------------------------------------


def test_v2_create_person_is_a_full_record_mapped_at_intake():
    [lead] = SOURCE.parse(request(sample("v2-person")))

    assert lead.record_id == "8087566-person-8"
    assert lead.record is not None  # validated at intake...
    assert lead.enrichment is not None  # ...then completed with its organisation's name at dispatch
    assert (lead.enrichment["kind"], lead.enrichment["person_id"], lead.enrichment["org_id"]) == (
        "pipedrive_person",
        8,
        1,
    )
    assert lead.enrichment["person"]["name"] == "Maria Gonzalez"
    assert lead.record["phones"][0] == {"label": "work", "value": "+1 (512) 555-0142", "primary": True}
    assert lead.record["event"] == {
        "entity": "person",
        "action": "create",
        "version": "2.0",
        "id": "5359a602-6d1b-4562-a385-ccaa762bd722",
        "company_id": "8087566",
        "host": "acme.pipedrive.com",
    }
    doc = document(lead.record)
    assert doc.name == "Maria Gonzalez"
    assert doc.contact_number == "+15125550142"
    assert doc.alternate_number == "+15125550199"
    assert doc.email == "maria.gonzalez@acme-logistics.example"
    assert doc.company_name is None  # a v2 person carries only org_id: the dispatcher looks it up
    assert doc.occupation is None  # a custom field: the user maps it
    assert doc.labels == ("pipedrive", "person")


def test_v1_added_person_carries_the_organisation_name():
    [lead] = SOURCE.parse(request(sample("v1-person")))

    assert lead.record_id == "1689563-person-998"
    assert lead.record is not None
    assert lead.record["org_name"] == "Acme Logistics"
    assert lead.record["event"]["version"] == "1.0"
    doc = document(lead.record)
    assert doc.name == "Maria Gonzalez"
    assert doc.contact_number == "+15125550142"
    assert doc.alternate_number == "+15125550199"
    assert doc.email == "maria.gonzalez@acme-logistics.example"
    assert doc.company_name == "Acme Logistics"


def test_v2_create_lead_is_thin_and_asks_for_the_person_with_the_lead_details():
    [lead] = SOURCE.parse(request(sample("v2-lead")))

    assert lead.record is None
    assert lead.record_id == "8087566-person-11"
    spec = dict(lead.enrichment or {})
    detail = spec.pop("lead")
    assert spec == {
        "kind": "pipedrive_person",
        "person_id": 11,
        "org_id": 2,
        "company_id": "8087566",
        "host": "pd-us.pipedrive.com",
        "event": {
            "entity": "lead",
            "action": "create",
            "version": "2.0",
            "id": "b18fa830-6c0d-11ed-9826-a53d0eb706a5",
            "company_id": "8087566",
            "host": "pd-us.pipedrive.com",
        },
    }
    assert detail["id"] == "b1810230-6c0d-11ed-9826-a53d0eb706a5"
    assert detail["title"] == "Lead Org lead"
    assert detail["source_name"] == "Manually created"
    assert detail["label_ids"] == ["134b4de7-dcbc-46ae-b8f2-2eb328eebfe8", "4a5149be-a279-4be3-b62d-48eef2be5824"]
    assert detail["value"] == {"amount": 300, "currency": "EUR"}
    assert detail["custom_fields"] == {}
    json.dumps(spec)  # it travels in the SQS message


def test_v2_create_deal_is_thin_and_keyed_like_its_person():
    [deal] = SOURCE.parse(request(sample("v2-deal")))
    [person] = SOURCE.parse(request(sample("v2-person")))

    assert deal.record is None
    assert deal.record_id == person.record_id == "8087566-person-8"  # one call per person
    spec = deal.enrichment or {}
    assert (spec["kind"], spec["person_id"], spec["org_id"]) == ("pipedrive_person", 8, 1)
    assert spec["event"]["entity"] == "deal"
    assert {k: spec["deal"][k] for k in ("id", "title", "stage_id", "pipeline_id", "status", "value", "currency")} == {
        "id": 8,
        "title": "Sample Org deal",
        "stage_id": 2,
        "pipeline_id": 1,
        "status": "open",
        "value": 100,
        "currency": "EUR",
    }


def test_a_lead_without_a_person_is_kept_under_its_own_key_and_has_no_phone():
    body = sample("v2-lead")
    body["data"]["person_id"] = None

    [lead] = SOURCE.parse(request(body))

    assert lead.enrichment is None
    assert lead.record_id == "8087566-lead-b1810230-6c0d-11ed-9826-a53d0eb706a5"
    assert lead.record is not None
    assert lead.record["lead"]["title"] == "Lead Org lead"


def test_phones_are_ordered_primary_first_and_the_alternate_is_another_number():
    body = sample("v2-person")
    body["data"]["phones"] = [
        {"label": "home", "value": "+1 512 555 0199", "primary": False},
        {"label": "other", "value": "", "primary": False},
        {"label": "work", "value": "+1 (512) 555-0142", "primary": True},
    ]
    body["data"]["emails"] = [
        {"label": "home", "value": "maria@home.example", "primary": False},
        {"label": "work", "value": "maria.gonzalez@acme-logistics.example", "primary": True},
    ]

    [lead] = SOURCE.parse(request(body))

    doc = document(lead.record)
    assert (doc.contact_number, doc.alternate_number) == ("+15125550142", "+15125550199")
    assert doc.email == "maria.gonzalez@acme-logistics.example"


# ---- custom fields, mapped by the user -------------------------------------------------


def test_user_mapped_custom_fields_of_a_v2_person():
    [lead] = SOURCE.parse(request(sample("v2-person")))

    doc = document(lead.record, USER_MAPPING)

    assert doc.occupation == "Director of Operations"
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX 78701"
    assert lead.record is not None
    assert lead.record["custom_fields"][ADDRESS_FIELD]["formatted_address"].startswith("1200 Congress Ave Suite 400")


def test_user_mapped_custom_fields_of_a_v1_person_use_the_same_paths():
    body = sample("v1-person")
    body["current"].update(
        {
            JOB_TITLE_FIELD: "Director of Operations",
            ADDRESS_FIELD: "1200 Congress Ave, Suite 400, Austin, TX 78701",
            f"{ADDRESS_FIELD}_formatted_address": "1200 Congress Ave Suite 400, Austin, TX 78701, USA",
        }
    )

    [lead] = SOURCE.parse(request(body))

    doc = document(lead.record, {**USER_MAPPING, "about": f"custom_fields.{ADDRESS_FIELD}.formatted_address"})
    assert doc.occupation == "Director of Operations"
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX 78701"
    assert doc.about == "1200 Congress Ave Suite 400, Austin, TX 78701, USA"


def test_a_user_mapping_from_settings_reaches_the_queued_document(settings):
    intake = make_intake(dataclasses.replace(settings, field_mappings={"pipedrive": USER_MAPPING}))
    body = sample("v2-person")
    del body["data"]["org_id"]  # a person without an organisation is queued with its document

    reply = intake.handle(request(body))

    assert reply.status == 200
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.occupation == "Director of Operations"
    assert message.document.address == "1200 Congress Ave, Suite 400, Austin, TX 78701"
    assert message.document.document_id == "pipedrive-8087566-person-8"


# ---- answers through the intake --------------------------------------------------------


def test_a_person_is_queued_with_200(intake, settings):
    reply = intake.handle(request(sample("v2-person")))

    assert reply.status == 200
    assert answer(reply) == {
        "accepted": 1,
        "rejected": 0,
        "results": [{"index": 0, "status": "queued", "lead_id": "pipedrive#8087566-person-8"}],
    }
    [message] = queued(settings)
    assert message.document is None  # validated here; its organisation's name is fetched at dispatch
    assert message.enrichment is not None
    assert (message.enrichment["person"]["name"], message.enrichment["org_id"]) == ("Maria Gonzalez", 1)


def test_a_lead_is_queued_for_enrichment_with_200(intake, settings):
    reply = intake.handle(request(sample("v2-lead")))

    assert reply.status == 200
    assert answer(reply)["results"] == [{"index": 0, "status": "queued", "lead_id": "pipedrive#8087566-person-11"}]
    [message] = queued(settings)
    assert message.document is None
    assert message.enrichment is not None
    assert message.enrichment["kind"] == "pipedrive_person"
    assert message.enrichment["lead"]["title"] == "Lead Org lead"


def ignored_events() -> list[Any]:
    v2, v1 = sample("v2-person"), sample("v1-person")

    def v2_event(action: str, entity: str) -> dict[str, Any]:
        body = copy.deepcopy(v2)
        body["meta"].update(action=action, entity=entity)
        return body

    def v1_event(event: str) -> dict[str, Any]:
        body = copy.deepcopy(v1)
        body["event"] = event
        body["meta"]["action"], body["meta"]["object"] = event.split(".")
        return body

    return [
        pytest.param(v2_event("change", "person"), id="change.person"),
        pytest.param(v2_event("delete", "deal"), id="delete.deal"),
        pytest.param(v2_event("create", "organization"), id="create.organization"),
        pytest.param(v2_event("create", "activity"), id="create.activity"),
        pytest.param(v1_event("updated.person"), id="v1-updated.person"),
        pytest.param(v1_event("added.organization"), id="v1-added.organization"),
        pytest.param(v1_event("added.deal"), id="v1-added.deal"),
    ]


@pytest.mark.parametrize("body", ignored_events())
def test_ignored_events_get_200_and_nothing_is_queued_or_stored(intake, settings, store, body):
    reply = intake.handle(request(body))

    assert reply.status == 200
    assert answer(reply) == {
        "accepted": 0,
        "rejected": 0,
        "results": [],
        "message": "nothing to call in this event: ignored",
    }
    assert queued(settings) == []
    assert store.get("pipedrive#8087566-person-8") is None


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        pytest.param(b"{not json", HEADERS, 400, "not valid JSON", id="malformed-json"),
        pytest.param(b"", HEADERS, 400, "empty", id="empty"),
        pytest.param(b"\xff\xfe\x00bad", HEADERS, 400, "UTF-8", id="not-utf8"),
        pytest.param(b"[1, 2]", HEADERS, 400, "expected a Pipedrive webhook object", id="array"),
        pytest.param(b'{"hello": "world"}', HEADERS, 400, "not a Pipedrive webhook", id="foreign-object"),
        pytest.param(
            json.dumps({"meta": {"action": "create", "entity": "person"}, "data": None}).encode(),
            HEADERS,
            400,
            "create.person: `data` is missing",
            id="create-without-data",
        ),
        pytest.param(
            json.dumps({"meta": {"action": "create", "entity": "person"}, "data": {"name": "X"}}).encode(),
            HEADERS,
            400,
            "has no id",
            id="person-without-id",
        ),
        pytest.param(
            json.dumps({"v": 1, "event": "added.person", "meta": {}, "current": None}).encode(),
            HEADERS,
            400,
            "`current` is missing",
            id="v1-without-current",
        ),
        pytest.param(b"name=Maria", {**HEADERS, "content-type": "text/plain"}, 415, "Content-Type", id="media-type"),
    ],
)
def test_malformed_bodies_from_an_authenticated_sender_get_200_naming_the_problem(
    intake, settings, body, headers, status, words
):
    reply = intake.handle(request(body, headers))

    assert reply.status == 200  # a non-2xx would feed Pipedrive's ban counter
    payload = answer(reply)
    assert words in payload["message"]
    assert payload["status"] == status  # what we would have answered a sender without a ban counter
    assert payload["error"] in ("invalid_payload", "unsupported_media_type")
    assert queued(settings) == []


def test_an_oversized_body_gets_200_too(intake, settings):
    intake.settings = dataclasses.replace(settings, max_body_bytes=100)

    reply = intake.handle(request(sample("v2-person")))

    assert reply.status == 200
    assert answer(reply)["error"] == "body_too_large"


def test_a_person_without_a_phone_gets_200_with_the_reason_and_is_recorded(intake, settings, store):
    body = sample("v2-person")
    body["data"]["phones"] = []

    reply = intake.handle(request(body))

    assert reply.status == 200
    assert answer(reply) == {
        "accepted": 0,
        "rejected": 1,
        "results": [
            {
                "index": 0,
                "status": "rejected",
                "lead_id": "pipedrive#8087566-person-8",
                "reason": "contact_number: missing",
            }
        ],
    }
    assert store.get("pipedrive#8087566-person-8")["status"] == "rejected"
    assert queued(settings) == []


def test_a_lead_without_a_person_gets_200_and_is_recorded_as_rejected(intake, settings, store):
    body = sample("v2-lead")
    body["data"]["person_id"] = None

    reply = intake.handle(request(body))

    assert reply.status == 200
    [result] = answer(reply)["results"]
    assert result["status"] == "rejected"
    assert result["lead_id"] == "pipedrive#8087566-lead-b1810230-6c0d-11ed-9826-a53d0eb706a5"
    assert store.get(result["lead_id"])["reason"] == "contact_number: missing"


def test_a_lead_that_cannot_be_stored_gets_503_so_pipedrive_retries(intake, settings):
    class BrokenQueue:
        def send(self, messages: list[LeadMessage]) -> None:
            raise QueueError("SendMessageBatch failed: EndpointConnectionError")

    intake.queue = BrokenQueue()

    reply = intake.handle(request(sample("v2-person")))

    assert reply.status == 503
    assert reply.headers["Retry-After"] == "5"
    assert answer(reply)["error"] == "unavailable"


def test_a_redelivered_event_is_one_lead(intake, settings, store):
    body = sample("v2-person")
    first = intake.handle(request(body))
    [message] = queued(settings)
    store.claim(message, "m-1")  # the dispatcher is calling the person
    body["meta"]["attempt"] = 2

    second = intake.handle(request(body))

    assert first.status == second.status == 200
    assert answer(second)["results"] == [{"index": 0, "status": "duplicate", "lead_id": "pipedrive#8087566-person-8"}]
