"""The HubSpot source: v3/v2/v1 signatures and the API key (each computed here from HubSpot's
documented algorithm), both payload families (Webhooks API events, workflow bodies), the
record-id rule, the built-in mapping field by field, and every status code through the intake."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import importlib
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from lead_caller.crms.hubspot.webhook import HubSpotSource
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.queue import LeadQueue
from lead_caller.secrets import webhook_credentials
from lead_caller.sources.base import AuthenticationError, ParsedLead, PayloadError, WebhookRequest
from lead_caller.store import LeadStore

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # the docs' placeholder client secret
HOST = "abcdefghij.execute-api.us-east-1.amazonaws.com"
URL = f"https://{HOST}/webhooks/hubspot"
SAMPLE_NOW_MS = 1767225600000  # "now" of the reference samples (2026-01-01T00:00:00Z)
API_KEY = "hs-workflow-key-6c1f0a9e2b7d4c3a8f5e"
EVENTS = Path(__file__).resolve().parents[2] / "events"

# Reference samples 9.1-9.4 (crm-webhooks.md), byte for byte where the reference gives bytes.
SAMPLE_91 = (
    b'[{"eventId":3816279480,"subscriptionId":2281147,"portalId":62515,"appId":1160452,"occurredAt":1767225598123,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":1246978,"changeFlag":"NEW",'
    b'"changeSource":"CRM_UI","sourceId":"userId:4567891"},{"eventId":3816279481,"subscriptionId":2281147,'
    b'"portalId":62515,"appId":1160452,"occurredAt":1767225598456,"subscriptionType":"contact.creation",'
    b'"attemptNumber":0,"objectId":1246979,"changeFlag":"NEW","changeSource":"FORM",'
    b'"sourceId":"form:2f9b1c44-7d3e-4c55-9b57-0a1e2c3d4e5f"}]'
)
SAMPLE_92 = (
    b'[{"eventId":1827369112,"subscriptionId":3391856,"portalId":62515,"appId":1160452,"occurredAt":1767225598741,'
    b'"subscriptionType":"object.creation","attemptNumber":0,"objectId":65059681032,"objectTypeId":"0-1",'
    b'"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:4567891"}]'
)
SAMPLE_93 = (
    b'{"hs_object_id":"1246978","firstname":"Maria","lastname":"Gonzalez",'
    b'"email":"maria.gonzalez@acme-logistics.example","phone":"+1 (512) 555-0142","mobilephone":"+1 512 555 0199",'
    b'"jobtitle":"Director of Operations","company":"Acme Logistics","address":"1200 Congress Ave, Suite 400",'
    b'"city":"Austin","state":"TX","zip":"78701","country":"United States","hs_lead_status":"NEW",'
    b'"lifecyclestage":"lead","message":"Requested a callback about fleet pricing."}'
)
_FORM = "2f9b1c44-7d3e-4c55-9b57-0a1e2c3d4e5f"


def _prop(value: str, *versions: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "versions": list(versions)}


PROFILE_94: dict[str, Any] = {
    "vid": 1246978,
    "canonical-vid": 1246978,
    "merged-vids": [],
    "portal-id": 62515,
    "is-contact": True,
    "properties": {
        "firstname": _prop("Maria", {"value": "Maria", "source-type": "FORM", "source-id": _FORM, "selected": False}),
        "lastname": _prop("Gonzalez", {"value": "Gonzalez", "source-type": "FORM", "source-id": _FORM}),
        "email": _prop("maria.gonzalez@acme-logistics.example"),
        "phone": _prop("+1 (512) 555-0142", {"value": "+1 (512) 555-0142", "timestamp": 1767225598123}),
        "mobilephone": _prop("+1 512 555 0199", {"value": "+1 512 555 0199", "source-type": "CRM_UI"}),
        "jobtitle": _prop("Director of Operations"),
        "company": _prop("Acme Logistics"),
        "address": _prop("1200 Congress Ave, Suite 400"),
        "city": _prop("Austin"),
        "state": _prop("TX"),
        "zip": _prop("78701"),
        "country": _prop("United States"),
        "message": _prop("Requested a callback about fleet pricing."),
        "hs_lead_status": _prop("NEW"),
        "lifecyclestage": _prop("lead"),
    },
    "form-submissions": [],
    "list-memberships": [],
    "identity-profiles": [
        {"vid": 1246978, "identities": [{"type": "EMAIL", "value": "maria.gonzalez@acme-logistics.example"}]}
    ],
    "merge-audits": [],
}
SAMPLE_94 = json.dumps(PROFILE_94).encode()
# The docs' v1 example body and its documented signature (validating-requests, "v1 request signature examples").
DOC_V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
DOC_V1_SIGNATURE = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
DOC_V2_POST_SIGNATURE = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"

MARIA_DOCUMENT = {
    "name": "Maria Gonzalez",
    "email": "maria.gonzalez@acme-logistics.example",
    "contact_number": "+15125550142",
    "alternate_number": "+15125550199",
    "occupation": "Director of Operations",
    "company_name": "Acme Logistics",
    "address": "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States",
    "about": "Requested a callback about fleet pricing.",
    "labels": ["NEW", "lead"],
}

SOURCE = HubSpotSource()


# ── signing, as HubSpot documents it ────────────────────────────────────


def v3_headers(
    body: bytes, uri: str = URL, secret: str = SECRET, timestamp: int = SAMPLE_NOW_MS, method: str = "POST"
) -> dict[str, str]:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp)); `uri` as HubSpot signs it (decoded)."""
    source = method.encode() + uri.encode() + body + str(timestamp).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signature,
        "x-hubspot-request-timestamp": str(timestamp),
    }


