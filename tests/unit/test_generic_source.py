"""Unit tests for the generic JSON source: authentication (Standard Webhooks, tokens, Basic) and parsing."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Self

import pytest
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook

from lead_caller.contacts import RawContact, build_document
from lead_caller.sources import get_source
from lead_caller.sources.auth import verify_basic, verify_standard_webhook, verify_token
from lead_caller.sources.base import AuthenticationError, ParsedLead, PayloadError, WebhookRequest
from lead_caller.sources.generic import MAX_LEADS_PER_REQUEST, GenericSource, contact_from_flat

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 32 bytes here!").decode()
BEARER = "gen_9b2e7c4a1f6d8e3b5a0c2d4f6e8a1b3c"

# The frozen "now" of signature tests: the webhook-timestamp of sample 9.11.
NOW = 1767225600

# crm-webhooks.md 9.10, verbatim.
SAMPLE_9_10 = (
    b'{"event":"new_lead","id":"zap-lead-20260101-0001","first_name":"Maria","last_name":"Gonzalez",'
    b'"email":"maria.gonzalez@acme-logistics.example","phone":"+1 (512) 555-0142",'
    b'"alternate_phone":"+1 512 555 0199","job_title":"Director of Operations","company":"Acme Logistics",'
    b'"address":"1200 Congress Ave, Suite 400, Austin, TX 78701, US",'
    b'"notes":"Requested a callback about fleet pricing.","labels":"inbound,pricing"}'
)
# crm-webhooks.md 9.11, verbatim (raw body, headers and secret).
SAMPLE_9_11 = (
    b'{"type":"contact.created","timestamp":"2026-01-01T00:00:00.000Z","data":{"id":"ct_01JGXK4N8Q2V7M3R5T9W1Y6Z0A",'
    b'"firstName":"Maria","lastName":"Gonzalez","email":"maria.gonzalez@acme-logistics.example",'
    b'"phone":"+15125550142","alternatePhone":"+15125550199","occupation":"Director of Operations",'
    b'"company":"Acme Logistics","address":"1200 Congress Ave, Suite 400, Austin, TX 78701, US",'
    b'"notes":"Requested a callback about fleet pricing.","labels":["inbound","pricing"]}}'
)
SAMPLE_9_11_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
SAMPLE_9_11_TIMESTAMP = 1767225600


def contact_of(lead: ParsedLead) -> RawContact:
    """The RawContact the generic source's built-in mapping makes of a parsed lead."""
    assert lead.record is not None
    return contact_from_flat(lead.record)


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """A Standard Webhooks v1 signature, computed from the documented algorithm (section 6)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signed_headers(
    body: bytes, secret: str = SPEC_SECRET, msg_id: str = "msg_test_1", timestamp: int = NOW
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def make_request(body: bytes = b"{}", headers: Mapping[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(
        source="generic",
        method="POST",
        path="/webhooks/generic",
        query="",
        headers=dict(headers or {"content-type": "application/json"}),
        body=body,
        public_url="https://leads.example.com/webhooks/generic",
        received_at=float(NOW),
    )


@pytest.fixture
def source() -> GenericSource:
    return GenericSource()


def _freeze(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    """Freeze the clock of the standardwebhooks library (it calls datetime.now)."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(now, tz=tz)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", FrozenDatetime)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    _freeze(monkeypatch, NOW)


def lead_fields(raw: RawContact) -> dict[str, Any]:
    return dict(vars(raw))


# --- Standard Webhooks: the algorithm and the spec's test vector ---------------------------


def test_spec_test_vector_signature() -> None:
    ours = sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    library = Webhook(SPEC_SECRET).sign(
        msg_id=SPEC_MSG_ID, timestamp=datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC), data=SPEC_BODY.decode()
    )
    assert ours == library == SPEC_SIGNATURE


