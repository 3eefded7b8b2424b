"""Zoho CRM source (`POST /webhooks/zoho`): workflow-rule webhooks and Notification API callbacks.

One route, two senders, told apart by the body:

* a JSON object with `channel_id` and `ids`/`operation`/`module` is a
  **Notification API** callback (`actions/watch`, renewed by `crms/zoho/watch.py`).
  It is authenticated by the `token` and `channel_id` Zoho echoes from the
  watch, compared with `notification_token` and `channel_id` of the webhook
  credentials. Only `insert`/`create` on Leads or Contacts become leads (one
  per id; others are answered 200 and ignored). When `affected_values` (sent
  with `return_affected_field_values`) holds a record's values with a phone,
  they are the record; otherwise the lead is thin: `enrichment = {"kind":
  "zoho_record", "module", "id", ...}` and the dispatcher reads the record
  from the CRM API (`crms/zoho/api.py`).
* anything else is a **workflow webhook** (Setup > Automation > Actions >
  Webhooks): a form (`application/x-www-form-urlencoded`, Zoho's "Form-data")
  or a raw JSON object of merge fields, one record. It is authenticated by a
  secret token in a header (`token_header`, default `X-Zoho-Token`) or a query
  parameter of the URL (`token_param`, default `token`).

Webhook credentials (`<stack>/webhooks` secret, key `zoho`): `{"token",
"token_header", "token_param", "notification_token", "channel_id",
"always_fetch"}`; `always_fetch: true` ignores `affected_values` and reads
every notified record from the API. Nothing configured fails closed (401);
comparisons are constant-time.

**Keys of a workflow body**: Zoho's field API names (`First_Name`,
`Last_Name`, `Email`, `Phone`, `Mobile`, `Designation`, `Company`, `Street`,
`City`, `State`, `Zip_Code`, `Country`, `Description`, `Tag`, `Lead_Source`,
`Lead_Status`), matched ignoring case and `_` (`first_name` works), plus the
record id as `id`, `Lead_Id`, `Contact_Id` or `Record_Id` (a `zcrm_` prefix is
dropped). `Tag` may be a list of names, a list of `{"name"}` objects or text
separated by commas or semicolons. Contacts' `Title`, `Account_Name` and
`Mailing_*` fields are read too, so API records of both modules map the same way.

**Record id** (the dedupe key): the Zoho record id, for workflow bodies and
notifications alike, so both deliveries of one record are called once.

**Answers**: 200 with per-lead results for accepted, duplicate, rejected and
ignored leads (Zoho's retry behaviour is not documented), 401 bad token, 400 a
malformed body, 413 too many ids, 415 another media type, 503 + Retry-After
when the leads could not be stored.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from lead_caller.mapping import fold, lookup
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

ENRICHMENT_KIND = "zoho_record"
FORM = "application/x-www-form-urlencoded"
DEFAULT_TOKEN_HEADER = "x-zoho-token"  # noqa: S105 - a header name, not a secret
DEFAULT_TOKEN_PARAM = "token"  # noqa: S105 - a parameter name, not a secret
#: Zoho's limit on the `token` of a watch
MAX_NOTIFICATION_TOKEN_LENGTH = 50
MAX_IDS_PER_NOTIFICATION = 500
MAX_FORM_FIELDS = 500
#: modules whose created records are leads (canonical spelling, as in `events` and callbacks)
LEAD_MODULES: tuple[str, ...] = ("Leads", "Contacts")
CREATE_OPERATIONS = frozenset({"insert", "create"})
#: where a workflow body carries the record id (matched ignoring case and "_")
ID_KEYS: tuple[str, ...] = ("id", "Lead_Id", "Contact_Id", "Record_Id")
PHONE_KEYS: tuple[str, ...] = ("Phone", "Mobile")
_RECORD_ID = re.compile(r"[0-9]{1,30}")
_TAG_KEYS = frozenset({"tag", "tags"})
_TAG_SEPARATORS = re.compile(r"[,;]")


def _address_part(*keys: str) -> dict[str, Any]:
    return {"first_of": list(keys)}


#: The built-in mapping over the flat record (`zoho_record`): Leads and Contacts field API names.
#: No record_id rule: the source derives it (module docstring); a FIELD_MAPPINGS rule may add one.
ZOHO_MAPPING: dict[str, Any] = {
    "name": {"first_of": [{"join": ["First_Name", "Last_Name"]}, "Full_Name", "Name"]},
    "email": {"first_of": ["Email", "Secondary_Email"]},
    "contact_number": {"first_of": ["Phone", "Mobile"]},
    "alternate_number": {"first_of": ["Mobile", "Home_Phone", "Other_Phone"]},
    "occupation": {"first_of": ["Designation", "Title"]},
    "company_name": {"first_of": ["Company", "Account_Name.name", "Account_Name"]},
    "address": {
        "join": [
            _address_part("Street", "Mailing_Street"),
            _address_part("City", "Mailing_City"),
            _address_part("State", "Mailing_State"),
            _address_part("Zip_Code", "Zip", "Postal_Code", "Mailing_Zip"),
            _address_part("Country", "Mailing_Country"),
        ],
        "separator": ", ",
    },
    "about": "Description",
    "labels": {"labels": ["Tag", "Lead_Source", "Lead_Status"]},
}


def _text(value: Any) -> str | None:
    """A non-empty stripped text of a scalar (numbers included), else None."""
    if value is None or isinstance(value, (bool, Mapping, list)):
        return None
    return str(value).strip() or None


def record_id_of(value: Any) -> str | None:
    """A Zoho record id (digits; a `zcrm_` prefix dropped), or None."""
    text = _text(value)
    if text is None:
        return None
    text = text.removeprefix("zcrm_")
    return text if _RECORD_ID.fullmatch(text) else None


def tag_names(value: Any) -> list[str]:
    """Tag names from a list of names, a list of {"name"} objects, or "a,b;c" text."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        raw = item.get("name") if isinstance(item, Mapping) else item
        text = _text(raw)
        if text:
            names.extend(part.strip() for part in _TAG_SEPARATORS.split(text) if part.strip())
    return list(dict.fromkeys(names))