def v2_headers(body: bytes, uri: str = URL, secret: str = SECRET, method: str = "POST") -> dict[str, str]:
    """hex(SHA-256(secret + method + uri + body)), the URI exactly as requested."""
    signature = hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()
    return {"content-type": "application/json", "x-hubspot-signature-version": "v2", "x-hubspot-signature": signature}


def v1_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """hex(SHA-256(secret + body))."""
    signature = hashlib.sha256(secret.encode() + body).hexdigest()
    return {"content-type": "application/json", "x-hubspot-signature-version": "v1", "x-hubspot-signature": signature}


def request(
    body: bytes, headers: dict[str, str], public_url: str = URL, now_ms: float = SAMPLE_NOW_MS + 50
) -> WebhookRequest:
    return WebhookRequest(
        source="hubspot",
        method="POST",
        path="/webhooks/hubspot",
        query=public_url.partition("?")[2],
        headers=headers,
        body=body,
        public_url=public_url,
        received_at=now_ms / 1000,
    )


def authentic(body: bytes, headers: dict[str, str], credentials: dict[str, Any], **kwargs: Any) -> bool:
    try:
        SOURCE.authenticate(request(body, headers, **kwargs), credentials)
    except AuthenticationError:
        return False
    return True


CREDENTIALS = {"client_secret": SECRET}


# ── v3 ─────────────────────────────────────────────────────────────────


def test_v3_signature_of_sample_9_1_is_accepted():
    assert authentic(SAMPLE_91, v3_headers(SAMPLE_91), CREDENTIALS)


def test_v3_timestamps_within_five_minutes_either_way_are_accepted():
    assert authentic(SAMPLE_91, v3_headers(SAMPLE_91, timestamp=SAMPLE_NOW_MS - 299_000), CREDENTIALS)
    assert authentic(SAMPLE_91, v3_headers(SAMPLE_91, timestamp=SAMPLE_NOW_MS + 60_000), CREDENTIALS)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(SAMPLE_91.replace(b"1246979", b"1246970"), v3_headers(SAMPLE_91), id="tampered-body"),
        pytest.param(
            SAMPLE_91, v3_headers(SAMPLE_91, secret="zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), id="wrong-secret"
        ),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, timestamp=SAMPLE_NOW_MS - 301_000), id="stale-timestamp"),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, timestamp=SAMPLE_NOW_MS + 301_000), id="future-timestamp"),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, uri="https://evil.example/webhooks/hubspot"), id="other-host"),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, uri=f"https://{HOST}/webhooks/generic"), id="other-path"),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, uri=f"http://{HOST}/webhooks/hubspot"), id="other-scheme"),
        pytest.param(SAMPLE_91, v3_headers(SAMPLE_91, method="GET"), id="other-method"),
        pytest.param(
            SAMPLE_91,
            {**v3_headers(SAMPLE_91), "x-hubspot-request-timestamp": "1767225600000.0"},
            id="malformed-timestamp",
        ),
        pytest.param(
            SAMPLE_91,
            {k: v for k, v in v3_headers(SAMPLE_91).items() if k != "x-hubspot-request-timestamp"},
            id="no-timestamp",
        ),
        pytest.param(SAMPLE_91, {**v3_headers(SAMPLE_91), "x-hubspot-signature-v3": "é" * 44}, id="non-ascii"),
        pytest.param(SAMPLE_91, {**v3_headers(SAMPLE_91), "x-hubspot-signature-v3": ""}, id="empty-signature"),
    ],
)
def test_v3_failures_are_refused(body, headers):
    assert not authentic(body, headers, CREDENTIALS)