def test_spec_test_vector_verifies_at_its_time(monkeypatch: pytest.MonkeyPatch, source: GenericSource) -> None:
    _freeze(monkeypatch, SPEC_TIMESTAMP + 10)
    headers = {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    source.authenticate(make_request(SPEC_BODY, headers), {"signing_secret": SPEC_SECRET})
    # One byte changed in the body and the same headers no longer verify.
    with pytest.raises(AuthenticationError):
        source.authenticate(make_request(b'{"test": 2432232315}', headers), {"signing_secret": SPEC_SECRET})


def test_sample_9_11_signature_verifies(frozen_clock: None, source: GenericSource) -> None:
    headers = signed_headers(SAMPLE_9_11, SPEC_SECRET, SAMPLE_9_11_ID, SAMPLE_9_11_TIMESTAMP)
    source.authenticate(make_request(SAMPLE_9_11, headers), {"signing_secret": SPEC_SECRET})


def test_good_signature_with_real_clock(source: GenericSource) -> None:
    body = b'{"name":"Maria","phone":"+15125550142"}'
    headers = signed_headers(body, OTHER_SECRET, "msg_real", int(time.time()))
    source.authenticate(make_request(body, headers), {"signing_secret": OTHER_SECRET})


# --- Standard Webhooks: acceptance and rejection -------------------------------------------


def test_good_signature(frozen_clock: None, source: GenericSource) -> None:
    source.authenticate(make_request(SAMPLE_9_10, signed_headers(SAMPLE_9_10)), {"signing_secret": SPEC_SECRET})


def test_signature_takes_precedence_and_token_still_configured(frozen_clock: None, source: GenericSource) -> None:
    credentials = {"signing_secret": SPEC_SECRET, "bearer_token": BEARER}
    source.authenticate(make_request(SAMPLE_9_10, signed_headers(SAMPLE_9_10)), credentials)
    # A bad signature is not rescued by a good bearer token.
    headers = signed_headers(SAMPLE_9_10, OTHER_SECRET) | {"authorization": f"Bearer {BEARER}"}
    with pytest.raises(AuthenticationError):
        source.authenticate(make_request(SAMPLE_9_10, headers), credentials)


@pytest.mark.parametrize("position", ["first", "last"])
def test_multiple_signatures_one_valid(frozen_clock: None, source: GenericSource, position: str) -> None:
    headers = signed_headers(SAMPLE_9_10)
    valid = headers["webhook-signature"]
    wrong = sign(OTHER_SECRET, "msg_test_1", NOW, SAMPLE_9_10)
    asymmetric = "v1a," + base64.b64encode(b"x" * 64).decode()
    others = [wrong, asymmetric]
    headers["webhook-signature"] = " ".join([valid, *others] if position == "first" else [*others, valid])
    source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


def test_multiple_signatures_none_valid(frozen_clock: None, source: GenericSource) -> None:
    headers = signed_headers(SAMPLE_9_10)
    headers["webhook-signature"] = " ".join(
        [sign(OTHER_SECRET, "msg_test_1", NOW, SAMPLE_9_10), sign(SPEC_SECRET, "msg_other", NOW, SAMPLE_9_10)]
    )
    with pytest.raises(AuthenticationError, match="signature"):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize(
    "tampered",
    [
        SAMPLE_9_10.replace(b"Maria", b"Mario"),
        SAMPLE_9_10 + b" ",
        SAMPLE_9_10.replace(b'","', b'", "', 1),
    ],
)
def test_tampered_body_rejected(frozen_clock: None, source: GenericSource, tampered: bytes) -> None:
    headers = signed_headers(SAMPLE_9_10)
    with pytest.raises(AuthenticationError, match="signature"):
        source.authenticate(make_request(tampered, headers), {"signing_secret": SPEC_SECRET})


def test_signed_with_wrong_secret_rejected(frozen_clock: None, source: GenericSource) -> None:
    headers = signed_headers(SAMPLE_9_10, OTHER_SECRET)
    with pytest.raises(AuthenticationError, match="signature"):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


def test_secret_string_used_as_key_is_rejected(frozen_clock: None, source: GenericSource) -> None:
    # The key is the base64-DECODED secret; signing with the ASCII text must not verify.
    key = SPEC_SECRET.removeprefix("whsec_").encode()
    digest = hmac.new(key, f"msg_test_1.{NOW}.".encode() + SAMPLE_9_10, hashlib.sha256).digest()
    headers = signed_headers(SAMPLE_9_10)
    headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    with pytest.raises(AuthenticationError):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


def test_signature_over_other_id_or_timestamp_rejected(frozen_clock: None, source: GenericSource) -> None:
    headers = signed_headers(SAMPLE_9_10)
    for name, value in (("webhook-id", "msg_other"), ("webhook-timestamp", str(NOW - 1))):
        changed = headers | {name: value}
        with pytest.raises(AuthenticationError):
            source.authenticate(make_request(SAMPLE_9_10, changed), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize(("offset", "message"), [(-301, "too old"), (-3600, "too old"), (301, "too new")])
def test_timestamp_outside_tolerance_rejected(
    frozen_clock: None, source: GenericSource, offset: int, message: str
) -> None:
    headers = signed_headers(SAMPLE_9_10, timestamp=NOW + offset)
    with pytest.raises(AuthenticationError, match=message):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize("offset", [-299, -60, 0, 60, 299])
def test_timestamp_inside_tolerance_accepted(frozen_clock: None, source: GenericSource, offset: int) -> None:
    headers = signed_headers(SAMPLE_9_10, timestamp=NOW + offset)
    source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_missing_signature_headers_rejected(frozen_clock: None, source: GenericSource, missing: str) -> None:
    headers = signed_headers(SAMPLE_9_10)
    del headers[missing]
    with pytest.raises(AuthenticationError, match="signature"):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "v1",
        "v1abc",
        "v1,",
        "v1,abc",
        "v1,a,b",
        "v1,@@@@",
        "v1,é",
        "garbage with spaces",
        "v1,AAAA  v1,BBBB",
    ],
)
def test_malformed_signature_header_is_authentication_error(
    frozen_clock: None, source: GenericSource, signature: str
) -> None:
    headers = signed_headers(SAMPLE_9_10) | {"webhook-signature": signature}
    with pytest.raises(AuthenticationError, match=r"^signature"):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