def zoho_record(values: Mapping[str, Any], record_id: str | None = None) -> dict[str, Any]:
    """The flat record the mapping reads: the fields as Zoho named them, `Tag` as a list of names.

    Serves workflow bodies, `affected_values` and API records alike; `record_id` sets `id`.
    """
    record: dict[str, Any] = {}
    tags: list[str] = []
    for key, value in values.items():
        if fold(str(key)) in _TAG_KEYS:
            tags.extend(tag_names(value))
        else:
            record[str(key)] = value
    if tags:
        record["Tag"] = list(dict.fromkeys(tags))
    if record_id is not None:
        record["id"] = record_id
    return record


def has_phone(values: Mapping[str, Any]) -> bool:
    """Whether the values hold a phone or mobile number."""
    return any(_text(lookup(values, key)) for key in PHONE_KEYS)


def workflow_record_id(record: Mapping[str, Any]) -> str | None:
    """The record id of a workflow body: the first of `ID_KEYS` that holds one."""
    for key in ID_KEYS:
        found = record_id_of(lookup(record, key))
        if found is not None:
            return found
    return None


def canonical_module(value: Any) -> str | None:
    """ "Leads" or "Contacts" whatever the case, else None."""
    text = _text(value)
    if text is None:
        return None
    return next((module for module in LEAD_MODULES if module.lower() == text.lower()), None)


def is_notification(payload: Any) -> bool:
    """Whether a JSON body is a Notification API callback."""
    return (
        isinstance(payload, dict)
        and "channel_id" in payload
        and any(key in payload for key in ("ids", "operation", "module"))
    )


def _same(expected: str, presented: str) -> bool:
    """Constant-time comparison of two texts."""
    return hmac.compare_digest(text_bytes(expected), text_bytes(presented))