def test_v3_is_verified_over_the_url_with_hubspots_table_of_escapes_decoded():
    query = "next=https%3A%2F%2Fcrm.example%2Fa%3Fb%40c&list=%28a%2Cb%29%3B%21%24%27%2A&sp=a%20b&pct=%2541&eq=%3D"
    public_url = f"{URL}?{query}"
    # What HubSpot signs: the 12 escapes of its table decoded, every other escape (%20, %25, %3D) kept.
    as_signed = f"{URL}?next=https://crm.example/a?b@c&list=(a,b);!$'*&sp=a%20b&pct=%2541&eq=%3D"

    assert authentic(SAMPLE_91, v3_headers(SAMPLE_91, uri=as_signed), CREDENTIALS, public_url=public_url)
    assert not authentic(SAMPLE_91, v3_headers(SAMPLE_91, uri=public_url), CREDENTIALS, public_url=public_url)


def test_v3_decodes_lower_case_escapes_too():
    public_url = f"{URL}?next=https%3a%2f%2fcrm.example"

    assert authentic(
        SAMPLE_91, v3_headers(SAMPLE_91, uri=f"{URL}?next=https://crm.example"), CREDENTIALS, public_url=public_url
    )


def test_v3_decides_when_present_even_with_a_valid_api_key():
    credentials = {**CREDENTIALS, "api_key": API_KEY}
    headers = {**v3_headers(SAMPLE_93, secret="wrong-secret"), "x-api-key": API_KEY}

    assert not authentic(SAMPLE_93, headers, credentials)


# ── v2 (workflows) ─────────────────────────────────────────────────────


def test_v2_reproduces_the_docs_post_example():
    body = b'{"example_field":"example_value"}'
    uri = "https://www.example.com/webhook_uri"
    assert hashlib.sha256(SECRET.encode() + b"POST" + uri.encode() + body).hexdigest() == DOC_V2_POST_SIGNATURE
    headers = {"x-hubspot-signature-version": "v2", "x-hubspot-signature": DOC_V2_POST_SIGNATURE}

    assert authentic(body, headers, CREDENTIALS, public_url=uri)
    assert authentic(
        body, {**headers, "x-hubspot-signature": DOC_V2_POST_SIGNATURE.upper()}, CREDENTIALS, public_url=uri
    )


def test_v2_signed_workflow_bodies_are_accepted_and_tampering_refused():
    assert authentic(SAMPLE_93, v2_headers(SAMPLE_93), CREDENTIALS)
    assert authentic(SAMPLE_94, v2_headers(SAMPLE_94), CREDENTIALS)
    assert not authentic(SAMPLE_93.replace(b"0142", b"0143"), v2_headers(SAMPLE_93), CREDENTIALS)
    assert not authentic(SAMPLE_93, v2_headers(SAMPLE_93, secret="other"), CREDENTIALS)
    assert not authentic(SAMPLE_93, v2_headers(SAMPLE_93, uri="https://evil.example/webhooks/hubspot"), CREDENTIALS)


def test_v2_uses_the_url_exactly_as_requested():
    public_url = f"{URL}?next=https%3A%2F%2Fcrm.example"

    assert authentic(SAMPLE_93, v2_headers(SAMPLE_93, uri=public_url), CREDENTIALS, public_url=public_url)
    decoded = f"{URL}?next=https://crm.example"
    assert not authentic(SAMPLE_93, v2_headers(SAMPLE_93, uri=decoded), CREDENTIALS, public_url=public_url)