@pytest.mark.parametrize("timestamp", ["", "abc", "nan", "inf", "1e300", "-1e300", "2026-01-01T00:00:00Z"])
def test_malformed_timestamp_is_authentication_error(frozen_clock: None, source: GenericSource, timestamp: str) -> None:
    headers = signed_headers(SAMPLE_9_10) | {"webhook-timestamp": timestamp}
    with pytest.raises(AuthenticationError, match=r"^signature"):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


def test_non_utf8_body_is_authentication_error(frozen_clock: None, source: GenericSource) -> None:
    body = b'{"name":"Mar\xeda"}'
    headers = signed_headers(body)  # signed over the raw bytes: still refused, never a UnicodeDecodeError
    with pytest.raises(AuthenticationError, match=r"^signature"):
        source.authenticate(make_request(body, headers), {"signing_secret": SPEC_SECRET})


def test_verify_standard_webhook_directly(frozen_clock: None) -> None:
    verify_standard_webhook(SPEC_SECRET, SAMPLE_9_10, signed_headers(SAMPLE_9_10))
    with pytest.raises(AuthenticationError):
        verify_standard_webhook(OTHER_SECRET, SAMPLE_9_10, signed_headers(SAMPLE_9_10))


def test_signing_secret_without_signature_or_token_rejected(source: GenericSource) -> None:
    with pytest.raises(AuthenticationError, match="missing signature"):
        source.authenticate(make_request(SAMPLE_9_10), {"signing_secret": SPEC_SECRET})
    # An id and timestamp without the signature itself are not enough either.
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}
    with pytest.raises(AuthenticationError):
        source.authenticate(make_request(SAMPLE_9_10, headers), {"signing_secret": SPEC_SECRET})


