"""The generic JSON source (`POST /webhooks/generic`): Zapier, Make, Apex, any app.

Contract (README "Generic source"): the body is one lead object, an array of
them, or a Standard Webhooks envelope `{"type", "timestamp", "data"}` whose
`data` is either. Keys are matched case- and separator-insensitively
(`first_name` = `firstName` = `FirstName`) against the aliases below.
Authenticated by a Standard Webhooks signature or a static bearer/header token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lead_caller.contacts import RawContact
from lead_caller.sources.auth import verify_standard_webhook, verify_token
from lead_caller.sources.base import AuthenticationError, ParsedLead, PayloadError, Source, WebhookRequest

MAX_LEADS_PER_REQUEST = 100

# document field -> accepted keys, compared after `_key()` folding.
ALIASES: dict[str, tuple[str, ...]] = {
    "record_id": ("id", "lead_id", "record_id", "external_id", "contact_id"),
    "name": ("name", "full_name", "contact_name"),
    "first_name": ("first_name", "firstname", "given_name"),
    "last_name": ("last_name", "lastname", "surname", "family_name"),
    "phone": ("phone", "phone_number", "contact_number", "telephone", "tel", "work_phone"),
    "mobile": ("mobile", "mobile_phone", "mobilephone", "cell", "cell_phone"),
    "alternate_phone": ("alternate_phone", "alternate_number", "alt_phone", "secondary_phone", "other_phone"),
    "email": ("email", "email_address", "e_mail"),
    "occupation": ("occupation", "job_title", "jobtitle", "position", "designation", "role"),
    "company_name": ("company", "company_name", "organization", "organisation", "account_name"),
    "address": ("address", "full_address", "street_address"),
    "about": ("about", "notes", "note", "message", "comments", "comment"),
    "context": ("context",),
    "labels": ("labels", "tags", "label", "tag"),
    "title": ("title",),
    "description": ("description",),
}
ADDRESS_PARTS = (
    ("street", "address1", "address_line_1", "line1"),
    ("address2", "address_line_2", "line2"),
    ("city", "town"),
    ("state", "region", "province"),
    ("zip", "zip_code", "postal_code", "postcode"),
    ("country",),
)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_FOLDED = {field: tuple(_key(alias) for alias in aliases) for field, aliases in ALIASES.items()}
_FOLDED_ADDRESS = tuple(tuple(_key(alias) for alias in part) for part in ADDRESS_PARTS)


class GenericSource(Source):
    """JSON leads from any tool that can POST JSON."""

    name = "generic"
    content_types = ("application/json",)

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """Standard Webhooks signature when the request carries one, else the static token."""
        signing_secret = credentials.get("signing_secret")
        token = credentials.get("bearer_token")
        if signing_secret and "webhook-signature" in request.headers:
            verify_standard_webhook(signing_secret, request.body, request.headers)
        elif token:
            verify_token(token, request.headers, credentials.get("token_header", "authorization"))
        elif signing_secret:
            raise AuthenticationError("signature: missing webhook-id/-timestamp/-signature headers")
        else:
            raise AuthenticationError("no credential is configured for this source")

    def parse(self, request: WebhookRequest) -> list[ParsedLead]:
        """Leads of a JSON body (object, array, or Standard Webhooks envelope)."""
        payload = _load_json(request.body)
        return [ParsedLead(contact=contact_from_flat(item)) for item in leads_of(payload)]


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise PayloadError("the body is empty; expected a JSON lead, an array of leads or an envelope")
    try:
        text = body.decode("utf-8-sig")  # JSON on the wire is UTF-8 (RFC 8259); tolerate a BOM
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PayloadError(f"the body is not valid JSON: {error.msg} (line {error.lineno})") from None
    except RecursionError:
        raise PayloadError("the body is nested too deeply") from None


def leads_of(payload: Any) -> list[Mapping[str, Any]]:
    """The lead objects of a payload; raises PayloadError naming what is wrong."""
    if isinstance(payload, dict) and "data" in payload and ("type" in payload or "timestamp" in payload):
        payload = payload["data"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise PayloadError("the body holds no leads")
    if len(items) > MAX_LEADS_PER_REQUEST:
        raise PayloadError(f"at most {MAX_LEADS_PER_REQUEST} leads per request, got {len(items)}", 413)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError(f"lead {index} is a {type(item).__name__}, expected a JSON object")
    return items


def contact_from_flat(item: Mapping[str, Any]) -> RawContact:
    """Map a flat lead object (aliases allowed) to a RawContact."""
    folded = {_key(str(key)): value for key, value in item.items()}

    def pick(field: str) -> Any:
        for alias in _FOLDED[field]:
            value = folded.get(alias)
            if value not in (None, "", [], {}):
                return value
        return None

    name = _text(pick("name")) or " ".join(
        part for part in (_text(pick("first_name")), _text(pick("last_name"))) if part
    )
    phone, mobile, alternate = _text(pick("phone")), _text(pick("mobile")), _text(pick("alternate_phone"))
    labels = pick("labels")
    return RawContact(
        record_id=_text(pick("record_id")),
        name=name or None,
        email=_text(pick("email")),
        phone=phone or mobile,
        alternate_phone=alternate or (mobile if phone else None),
        occupation=_text(pick("occupation")),
        company_name=_text(pick("company_name")),
        address=_address(pick("address"), folded),
        about=_text(pick("about")),
        context=_text(pick("context")),
        labels=[str(label) for label in labels if label is not None]
        if isinstance(labels, list)
        else [_text(labels) or ""],
        title=_text(pick("title")),
        description=_text(pick("description")),
    )


def _address(value: Any, folded: Mapping[str, Any]) -> str | None:
    """A one-line address from a string, an object of parts, or flat part keys."""
    if isinstance(value, str):
        return value
    parts_source = {_key(str(k)): v for k, v in value.items()} if isinstance(value, dict) else folded
    parts = []
    for aliases in _FOLDED_ADDRESS:
        for alias in aliases:
            text = _text(parts_source.get(alias))
            if text:
                parts.append(text)
                break
    return ", ".join(parts) or None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None