def test_v2_is_not_accepted_for_webhooks_api_arrays():
    assert not authentic(SAMPLE_91, v2_headers(SAMPLE_91), CREDENTIALS)


# ── v1 (legacy Webhooks API, opt-in) ───────────────────────────────────


def test_v1_reproduces_the_docs_test_vector_and_is_refused_unless_allowed():
    assert hashlib.sha256(SECRET.encode() + DOC_V1_BODY).hexdigest() == DOC_V1_SIGNATURE
    headers = {"x-hubspot-signature-version": "v1", "x-hubspot-signature": DOC_V1_SIGNATURE}

    assert not authentic(DOC_V1_BODY, headers, CREDENTIALS)
    assert not authentic(DOC_V1_BODY, headers, {**CREDENTIALS, "allow_v1": "true"})  # only a JSON true
    assert authentic(DOC_V1_BODY, headers, {**CREDENTIALS, "allow_v1": True})


def test_v1_with_allow_v1_still_checks_body_and_secret_and_is_not_for_workflows():
    allowed = {**CREDENTIALS, "allow_v1": True}

    assert authentic(SAMPLE_91, v1_headers(SAMPLE_91), allowed)
    assert not authentic(SAMPLE_91.replace(b"62515", b"62516"), v1_headers(SAMPLE_91), allowed)
    assert not authentic(SAMPLE_91, v1_headers(SAMPLE_91, secret="other"), allowed)
    assert not authentic(SAMPLE_93, v1_headers(SAMPLE_93), allowed)


# ── API key, configuration ─────────────────────────────────────────────


def test_an_api_key_in_the_configured_header_is_accepted():
    credentials = {"api_key": API_KEY, "api_key_header": "X-Lead-Key"}

    assert authentic(SAMPLE_93, {"x-lead-key": API_KEY}, credentials)
    assert not authentic(SAMPLE_93, {"x-lead-key": API_KEY + "x"}, credentials)
    assert not authentic(SAMPLE_93, {"x-api-key": API_KEY}, credentials)
    assert not authentic(SAMPLE_93, {}, credentials)


def test_the_api_key_header_defaults_to_x_api_key_and_authorization_means_bearer():
    assert authentic(SAMPLE_93, {"x-api-key": API_KEY}, {"api_key": API_KEY})
    bearer = {"api_key": API_KEY, "api_key_header": "authorization"}
    assert authentic(SAMPLE_93, {"authorization": f"Bearer {API_KEY}"}, bearer)
    assert not authentic(SAMPLE_93, {"authorization": API_KEY}, bearer)


@pytest.mark.parametrize(
    ("headers", "credentials"),
    [
        pytest.param(v3_headers(SAMPLE_91), {}, id="nothing-configured"),
        pytest.param(v3_headers(SAMPLE_91), {"client_secret": "  "}, id="blank-secret"),
        pytest.param({"content-type": "application/json"}, CREDENTIALS, id="no-signature"),
        pytest.param(v3_headers(SAMPLE_91), {"api_key": API_KEY}, id="signature-without-secret"),
    ],
)
def test_fails_closed(headers, credentials):
    assert not authentic(SAMPLE_91, headers, credentials)


# ── parsing: Webhooks API ──────────────────────────────────────────────


def thin(portal: int, object_id: int) -> ParsedLead:
    enrichment = {"kind": "hubspot_contact", "object_id": str(object_id), "portal_id": portal}
    return ParsedLead(record=None, record_id=f"{portal}:{object_id}", enrichment=enrichment)


def test_sample_9_1_contact_creation_events_become_thin_leads():
    assert SOURCE.parse(request(SAMPLE_91, {})) == [thin(62515, 1246978), thin(62515, 1246979)]


def test_sample_9_2_object_creation_of_a_contact_becomes_a_thin_lead():
    assert SOURCE.parse(request(SAMPLE_92, {})) == [thin(62515, 65059681032)]


def test_the_docs_mixed_example_keeps_only_the_creation():
    body = json.dumps(
        [
            {"objectId": 1246965, "propertyName": "lifecyclestage", "propertyValue": "subscriber", "portalId": 33,
             "eventType": "contact.propertyChange", "eventId": 3816279340},
            {"objectId": 1246978, "changeSource": "IMPORT", "eventId": 3816279480, "portalId": 33,
             "eventType": "contact.creation", "attemptNumber": 0},
        ]
    ).encode()  # fmt: skip

    assert SOURCE.parse(request(body, {})) == [thin(33, 1246978)]