def test_unsigned_request_falls_back_to_token(source: GenericSource) -> None:
    credentials = {"signing_secret": SPEC_SECRET, "bearer_token": BEARER}
    source.authenticate(make_request(SAMPLE_9_10, {"authorization": f"Bearer {BEARER}"}), credentials)
    with pytest.raises(AuthenticationError, match="token"):
        source.authenticate(make_request(SAMPLE_9_10), credentials)


@pytest.mark.parametrize("credentials", [{}, {"signing_secret": ""}, {"bearer_token": ""}, {"other": "x"}])
def test_no_credentials_configured_rejected(source: GenericSource, credentials: dict[str, str]) -> None:
    headers = signed_headers(SAMPLE_9_10) | {"authorization": f"Bearer {BEARER}"}
    with pytest.raises(AuthenticationError, match="no credential is configured"):
        source.authenticate(make_request(SAMPLE_9_10, headers), credentials)


# --- bearer / header tokens --------------------------------------------------------------------


@pytest.mark.parametrize("value", [f"Bearer {BEARER}", f"bearer {BEARER}", f"BEARER  {BEARER} "])
def test_bearer_token_good(source: GenericSource, value: str) -> None:
    source.authenticate(make_request(SAMPLE_9_10, {"authorization": value}), {"bearer_token": BEARER})


@pytest.mark.parametrize(
    "value",
    [
        "Bearer wrong-token",
        f"Bearer {BEARER}x",
        f"Bearer {BEARER[:-1]}",
        "Bearer ",
        "Bearer",
        "",
        BEARER,
        f"Token {BEARER}",
        f"Basic {BEARER}",
        f"Bearer tök{BEARER}",
    ],
)
def test_bearer_token_wrong_or_other_scheme(source: GenericSource, value: str) -> None:
    with pytest.raises(AuthenticationError, match=r"^token: missing or wrong$"):
        source.authenticate(make_request(SAMPLE_9_10, {"authorization": value}), {"bearer_token": BEARER})


def test_bearer_token_missing(source: GenericSource) -> None:
    with pytest.raises(AuthenticationError, match=r"^token"):
        source.authenticate(make_request(SAMPLE_9_10, {"x-api-key": BEARER}), {"bearer_token": BEARER})


def test_custom_token_header(source: GenericSource) -> None:
    credentials = {"bearer_token": BEARER, "token_header": "x-api-key"}
    source.authenticate(make_request(SAMPLE_9_10, {"x-api-key": BEARER}), credentials)
    for headers in ({"x-api-key": "wrong"}, {"x-api-key": ""}, {"authorization": f"Bearer {BEARER}"}, {}):
        with pytest.raises(AuthenticationError, match=r"^token"):
            source.authenticate(make_request(SAMPLE_9_10, headers), credentials)


def test_custom_token_header_name_is_case_insensitive(source: GenericSource) -> None:
    credentials = {"bearer_token": BEARER, "token_header": "X-API-Key"}
    source.authenticate(make_request(SAMPLE_9_10, {"x-api-key": BEARER}), credentials)
    # A custom header carries the bare token, not "Bearer <token>".
    with pytest.raises(AuthenticationError):
        source.authenticate(make_request(SAMPLE_9_10, {"x-api-key": f"Bearer {BEARER}"}), credentials)


def test_verify_token_directly() -> None:
    verify_token("s3cret", {"authorization": "Bearer s3cret"})
    verify_token("s3cret", {"x-token": "s3cret"}, header="X-Token")
    with pytest.raises(AuthenticationError):
        verify_token("s3cret", {"authorization": "Bearer S3CRET"})


