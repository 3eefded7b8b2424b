"""The HubSpot source (`POST /webhooks/hubspot`): the Webhooks API and the workflow "Send a webhook" action.

One route, two senders, told apart by the body's shape:

* a JSON **array** is a Webhooks API delivery (up to 100 events; more is
  answered 413, before any per-event work). Only
  `contact.creation`, and `object.creation` with `objectTypeId` "0-1", become
  leads; every other event is acknowledged (200) and ignored, because HubSpot
  retries any 4xx/5xx for 24 h. The events carry ids only: each lead is queued
  with `enrichment = {"kind": "hubspot_contact", "object_id", "portal_id"}` and
  the dispatcher reads the contact from the CRM API (`crms/hubspot/api.py`).
* a JSON **object** is a workflow webhook with the contact's properties:
  a custom flat body (`{"firstname": ..., "hs_object_id": ...}`) or the
  contact-profile shape (`{"vid", "portal-id", "properties": {name: {"value"}}}`).

Every record the mapping reads (flat body, profile, API result) is first made
flat by `contact_record`: property name -> value, extra properties kept (so a
FIELD_MAPPINGS rule can read a custom property by its name), plus
`hs_object_id` and `portal_id` when known.

**Record id rule** (the dedupe key): `"{portal id}:{object id}"` when the portal
is known, else the object id alone (lead `hubspot#62515:1246978`). The portal id comes from the payload
(`portalId` of an event; `portal-id`, `portalId`/`portal_id` or `hub_id` of a
workflow body), else from the `portal_id` credential. So a workflow body
without a portal id dedupes with the Webhooks API events of the same contact
once `portal_id` is configured (or a static `portalId` key is added to the
custom body). The object id is `objectId` of an event, or the first of
`hs_object_id`, `objectId`, `canonical-vid`, `vid`, `id` of a workflow body; a
body with none gets a hash of phone + email (contacts.py). A FIELD_MAPPINGS
`record_id` rule replaces the rule for workflow bodies.

**Authentication** (`<stack>/webhooks` secret, key `hubspot`):
`{"client_secret", "allow_v1", "api_key", "api_key_header", "portal_id"}`.
`X-HubSpot-Signature-v3` is verified whenever it is present (and a client
secret is configured); otherwise the v2 signature for workflow bodies, the
legacy v1 signature for event arrays only with `allow_v1: true`, or the API key
in `api_key_header` (default `x-api-key`; `authorization` means
`Bearer <key>`). Anything else fails closed (401). Comparisons are constant-time.

**Answers**: 200 for accepted, duplicate, rejected and ignored leads alike
(HubSpot only needs a 2xx; a 4xx would be retried by the Webhooks API and
dropped by workflows), 401 bad authentication, 400 a body that is not JSON,
503 + Retry-After when the leads could not be stored (both senders retry it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lead_caller.mapping import lookup
from lead_caller.sources.auth import verify_token
from lead_caller.sources.base import (
    AuthenticationError,
    LeadResult,
    ParsedLead,
    PayloadError,
    Reply,
    Source,
    WebhookRequest,
    load_json,
    text_bytes,
)

ENRICHMENT_KIND = "hubspot_contact"
CONTACT_OBJECT_TYPE_ID = "0-1"
#: HubSpot's v3 rule: reject timestamps older than 5 minutes (we also refuse as far in the future).
SIGNATURE_TOLERANCE_MS = 300_000
#: HubSpot sends fewer than 100 events per request (crm-webhooks.md); more is answered 413 before any work
MAX_EVENTS_PER_REQUEST = 100
DEFAULT_API_KEY_HEADER = "x-api-key"

#: The built-in mapping: standard contact properties of the flat record (see `contact_record`).
#: No record_id rule: the source derives it (module docstring); a FIELD_MAPPINGS rule may add one.
HUBSPOT_MAPPING: dict[str, Any] = {
    "name": {"first_of": [{"join": ["firstname", "lastname"]}, "name", "full_name"]},
    "email": "email",
    "contact_number": "phone",
    "alternate_number": "mobilephone",
    "occupation": "jobtitle",
    "company_name": "company",
    "address": {"join": ["address", "city", "state", "zip", "country"], "separator": ", "},
    "about": "message",
    "labels": {"labels": ["hs_lead_status", "lifecyclestage"]},
}

# HubSpot signs the URI with these escapes decoded (validating-requests, v3 step 2). The
# table is applied in one pass, so "%253A" stays as it is; hex digits in either case.
_V3_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_OBJECT_ID_KEYS = ("hs_object_id", "objectId", "canonical-vid", "vid", "id")
_PORTAL_ID_KEYS = ("portal-id", "portal_id", "hub_id")


def hubspot_uri(url: str) -> str:
    """The URL as HubSpot signs it for v3: the percent-escapes of HubSpot's table decoded."""
    return _V3_DECODED.sub(lambda match: chr(int(match.group(1), 16)), url)