@pytest.mark.parametrize(
    "event",
    [
        {"subscriptionType": "contact.propertyChange", "propertyName": "email", "propertyValue": "a@b.example"},
        {"subscriptionType": "contact.deletion"},
        {"subscriptionType": "deal.creation"},
        {"subscriptionType": "company.creation"},
        {"subscriptionType": "object.creation", "objectTypeId": "0-3"},
        {"subscriptionType": "object.creation"},
        {"subscriptionType": "object.propertyChange", "objectTypeId": "0-1"},
        {"eventType": "contact.privacyDeletion"},
        {},
    ],
)
def test_other_event_types_are_ignored(event):
    body = json.dumps([{"portalId": 62515, "objectId": 5, "eventId": 1, **event}]).encode()

    assert SOURCE.parse(request(body, {})) == []


def test_a_creation_event_without_an_object_id_is_a_lead_without_id():
    body = json.dumps([{"portalId": 62515, "subscriptionType": "contact.creation"}]).encode()

    assert SOURCE.parse(request(body, {})) == [ParsedLead(record=None)]


def test_a_batch_of_100_events_with_repeats_keeps_one_lead_per_event():
    events = [
        {"eventId": 1, "portalId": 62515, "subscriptionType": "contact.creation", "objectId": 1000 + i % 60}
        for i in range(100)
    ]

    leads = SOURCE.parse(request(json.dumps(events).encode(), {}))

    assert len(leads) == 100
    assert len({lead.record_id for lead in leads}) == 60


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[{not json", "not valid JSON"),
        (b"{broken", "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe[]", "UTF-8"),
        (b'"text"', "JSON str"),
        (b"42", "JSON int"),
        (b'[{"subscriptionType":"contact.creation","objectId":1},"x"]', "event 1 is a str"),
    ],
)
def test_malformed_bodies_raise_400(body, words):
    with pytest.raises(PayloadError) as raised:
        SOURCE.parse(request(body, {}))

    assert raised.value.status == 400
    assert words in str(raised.value)


# ── parsing: workflows, record ids ─────────────────────────────────────


def test_workflow_bodies_become_flat_records_with_the_object_and_portal_ids():
    [custom] = SOURCE.parse(request(SAMPLE_93, {}))
    [profile] = SOURCE.parse(request(SAMPLE_94, {}))

    assert custom.record_id == "1246978"  # the custom body names no portal
    assert custom.record is not None
    assert custom.record["firstname"] == "Maria"
    assert profile.record_id == "62515:1246978"
    assert profile.record is not None
    assert (profile.record["firstname"], profile.record["phone"]) == ("Maria", "+1 (512) 555-0142")
    assert profile.record["hs_object_id"] == "1246978"
    assert profile.record["portal_id"] == "62515"
    assert profile.enrichment is None


def test_the_configured_portal_id_completes_a_workflow_record_id():
    credentials = {**CREDENTIALS, "portal_id": 62515}
    signed = request(SAMPLE_93, v2_headers(SAMPLE_93))

    SOURCE.authenticate(signed, credentials)
    [lead] = SOURCE.parse(signed, credentials)

    assert lead.record_id == "62515:1246978"  # the same key as the Webhooks API event of this contact
    assert SOURCE.parse(signed)[0].record_id == "1246978"  # without a configured portal: the object id alone


@pytest.mark.parametrize(
    ("body", "record_id"),
    [
        ({"objectId": 77, "portalId": 9, "firstname": "A"}, "9:77"),
        ({"object_id": "77", "hub_id": "9"}, "9:77"),
        ({"vid": 77}, "77"),
        ({"id": "77", "portal_id": 9}, "9:77"),
        ({"firstname": "No Id", "portalId": 9}, None),
        ({"hs_object_id": "77", "portalId": "not-a-portal"}, "77"),
    ],
)
def test_record_id_rule_for_workflow_bodies(body, record_id):
    [lead] = SOURCE.parse(request(json.dumps(body).encode(), {}))

    assert lead.record_id == record_id


# ── through the intake (moto): status codes, queued messages, documents ───