# --- HTTP Basic ----------------------------------------------------------------------------------


def basic(user: str | bytes, password: str | bytes) -> dict[str, str]:
    raw = (user.encode() if isinstance(user, str) else user) + b":"
    raw += password.encode() if isinstance(password, str) else password
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def test_verify_basic_good() -> None:
    verify_basic("zapier", "p@ss", basic("zapier", "p@ss"))
    verify_basic("zapier", "p@ss", {"authorization": "basic " + base64.b64encode(b"zapier:p@ss").decode()})


def test_verify_basic_password_with_colon() -> None:
    verify_basic("zapier", "a:b:c", basic("zapier", "a:b:c"))
    with pytest.raises(AuthenticationError, match="wrong credentials"):
        verify_basic("zapier:a", "b:c", basic("zapier", "a:b:c"))


def test_verify_basic_non_ascii_credentials() -> None:
    verify_basic("jürgen", "pässwörd", basic("jürgen", "pässwörd"))


@pytest.mark.parametrize(
    "headers",
    [
        basic("zapier", "wrong"),
        basic("other", "p@ss"),
        basic("zapier", ""),
        basic("", "p@ss"),
        {"authorization": "Basic " + base64.b64encode(b"zapierp@ss").decode()},
    ],
)
def test_verify_basic_wrong_credentials(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError, match=r"^basic: wrong credentials$"):
        verify_basic("zapier", "p@ss", headers)


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer abc"}, {"authorization": ""}])
def test_verify_basic_missing(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError, match=r"^basic: missing credentials$"):
        verify_basic("zapier", "p@ss", headers)


@pytest.mark.parametrize("encoded", ["not base64!", "emFwaWVy=", "é", "emFw aWVy"])
def test_verify_basic_malformed(encoded: str) -> None:
    with pytest.raises(AuthenticationError, match=r"^basic: malformed credentials$"):
        verify_basic("zapier", "p@ss", {"authorization": f"Basic {encoded}"})


# --- parsing: the reference samples --------------------------------------------------------------


def test_registered_as_generic() -> None:
    assert GenericSource.name == "generic"
    assert isinstance(get_source("generic"), GenericSource)
    assert make_request(headers={"content-type": "Application/JSON; charset=utf-8"}).content_type == "application/json"


def test_parse_sample_9_10_flat(source: GenericSource) -> None:
    leads = source.parse(make_request(SAMPLE_9_10))
    assert len(leads) == 1
    assert lead_fields(contact_of(leads[0])) == {
        "record_id": "zap-lead-20260101-0001",
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "phone": "+1 (512) 555-0142",
        "alternate_phone": "+1 512 555 0199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "context": None,
        "labels": ["inbound,pricing"],
        "title": None,
        "description": None,
    }
    assert leads[0].record_id is None
    assert leads[0].enrichment is None
    document, rejection, record_id = build_document("generic", contact_of(leads[0]), "US")
    assert rejection is None
    assert document is not None
    assert record_id == "zap-lead-20260101-0001"
    assert document.to_unpod() == {
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "contact_number": "+15125550142",
        "alternate_number": "+15125550199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "labels": ["inbound", "pricing"],
        "document_id": "generic-zap-lead-20260101-0001",
    }


def test_parse_sample_9_11_envelope(source: GenericSource) -> None:
    leads = source.parse(make_request(SAMPLE_9_11))
    assert len(leads) == 1
    assert lead_fields(contact_of(leads[0])) == {
        "record_id": "ct_01JGXK4N8Q2V7M3R5T9W1Y6Z0A",
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "phone": "+15125550142",
        "alternate_phone": "+15125550199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "context": None,
        "labels": ["inbound", "pricing"],
        "title": None,
        "description": None,
    }
    document, rejection, _ = build_document("generic", contact_of(leads[0]), "US")
    assert rejection is None
    assert document is not None
    assert document.document_id == "generic-ct_01JGXK4N8Q2V7M3R5T9W1Y6Z0A"
    assert document.contact_number == "+15125550142"
    assert document.alternate_number == "+15125550199"
    assert document.labels == ("inbound", "pricing")