def _query_values(query: str, name: str) -> list[str]:
    """The values of one query parameter (none when the query string is malformed or huge)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        return []
    return [value for key, value in pairs if key == name]


def _load_form(body: bytes) -> dict[str, Any]:
    """A form body as a dict; a repeated key becomes a list (e.g. several tags)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the form body is not UTF-8 text") from None
    if not text.strip():
        raise PayloadError("the form body is empty")
    try:
        pairs = parse_qsl(text, keep_blank_values=False, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as error:
        raise PayloadError(f"the body is not a valid form: {error}") from None
    form: dict[str, Any] = {}
    for key, value in pairs:
        if key in form:
            existing = form[key]
            form[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            form[key] = value
    if not form:
        raise PayloadError("the form body holds no fields")
    return form


def _notification_of(request: WebhookRequest) -> dict[str, Any] | None:
    """The callback of a Notification API request, or None for anything else (workflow bodies)."""
    if request.content_type != "application/json" or not request.body.lstrip().startswith(b"{"):
        return None
    try:
        payload = load_json(request.body, "a JSON object")
    except PayloadError:
        return None
    return payload if is_notification(payload) else None


class ZohoSource(Source):
    """Zoho CRM workflow webhooks (form or JSON) and Notification API callbacks."""

    name = "zoho"
    content_types = ("application/json", FORM)
    default_mapping = ZOHO_MAPPING

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """Notifications: the echoed token and channel id. Workflow webhooks: the token (header or query)."""
        notification = _notification_of(request)
        if notification is not None:
            self._verify_notification(notification, credentials)
        else:
            self._verify_workflow(request, credentials)

    @staticmethod
    def _verify_notification(payload: Mapping[str, Any], credentials: Mapping[str, Any]) -> None:
        expected_token = _text(credentials.get("notification_token"))
        expected_channel = _text(credentials.get("channel_id"))
        if not expected_token or not expected_channel:
            raise AuthenticationError("notification: no notification_token and channel_id are configured")
        token = payload.get("token")
        channel = _text(payload.get("channel_id"))
        token_ok = isinstance(token, str) and _same(expected_token, token)
        channel_ok = channel is not None and _same(expected_channel, channel)
        if not (token_ok and channel_ok):
            raise AuthenticationError("notification: token or channel_id missing or wrong")

    @staticmethod
    def _verify_workflow(request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        expected = _text(credentials.get("token"))
        if not expected:
            raise AuthenticationError("workflow: no token is configured for this source")
        header = (_text(credentials.get("token_header")) or DEFAULT_TOKEN_HEADER).lower()
        param = _text(credentials.get("token_param")) or DEFAULT_TOKEN_PARAM
        presented: list[str] = []
        if header in request.headers:
            value = request.headers[header].strip()
            if header == "authorization":
                scheme, _, rest = value.partition(" ")
                value = rest.strip() if scheme.lower() == "bearer" else ""
            presented.append(value)
        presented.extend(_query_values(request.query, param))
        # every candidate is compared (no early exit), each in constant time
        matches = [bool(value) and _same(expected, value) for value in presented]
        if not any(matches):
            raise AuthenticationError("workflow: token missing or wrong")

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """The leads of a notification (one per created record) or the one record of a workflow body."""
        if request.content_type == FORM:
            return [self._workflow_lead(_load_form(request.body))]
        payload = load_json(request.body, "a Zoho notification or a JSON object of merge fields")
        if is_notification(payload):
            return self._notification_leads(payload, credentials or {})
        if not isinstance(payload, dict):
            raise PayloadError(f"the body is a JSON {type(payload).__name__}; expected a JSON object of merge fields")
        if not payload:
            raise PayloadError("the body holds no fields")
        return [self._workflow_lead(payload)]

    @staticmethod
    def _workflow_lead(values: Mapping[str, Any]) -> ParsedLead:
        record = zoho_record(values)
        return ParsedLead(record=record, record_id=workflow_record_id(record))

    @staticmethod
    def _notification_leads(payload: Mapping[str, Any], credentials: Mapping[str, Any]) -> list[ParsedLead]:
        operation = (_text(payload.get("operation")) or "").lower()
        module = canonical_module(payload.get("module"))
        if operation not in CREATE_OPERATIONS or module is None:
            return []  # updates, deletes, other modules: acknowledged, nothing to call
        ids = payload.get("ids")
        if not isinstance(ids, list) or not ids:
            raise PayloadError("notification: `ids` is missing, empty or not a list")
        if len(ids) > MAX_IDS_PER_NOTIFICATION:
            raise PayloadError(f"notification: at most {MAX_IDS_PER_NOTIFICATION} ids, got {len(ids)}", 413)
        values = {} if credentials.get("always_fetch") is True else _affected_values(payload.get("affected_values"))
        channel = _text(payload.get("channel_id"))
        leads: list[ParsedLead] = []
        for raw_id in ids:
            record_id = record_id_of(raw_id)
            if record_id is None:
                leads.append(ParsedLead(record=None))  # recorded as rejected: not a record id
                continue
            known = values.get(record_id)
            if known is not None and has_phone(known):
                leads.append(ParsedLead(record=zoho_record(known, record_id), record_id=record_id))
                continue
            enrichment = {
                "kind": ENRICHMENT_KIND,
                "module": module,
                "id": record_id,
                "operation": operation,
                "channel_id": channel,
            }
            leads.append(ParsedLead(record=None, record_id=record_id, enrichment=enrichment))
        return leads

    def reply_accepted(self, results: Sequence[LeadResult]) -> Reply:
        """200 with the per-lead results, whatever they are (an ignored callback too)."""
        return Reply.json(200, self.results_body(results, "nothing to call in this delivery: ignored"))


def _affected_values(raw: Any) -> dict[str, Mapping[str, Any]]:
    """record id -> values of `affected_values` ([{"record_id", "values": {...}}])."""
    found: dict[str, Mapping[str, Any]] = {}
    if not isinstance(raw, list):
        return found
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        record_id = record_id_of(item.get("record_id"))
        values = item.get("values")
        if record_id is not None and isinstance(values, Mapping):
            found[record_id] = values
    return found