@pytest.fixture
def hubspot_credentials() -> dict[str, Any]:
    """The "hubspot" webhook credentials the intake sees (tests may change them)."""
    return {"client_secret": SECRET, "api_key": API_KEY}


@pytest.fixture
def intake(settings, hubspot_credentials) -> Intake:
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: hubspot_credentials if source == "hubspot" else {},
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def live(body: bytes, headers: dict[str, str] | None = None, public_url: str = URL) -> WebhookRequest:
    """A request received now, v3-signed unless headers are given."""
    stamp = now_ms()
    return request(body, headers or v3_headers(body, timestamp=stamp), public_url, now_ms=stamp)


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [LeadMessage.from_json(message["Body"]) for message in messages]


def queue_length(settings) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=settings.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def answer(reply) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(reply.body)
    return body


def document_of(message: LeadMessage) -> dict[str, Any]:
    assert message.document is not None
    return message.document.to_unpod()


def test_a_signed_contact_creation_batch_gets_200_and_is_queued_for_enrichment(intake, settings):
    reply = intake.handle(live(SAMPLE_91))

    assert reply.status == 200
    assert answer(reply)["results"] == [
        {"index": 0, "status": "queued", "lead_id": "hubspot#62515:1246978"},
        {"index": 1, "status": "queued", "lead_id": "hubspot#62515:1246979"},
    ]
    messages = sorted(queued(settings), key=lambda message: message.record_id)
    assert [(m.record_id, m.document, m.enrichment) for m in messages] == [
        ("62515:1246978", None, {"kind": "hubspot_contact", "object_id": "1246978", "portal_id": 62515}),
        ("62515:1246979", None, {"kind": "hubspot_contact", "object_id": "1246979", "portal_id": 62515}),
    ]


def test_an_object_creation_of_a_contact_gets_200_and_is_queued(intake, settings):
    reply = intake.handle(live(SAMPLE_92))

    assert reply.status == 200
    assert [m.lead_id for m in queued(settings)] == ["hubspot#62515:65059681032"]


def test_a_batch_of_only_other_event_types_gets_200_and_queues_nothing(intake, settings):
    body = json.dumps(
        [
            {"portalId": 62515, "objectId": 1, "subscriptionType": "contact.propertyChange"},
            {"portalId": 62515, "objectId": 2, "subscriptionType": "deal.creation"},
            {"portalId": 62515, "objectId": 3, "subscriptionType": "object.creation", "objectTypeId": "0-2"},
        ]
    ).encode()

    reply = intake.handle(live(body))

    assert reply.status == 200
    assert answer(reply) == {"accepted": 0, "rejected": 0, "results": []}
    assert queued(settings) == []


def test_a_mixed_batch_queues_only_the_contact_creations(intake, settings):
    events = [
        *json.loads(SAMPLE_91),
        {"portalId": 62515, "objectId": 9, "subscriptionType": "deal.creation"},
        {"portalId": 62515, "objectId": 1246978, "subscriptionType": "contact.propertyChange"},
    ]

    reply = intake.handle(live(json.dumps(events).encode()))

    assert reply.status == 200
    assert answer(reply)["accepted"] == 2
    assert sorted(m.record_id for m in queued(settings)) == ["62515:1246978", "62515:1246979"]


def test_100_events_with_repeats_get_200_and_one_lead_per_contact(intake, settings):
    events = [
        {"eventId": i, "portalId": 62515, "subscriptionType": "contact.creation", "objectId": 5000 + i % 60}
        for i in range(100)
    ]

    reply = intake.handle(live(json.dumps(events).encode()))

    assert reply.status == 200
    statuses = [result["status"] for result in answer(reply)["results"]]
    assert (statuses.count("queued"), statuses.count("duplicate")) == (60, 40)
    assert queue_length(settings) == 60


def test_a_v2_signed_custom_workflow_body_is_mapped_field_by_field(intake, settings):
    reply = intake.handle(live(SAMPLE_93, v2_headers(SAMPLE_93)))

    assert reply.status == 200
    assert answer(reply)["results"] == [{"index": 0, "status": "queued", "lead_id": "hubspot#1246978"}]
    [message] = queued(settings)
    assert message.enrichment is None
    assert document_of(message) == {**MARIA_DOCUMENT, "document_id": "hubspot-1246978"}