def _id_text(value: Any) -> str | None:
    """An id as text ("1246978"), or None for absent, empty, boolean or structured values."""
    if value is None or isinstance(value, (bool, Mapping, list)):
        return None
    text = str(value).strip()
    return text or None


def _object_text(value: Any) -> str | None:
    """A HubSpot object id of an event: a positive integer (number or digits), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None  # floats, objects, arrays: not an id HubSpot sends
    text = str(value).strip() if isinstance(value, str) else (str(value) if 0 < value < 10**20 else "")
    return text if _DIGITS.fullmatch(text) and text.strip("0") else None


def _portal_text(value: Any) -> str | None:
    """A portal (hub) id: digits only, else None."""
    text = _id_text(value)
    return text if text is not None and _DIGITS.fullmatch(text) else None


def record_id_of(portal_id: str | None, object_id: str | None) -> str | None:
    """The record id of a contact: "{portal}:{object}", the object id alone, or None.

    A colon, not a dash: contacts.py hashes ids that look like phone numbers ("62515-1246978" does).
    """
    if object_id is None:
        return None
    return f"{portal_id}:{object_id}" if portal_id else object_id


def contact_record(payload: Mapping[str, Any], portal_id: str | None = None) -> dict[str, Any]:
    """One flat dict (property name -> value) for a flat body, a contact profile or an API result.

    `properties.X.value` (profile) and `properties.X` (API) become `X`; other top-level
    keys are kept. `hs_object_id` and `portal_id` are set when found (portal_id given here
    is used when the payload names none).
    """
    properties = payload.get("properties")
    if isinstance(properties, Mapping):
        record = {str(key): value for key, value in payload.items() if key != "properties"}
        for name, value in properties.items():
            record[str(name)] = value.get("value") if isinstance(value, Mapping) else value
    else:
        record = {str(key): value for key, value in payload.items()}
    object_id = next((found for key in _OBJECT_ID_KEYS if (found := _id_text(lookup(record, key)))), None)
    portal = next((found for key in _PORTAL_ID_KEYS if (found := _portal_text(lookup(record, key)))), None)
    portal = portal or _portal_text(portal_id)
    if object_id is not None:
        record["hs_object_id"] = object_id
    if portal is not None:
        record["portal_id"] = portal
    return record


def _text(value: Any) -> str | None:
    """A non-empty, stripped string credential, or None."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _is_event_array(body: bytes) -> bool:
    return body.lstrip()[:1] == b"["


def _same(expected: str, presented: str) -> bool:
    """Constant-time comparison of ASCII texts (a non-ASCII header value simply does not match)."""
    return hmac.compare_digest(expected.encode(), presented.strip().encode("utf-8", "replace"))


def verify_v3(client_secret: str, request: WebhookRequest) -> None:
    """X-HubSpot-Signature-v3: base64 HMAC-SHA256(secret, method + URI + body + timestamp), 5 minutes."""
    stamp = request.headers.get("x-hubspot-request-timestamp", "").strip()
    if not _TIMESTAMP.fullmatch(stamp):
        raise AuthenticationError("v3: missing or malformed X-HubSpot-Request-Timestamp")
    age_ms = request.received_at * 1000 - int(stamp)
    if age_ms > SIGNATURE_TOLERANCE_MS:
        raise AuthenticationError("v3: the timestamp is older than 5 minutes")
    if age_ms < -SIGNATURE_TOLERANCE_MS:
        raise AuthenticationError("v3: the timestamp is in the future")
    uri = text_bytes(hubspot_uri(request.public_url))
    source = text_bytes(request.method.upper()) + uri + request.body + stamp.encode()
    expected = base64.b64encode(hmac.new(client_secret.encode(), source, hashlib.sha256).digest()).decode()
    if not _same(expected, request.headers.get("x-hubspot-signature-v3", "")):
        raise AuthenticationError("v3: signature mismatch")


def verify_v2(client_secret: str, request: WebhookRequest) -> None:
    """X-HubSpot-Signature v2 (workflows): hex SHA-256(secret + method + URI + body), URI exactly as sent."""
    source = client_secret.encode() + text_bytes(request.method.upper()) + text_bytes(request.public_url) + request.body
    if not _same(hashlib.sha256(source).hexdigest(), request.headers.get("x-hubspot-signature", "").lower()):
        raise AuthenticationError("v2: signature mismatch")