def test_parse_envelope_with_array_and_timestamp_only(source: GenericSource) -> None:
    body = json.dumps(
        {"timestamp": "2026-01-01T00:00:00Z", "data": [{"name": "A", "phone": "1"}, {"name": "B", "phone": "2"}]}
    ).encode()
    leads = source.parse(make_request(body))
    assert [contact_of(lead).name for lead in leads] == ["A", "B"]


def test_object_with_data_but_no_type_or_timestamp_is_a_lead(source: GenericSource) -> None:
    body = json.dumps({"name": "Maria", "phone": "+15125550142", "data": {"name": "Other"}}).encode()
    (lead,) = source.parse(make_request(body))
    assert contact_of(lead).name == "Maria"


def test_parse_array_of_leads(source: GenericSource) -> None:
    payload = [
        {"id": "l-1", "name": "Maria Gonzalez", "phone": "+15125550142"},
        {"lead_id": "l-2", "full_name": "John Smith", "phone_number": "+12024561111", "email": "john@example.com"},
        {"external_id": "l-3", "contact_name": "Ana Silva", "telephone": "+442079460018"},
    ]
    leads = source.parse(make_request(json.dumps(payload).encode()))
    assert [(contact_of(lead).record_id, contact_of(lead).name, contact_of(lead).phone) for lead in leads] == [
        ("l-1", "Maria Gonzalez", "+15125550142"),
        ("l-2", "John Smith", "+12024561111"),
        ("l-3", "Ana Silva", "+442079460018"),
    ]
    assert contact_of(leads[1]).email == "john@example.com"


@pytest.mark.parametrize(
    ("first", "last", "phone", "mail", "job"),
    [
        ("first_name", "last_name", "phone", "email", "job_title"),
        ("firstName", "lastName", "phoneNumber", "emailAddress", "jobTitle"),
        ("FirstName", "LastName", "Phone Number", "E-Mail", "Job Title"),
        ("FIRST-NAME", "SURNAME", "TEL", "e_mail", "Position"),
        ("given_name", "family_name", "work_phone", "EMAIL", "designation"),
    ],
)
def test_aliases_fold_case_and_separators(
    source: GenericSource, first: str, last: str, phone: str, mail: str, job: str
) -> None:
    payload = {first: "Maria", last: "Gonzalez", phone: "+15125550142", mail: "m@acme.example", job: "CTO"}
    (lead,) = source.parse(make_request(json.dumps(payload).encode()))
    assert (contact_of(lead).name, contact_of(lead).phone, contact_of(lead).email, contact_of(lead).occupation) == (
        "Maria Gonzalez",
        "+15125550142",
        "m@acme.example",
        "CTO",
    )


def test_full_name_wins_over_first_and_last(source: GenericSource) -> None:
    body = json.dumps({"name": "M. Gonzalez", "first_name": "Maria", "last_name": "Gonzalez"}).encode()
    (lead,) = source.parse(make_request(body))
    assert contact_of(lead).name == "M. Gonzalez"
    (only_last,) = source.parse(make_request(json.dumps({"name": " ", "lastName": "Gonzalez"}).encode()))
    assert contact_of(only_last).name == "Gonzalez"


def test_other_document_fields_are_mapped(source: GenericSource) -> None:
    payload = {
        "context": "Ask about fleet size.",
        "title": "Inbound lead",
        "description": "From the pricing page.",
        "organization": "Acme",
        "comments": "Call after 3pm.",
        "tags": ["vip", "pricing"],
        "contact_id": 12345,
    }
    (lead,) = source.parse(make_request(json.dumps(payload).encode()))
    contact = contact_of(lead)
    assert (contact.context, contact.title, contact.description) == (
        "Ask about fleet size.",
        "Inbound lead",
        "From the pricing page.",
    )
    assert contact.company_name == "Acme"
    assert contact.about == "Call after 3pm."
    assert contact.labels == ["vip", "pricing"]
    assert contact.record_id == "12345"