def test_a_contact_profile_workflow_body_maps_to_the_same_document(intake, settings):
    reply = intake.handle(live(SAMPLE_94))

    assert reply.status == 200
    [message] = queued(settings)
    assert message.lead_id == "hubspot#62515:1246978"
    assert document_of(message) == {**MARIA_DOCUMENT, "document_id": "hubspot-62515:1246978"}


def test_workflow_and_webhooks_api_deliveries_of_one_contact_share_a_lead_id(intake, settings, hubspot_credentials):
    hubspot_credentials["portal_id"] = "62515"

    intake.handle(live(SAMPLE_91))
    intake.handle(live(SAMPLE_93, {"content-type": "application/json", "x-api-key": API_KEY}))

    lead_ids = [m.lead_id for m in queued(settings)]
    assert lead_ids.count("hubspot#62515:1246978") == 2  # the dispatcher's claim calls it once


def test_field_mappings_can_route_a_custom_property_into_context(settings, hubspot_credentials):
    custom = dataclasses.replace(settings, field_mappings={"hubspot": {"context": "call_objective"}})
    intake = Intake(
        settings=custom,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: hubspot_credentials,
    )
    flat = json.dumps({**json.loads(SAMPLE_93), "call_objective": "Offer the fleet plan"}).encode()
    profile = dict(PROFILE_94, vid=1246999, **{"canonical-vid": 1246999})
    profile["properties"] = {**PROFILE_94["properties"], "call_objective": _prop("Book a demo")}

    assert intake.handle(live(flat)).status == 200
    assert intake.handle(live(json.dumps(profile).encode())).status == 200

    contexts = {m.record_id: document_of(m).get("context") for m in queued(settings)}
    assert contexts == {"1246978": "Offer the fleet plan", "62515:1246999": "Book a demo"}


def test_a_workflow_contact_that_cannot_be_called_gets_200_and_is_recorded(intake, settings, store):
    body = json.dumps({"hs_object_id": "88", "firstname": "No", "lastname": "Phone"}).encode()

    reply = intake.handle(live(body))

    assert reply.status == 200  # a 4xx would not be retried by workflows anyway; nothing to retry
    assert answer(reply)["results"] == [
        {"index": 0, "status": "rejected", "lead_id": "hubspot#88", "reason": "contact_number: missing"}
    ]
    assert store.get("hubspot#88")["status"] == "rejected"
    assert queued(settings) == []


def test_an_api_key_authenticated_workflow_body_is_accepted(intake, settings):
    reply = intake.handle(live(SAMPLE_93, {"content-type": "application/json", "x-api-key": API_KEY}))

    assert reply.status == 200
    assert len(queued(settings)) == 1


@pytest.mark.parametrize(
    "make_request",
    [
        pytest.param(lambda: live(SAMPLE_91, v3_headers(SAMPLE_91, timestamp=now_ms() - 600_000)), id="stale-v3"),
        pytest.param(
            lambda: live(SAMPLE_91, v3_headers(SAMPLE_91, secret="wrong", timestamp=now_ms())), id="wrong-secret"
        ),
        pytest.param(lambda: live(SAMPLE_91, v1_headers(SAMPLE_91)), id="v1-not-allowed"),
        pytest.param(lambda: live(SAMPLE_93, {"content-type": "application/json"}), id="workflow-unsigned"),
        pytest.param(lambda: live(SAMPLE_93, {"content-type": "application/json", "x-api-key": "no"}), id="bad-key"),
    ],
)
def test_unauthenticated_requests_get_401(intake, settings, make_request):
    reply = intake.handle(make_request())

    assert reply.status == 401
    assert answer(reply)["error"] == "unauthorized"
    assert queued(settings) == []


@pytest.mark.parametrize("body", [b'[{"subscriptionType": "contact.creation", ', b'{"firstname": "Maria", '])
def test_malformed_json_from_an_authenticated_sender_gets_400(intake, body):
    reply = intake.handle(live(body))

    assert reply.status == 400
    assert "not valid JSON" in answer(reply)["message"]


def test_a_wrong_content_type_gets_415(intake):
    reply = intake.handle(live(SAMPLE_91, {**v3_headers(SAMPLE_91, timestamp=now_ms()), "content-type": "text/plain"}))

    assert reply.status == 415