def verify_v1(client_secret: str, request: WebhookRequest) -> None:
    """X-HubSpot-Signature v1 (legacy Webhooks API): hex SHA-256(secret + body); no URL, no timestamp."""
    expected = hashlib.sha256(client_secret.encode() + request.body).hexdigest()
    if not _same(expected, request.headers.get("x-hubspot-signature", "").lower()):
        raise AuthenticationError("v1: signature mismatch")


def _is_contact_creation(event: Mapping[str, Any]) -> bool:
    kind = str(event.get("subscriptionType") or event.get("eventType") or "")
    if kind == "contact.creation":
        return True
    return kind == "object.creation" and str(event.get("objectTypeId") or "") == CONTACT_OBJECT_TYPE_ID


def _load_json(body: bytes) -> Any:
    return load_json(body, "a JSON array of events or a JSON contact object")


class HubSpotSource(Source):
    """HubSpot Webhooks API and workflow "Send a webhook"."""

    name = "hubspot"
    default_mapping = HUBSPOT_MAPPING

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """v3 whenever present; else v2 (workflows), v1 (events, opt-in) or the API key; fail closed."""
        self._verify(request, credentials)

    @staticmethod
    def _verify(request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        secret = _text(credentials.get("client_secret"))
        api_key = _text(credentials.get("api_key"))
        key_header = (_text(credentials.get("api_key_header")) or DEFAULT_API_KEY_HEADER).lower()
        headers = request.headers
        if not secret and not api_key:
            raise AuthenticationError("no credential is configured for this source")
        if secret and "x-hubspot-signature-v3" in headers:
            verify_v3(secret, request)
            return
        legacy = secret is not None and "x-hubspot-signature" in headers
        version = headers.get("x-hubspot-signature-version", "").strip().lower()
        events = _is_event_array(request.body)
        if legacy and secret and version == "v2" and not events:
            verify_v2(secret, request)
            return
        if legacy and secret and version == "v1" and events and credentials.get("allow_v1") is True:
            verify_v1(secret, request)
            return
        if api_key and key_header in headers:
            verify_token(api_key, headers, key_header)
            return
        if legacy:
            raise AuthenticationError(
                f"signature version {version or 'unknown'} is not accepted for this body "
                "(v1 needs allow_v1 and an event array; v2 is for workflow bodies)"
            )
        raise AuthenticationError("missing X-HubSpot-Signature-v3 or API key header")

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """Thin leads of a Webhooks API array, or the one contact of a workflow body.

        `credentials` may name the account's `portal_id`, for workflow bodies that carry none.
        """
        portal = _portal_text((credentials or {}).get("portal_id"))
        payload = _load_json(request.body)
        if isinstance(payload, list):
            return self._events(payload, portal)
        if isinstance(payload, dict):
            record = contact_record(payload, portal)
            record_id = record_id_of(_portal_text(record.get("portal_id")), _id_text(record.get("hs_object_id")))
            return [ParsedLead(record=record, record_id=record_id)]
        raise PayloadError(f"the body is a JSON {type(payload).__name__}; expected an array of events or an object")

    @staticmethod
    def _events(events: Sequence[Any], configured_portal: str | None) -> list[ParsedLead]:
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise PayloadError(f"at most {MAX_EVENTS_PER_REQUEST} events per request, got {len(events)}", 413)
        leads: list[ParsedLead] = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise PayloadError(f"event {index} is a {type(event).__name__}, expected a JSON object")
            if not _is_contact_creation(event):
                continue  # other subscriptions: acknowledged, never retried
            object_id = _object_text(event.get("objectId"))
            portal = _portal_text(event.get("portalId")) or configured_portal
            if object_id is None:  # absent, or not a positive integer (e.g. 3,000 characters)
                leads.append(ParsedLead(record=None))  # recorded as rejected: the event names no record
                continue
            enrichment: dict[str, Any] = {"kind": ENRICHMENT_KIND, "object_id": object_id}
            if portal is not None:
                enrichment["portal_id"] = int(portal)
            leads.append(ParsedLead(record=None, record_id=record_id_of(portal, object_id), enrichment=enrichment))
        return leads

    def reply_accepted(self, results: Sequence[LeadResult]) -> Reply:
        """200 with the per-lead results, whatever they are (HubSpot needs a 2xx, nothing more)."""
        reply = super().reply_accepted(results)
        return Reply(200, reply.body, reply.headers)