def test_mobile_becomes_alternate_when_phone_present(source: GenericSource) -> None:
    body = json.dumps({"name": "Maria", "phone": "+15125550142", "mobile": "+15125550199"}).encode()
    (lead,) = source.parse(make_request(body))
    assert (contact_of(lead).phone, contact_of(lead).alternate_phone) == ("+15125550142", "+15125550199")


def test_mobile_alone_becomes_phone(source: GenericSource) -> None:
    body = json.dumps({"name": "Maria", "mobilePhone": "+15125550199"}).encode()
    (lead,) = source.parse(make_request(body))
    assert (contact_of(lead).phone, contact_of(lead).alternate_phone) == ("+15125550199", None)


def test_explicit_alternate_wins_over_mobile(source: GenericSource) -> None:
    body = json.dumps(
        {"name": "Maria", "phone": "+15125550142", "cell": "+15125550100", "alt_phone": "+15125550199"}
    ).encode()
    (lead,) = source.parse(make_request(body))
    assert (contact_of(lead).phone, contact_of(lead).alternate_phone) == ("+15125550142", "+15125550199")


def test_address_object_is_joined(source: GenericSource) -> None:
    address = {"street": "1200 Congress Ave", "city": "Austin", "state": "TX", "zip": "78701", "country": "US"}
    (lead,) = source.parse(make_request(json.dumps({"name": "Maria", "address": address}).encode()))
    assert contact_of(lead).address == "1200 Congress Ave, Austin, TX, 78701, US"


def test_address_object_with_aliases_and_gaps(source: GenericSource) -> None:
    address = {"Line1": "1200 Congress Ave", "address_line_2": "Suite 400", "Town": "Austin", "postalCode": 78701}
    (lead,) = source.parse(make_request(json.dumps({"name": "Maria", "address": address}).encode()))
    assert contact_of(lead).address == "1200 Congress Ave, Suite 400, Austin, 78701"


def test_flat_address_parts_are_joined(source: GenericSource) -> None:
    body = json.dumps({"name": "Maria", "street": "1200 Congress Ave", "city": "Austin", "postcode": "78701"}).encode()
    (lead,) = source.parse(make_request(body))
    assert contact_of(lead).address == "1200 Congress Ave, Austin, 78701"
    (no_address,) = source.parse(make_request(b'{"name": "Maria"}'))
    assert contact_of(no_address).address is None


def test_labels_string_list_and_missing(source: GenericSource) -> None:
    def labels_of(payload: dict[str, Any]) -> tuple[str, ...]:
        (lead,) = source.parse(make_request(json.dumps({"name": "Maria", "phone": "+15125550142", **payload}).encode()))
        document, rejection, _ = build_document("generic", contact_of(lead), "US")
        assert rejection is None
        assert document is not None
        return document.labels

    assert labels_of({"tags": "inbound, pricing"}) == ("inbound", "pricing")
    assert labels_of({"Labels": ["inbound", " pricing", "inbound"]}) == ("inbound", "pricing")
    assert labels_of({"tag": 7}) == ("7",)
    assert labels_of({}) == ()
    assert labels_of({"labels": {"a": 1}}) == ()


def test_null_label_in_array_is_ignored(source: GenericSource) -> None:
    (lead,) = source.parse(make_request(b'{"name": "Maria", "phone": "+15125550142", "tags": ["vip", null]}'))
    document, _, _ = build_document("generic", contact_of(lead), "US")
    assert document is not None
    assert document.labels == ("vip",)