class _BrokenSQS:
    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        raise boto3.client("sqs").exceptions.ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessageBatch")


@pytest.mark.parametrize("body", [SAMPLE_91, SAMPLE_93])
def test_when_the_leads_cannot_be_stored_both_senders_get_503_with_retry_after(intake, settings, body):
    intake.queue = LeadQueue(_BrokenSQS(), settings.queue_url)

    reply = intake.handle(live(body))

    assert reply.status == 503
    assert reply.headers["Retry-After"]


def test_unreadable_credentials_get_503_not_401(settings):
    intake = Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: webhook_credentials(dataclasses.replace(settings, webhook_secret_id="nope"), source),
    )

    assert intake.handle(live(SAMPLE_91)).status == 503


def test_credentials_come_from_the_hubspot_key_of_the_webhook_secret(settings):
    boto3.client("secretsmanager").put_secret_value(
        SecretId=settings.webhook_secret_id,
        SecretString=json.dumps({"generic": {"bearer_token": "t" * 32}, "hubspot": {"client_secret": SECRET}}),
    )
    intake = Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: webhook_credentials(settings, source),
    )

    assert intake.handle(live(SAMPLE_92)).status == 200
    assert intake.handle(live(SAMPLE_92, v3_headers(SAMPLE_92, secret="other", timestamp=now_ms()))).status == 401


def test_logs_carry_no_personal_data_or_secrets(intake, captured_logs):
    intake.handle(live(SAMPLE_93, v2_headers(SAMPLE_93)))
    intake.handle(live(SAMPLE_94))
    intake.handle(live(SAMPLE_93, {"content-type": "application/json", "x-api-key": "wrong-key-value-123"}))
    intake.handle(live(b'{"email": "maria.gonzalez@acme-logistics.example", '))

    logs = captured_logs()
    assert "webhook accepted" in logs
    assert "authentication failed" in logs
    for secret in ("5125550142", "555-0142", "maria.gonzalez@", SECRET, API_KEY, "wrong-key-value-123"):
        assert secret not in logs


# ── the sample events of events/ ───────────────────────────────────────


@pytest.fixture
def webhook_module():
    return importlib.import_module("lead_caller.handlers.webhook")


@pytest.mark.parametrize(
    ("name", "record_ids", "thin"),
    [
        ("hubspot-webhooks-contact-creation.json", ["62515:1246978", "62515:1246979"], True),
        ("hubspot-webhooks-object-creation.json", ["62515:65059681032"], True),
        ("hubspot-workflow-custom.json", ["1246978"], False),
        ("hubspot-workflow-profile.json", ["62515:1246978"], False),
    ],
)
def test_the_sample_events_sign_and_parse(webhook_module, name, record_ids, thin):
    event = json.loads((EVENTS / name).read_text())
    body = event["body"].encode()
    headers = event["headers"]
    stamp = int(headers["x-hubspot-request-timestamp"])
    url = f"https://{headers['host']}{event['rawPath']}"
    legacy = v1_headers(body) if headers["x-hubspot-signature-version"] == "v1" else v2_headers(body, url)
    event["headers"] = {**headers, **legacy, **v3_headers(body, url, timestamp=stamp)}

    converted = webhook_module.webhook_request(event, "hubspot", public_base_url=None)
    SOURCE.authenticate(converted, CREDENTIALS)
    leads = SOURCE.parse(converted)

    assert converted.public_url == URL
    assert [lead.record_id for lead in leads] == record_ids
    assert all((lead.record is None) == thin for lead in leads)
    if name == "hubspot-workflow-custom.json":
        assert body == SAMPLE_93
    if name == "hubspot-webhooks-contact-creation.json":
        assert body == SAMPLE_91


@pytest.mark.parametrize("name", sorted(path.name for path in EVENTS.glob("hubspot-*.json")))
def test_the_resign_tool_output_of_each_sample_event_is_accepted(webhook_module, name):
    from local.signing import LOCAL_WEBHOOK_SECRETS, resign_event

    event = resign_event(json.loads((EVENTS / name).read_text()))

    converted = webhook_module.webhook_request(event, "hubspot", public_base_url=None)
    SOURCE.authenticate(converted, LOCAL_WEBHOOK_SECRETS["hubspot"])
    assert SOURCE.parse(converted)
