"""The generic source (`POST /webhooks/generic`): Zapier, Make, Apex, any app.

Contract (README "Generic source"): the body is one lead object, an array of
them, or a Standard Webhooks envelope `{"type", "timestamp", "data"}` whose
`data` is either; as JSON or as a form (`application/x-www-form-urlencoded`,
Zapier's default). Keys are matched case- and separator-insensitively
(`first_name` = `firstName` = `FirstName`) by the built-in mapping below;
Zapier's "unflatten" keys (`address__city`) become nested objects.
Authenticated by a Standard Webhooks signature, a static bearer/header token,
or HTTP Basic credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from lead_caller.contacts import RawContact
from lead_caller.mapping import FieldMapping
from lead_caller.sources.auth import verify_basic, verify_standard_webhook, verify_token
from lead_caller.sources.base import AuthenticationError, ParsedLead, PayloadError, Source, WebhookRequest, load_json

MAX_LEADS_PER_REQUEST = 100
FORM = "application/x-www-form-urlencoded"

_PHONES = ["phone", "phone_number", "contact_number", "telephone", "tel", "work_phone"]
_MOBILES = ["mobile", "mobile_phone", "mobilephone", "cell", "cell_phone"]
_ADDRESS_PARTS = [
    ["street", "address1", "address_line_1", "line1"],
    ["address2", "address_line_2", "line2"],
    ["city", "town"],
    ["state", "region", "province"],
    ["zip", "zip_code", "postal_code", "postcode"],
    ["country"],
]


def _address_join(prefix: str) -> dict[str, Any]:
    """Join the address parts found under `prefix` ("" for top-level keys)."""
    parts = [{"first_of": [f"{prefix}{alias}" for alias in aliases]} for aliases in _ADDRESS_PARTS]
    return {"join": parts, "separator": ", "}


#: The built-in mapping of the generic contract (README "The generic source").
GENERIC_MAPPING: dict[str, Any] = {
    "record_id": {"first_of": ["id", "lead_id", "record_id", "external_id", "contact_id"]},
    "name": {
        "first_of": [
            "name",
            "full_name",
            "contact_name",
            {
                "join": [
                    {"first_of": ["first_name", "given_name"]},
                    {"first_of": ["last_name", "surname", "family_name"]},
                ]
            },
        ]
    },
    "contact_number": {"first_of": _PHONES + _MOBILES},
    "alternate_number": {
        "first_of": ["alternate_phone", "alternate_number", "alt_phone", "secondary_phone", "other_phone", *_MOBILES]
    },
    "email": {"first_of": ["email", "email_address", "e_mail"]},
    "occupation": {"first_of": ["occupation", "job_title", "position", "designation", "role"]},
    "company_name": {"first_of": ["company", "company_name", "organization", "organisation", "account_name"]},
    "address": {
        "first_of": [
            "address",
            "full_address",
            "street_address",
            _address_join("address."),
            _address_join(""),
        ]
    },
    "about": {"first_of": ["about", "notes", "note", "message", "comments", "comment"]},
    "context": "context",
    "labels": {"labels": [{"first_of": ["labels", "tags", "label", "tag"]}]},
    "title": "title",
    "description": "description",
}


class GenericSource(Source):
    """Leads from any tool that can POST JSON or a form."""

    name = "generic"
    content_types = ("application/json", FORM)
    default_mapping = GENERIC_MAPPING

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """Standard Webhooks signature when the request carries one, else a token or Basic credentials."""
        signing_secret = credentials.get("signing_secret")
        token = credentials.get("bearer_token")
        username, password = credentials.get("basic_username"), credentials.get("basic_password")
        authorization = request.headers.get("authorization", "")
        if signing_secret and "webhook-signature" in request.headers:
            verify_standard_webhook(signing_secret, request.body, request.headers)
        elif username and password and authorization.lower().startswith("basic "):
            verify_basic(username, password, request.headers)
        elif token:
            verify_token(token, request.headers, credentials.get("token_header", "authorization"))
        elif signing_secret or (username and password):
            raise AuthenticationError("credentials: missing signature or Authorization header")
        else:
            raise AuthenticationError("no credential is configured for this source")

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """Leads of a JSON body (object, array, envelope) or of a form."""
        del credentials  # the generic contract needs no account settings
        payload = _load_form(request.body) if request.content_type == FORM else _load_json(request.body)
        return [ParsedLead(record=unflatten(item)) for item in leads_of(payload)]


class EventBridgeSource(GenericSource):
    """`Lead Created` events on the stack's EventBridge bus: the generic contract, IAM-authenticated."""

    name = "eventbridge"
    http = False

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """Never reached over HTTP; EventBridge events are authorised by IAM."""
        del request, credentials
        raise AuthenticationError("the eventbridge source takes no HTTP requests")


_DEFAULT = FieldMapping.compile(GENERIC_MAPPING, where="generic")


def contact_from_flat(item: Mapping[str, Any]) -> RawContact:
    """Map one lead object with the built-in generic mapping (no user override)."""
    return _DEFAULT.apply(unflatten(item))


def _load_json(body: bytes) -> Any:
    return load_json(body, "a JSON lead, an array of leads or an envelope")


def _load_form(body: bytes) -> dict[str, Any]:
    """A form body as a dict; a repeated key becomes a list (e.g. several tags)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the form body is not UTF-8 text") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=False, strict_parsing=bool(text.strip()), max_num_fields=500)
    except ValueError as error:
        raise PayloadError(f"the body is not a valid form: {error}") from None
    if not pairs:
        raise PayloadError("the form body holds no fields")
    form: dict[str, Any] = {}
    for key, value in pairs:
        if key in form:
            existing = form[key]
            form[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            form[key] = value
    return form


def unflatten(item: Mapping[str, Any]) -> dict[str, Any]:
    """Zapier's "unflatten": {"address__city": "Austin"} -> {"address": {"city": "Austin"}}."""
    result: dict[str, Any] = {}
    for key, value in item.items():
        parts = str(key).split("__") if "__" in str(key).strip("_") else [str(key)]
        target = result
        for part in parts[:-1]:
            nested = target.get(part)
            if not isinstance(nested, dict):
                nested = {}
                target[part] = nested
            target = nested
        target[parts[-1]] = value
    return result


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