def test_empty_and_non_scalar_values_are_skipped(source: GenericSource) -> None:
    payload: dict[str, Any] = {
        "name": "",
        "full_name": "Maria Gonzalez",
        "phone": None,
        "phone_number": "+15125550142",
        "email": [],
    }
    (lead,) = source.parse(make_request(json.dumps(payload).encode()))
    assert (contact_of(lead).name, contact_of(lead).phone, contact_of(lead).email) == (
        "Maria Gonzalez",
        "+15125550142",
        None,
    )
    (nested,) = source.parse(make_request(b'{"name": {"first": "Maria"}, "email": true}'))
    assert (contact_of(nested).name, contact_of(nested).email) == (None, None)


# --- parsing: errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t "])
def test_empty_body(source: GenericSource, body: bytes) -> None:
    with pytest.raises(PayloadError, match="the body is empty") as caught:
        source.parse(make_request(body))
    assert caught.value.status == 400


@pytest.mark.parametrize("body", [b"{", b"{'name': 'Maria'}", b"name=Maria&phone=1", b'{"name": "Maria",}'])
def test_invalid_json(source: GenericSource, body: bytes) -> None:
    with pytest.raises(PayloadError, match=r"^the body is not valid JSON: .+ \(line 1\)$") as caught:
        source.parse(make_request(body))
    assert caught.value.status == 400


def test_non_utf8_body(source: GenericSource) -> None:
    with pytest.raises(PayloadError, match="not UTF-8") as caught:
        source.parse(make_request(b'{"name":"Mar\xeda"}'))
    assert caught.value.status == 400


def test_deeply_nested_body(source: GenericSource) -> None:
    with pytest.raises(PayloadError, match="nested too deeply") as caught:
        source.parse(make_request(b"[" * 100_000))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "kind"), [(b"42", "int"), (b'"Maria"', "str"), (b"true", "bool"), (b"null", "NoneType"), (b"1.5", "float")]
)
def test_json_scalar(source: GenericSource, body: bytes, kind: str) -> None:
    with pytest.raises(PayloadError, match=rf"^lead 0 is a {kind}, expected a JSON object$") as caught:
        source.parse(make_request(body))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"name": "A"}, 3], "lead 1 is a int"),
        ([{"name": "A"}, {"name": "B"}, ["nested"]], "lead 2 is a list"),
        ([None], "lead 0 is a NoneType"),
        ({"type": "contact.created", "data": [{"name": "A"}, "B"]}, "lead 1 is a str"),
        ({"type": "contact.created", "data": "Maria"}, "lead 0 is a str"),
    ],
)
def test_array_containing_non_object(source: GenericSource, payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=f"^{message}, expected a JSON object$") as caught:
        source.parse(make_request(json.dumps(payload).encode()))
    assert caught.value.status == 400


@pytest.mark.parametrize("payload", [[], {"type": "contact.created", "timestamp": "x", "data": []}])
def test_empty_array(source: GenericSource, payload: Any) -> None:
    with pytest.raises(PayloadError, match=r"^the body holds no leads$") as caught:
        source.parse(make_request(json.dumps(payload).encode()))
    assert caught.value.status == 400


def test_max_leads_accepted(source: GenericSource) -> None:
    assert MAX_LEADS_PER_REQUEST == 100
    payload = [{"id": f"l-{i}", "name": "A", "phone": "+15125550142"} for i in range(100)]
    leads = source.parse(make_request(json.dumps(payload).encode()))
    assert len(leads) == 100
    assert contact_of(leads[-1]).record_id == "l-99"


@pytest.mark.parametrize("count", [101, 250])
def test_too_many_leads(source: GenericSource, count: int) -> None:
    leads = [{"name": "A", "phone": "+15125550142"}] * count
    for payload in (leads, {"type": "contact.created", "data": leads}):
        with pytest.raises(PayloadError, match=f"^at most 100 leads per request, got {count}$") as caught:
            source.parse(make_request(json.dumps(payload).encode()))
        assert caught.value.status == 413
