"""HubSpot CRM API client: reads the contacts of thin Webhooks API events (dispatch path only).

`POST /crm/v3/objects/contacts/batch/read` with up to 100 ids per request and a
private-app or OAuth token (`Authorization: Bearer`), the `hubspot` object of the
CRM secret: `{"access_token": "pat-...", "extra_properties": ["call_objective"]}`.
HubSpot answers 200 when every id was found and 207 (multi-status) with
`errors: [{"category": "OBJECT_NOT_FOUND", "context": {"ids": [...]}}]` for the
missing ones (deleted, archived or never existed).

Outcomes per requested id: found -> ok (the record flattened by
`webhook.contact_record`, the same shape the workflow path maps);
reported missing or absent from the results -> gone; 401/403 and other 4xx ->
permanent; 429/5xx/network -> transient. urllib3's `Retry` retries 429/5xx and
connection/read failures a few times inside the invocation (a read is safe to
repeat), honouring `Retry-After` up to a cap, like the Unpod client.
`fetch` never raises for HTTP or network trouble, and logs neither the token
nor any property value.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError

from lead_caller.crms.callnote import Answer, CallNote, CrmRecord, JsonHttp, WriteResult
from lead_caller.crms.hubspot.webhook import contact_record
from lead_caller.enrichment import Fetched, FetchOutcome
from lead_caller.observability import logger, redact
from lead_caller.retries import retry_policy

BATCH_READ_PATH = "/crm/v3/objects/contacts/batch/read"
MAX_IDS_PER_REQUEST = 100
#: The standard properties the built-in mapping reads, and the merge trail used to match merged contacts.
STANDARD_PROPERTIES: tuple[str, ...] = (
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "jobtitle",
    "company",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "message",
    "hs_lead_status",
    "lifecyclestage",
    "hs_object_id",
    "hs_merged_object_ids",
    "hs_timezone",  # the calling policy's time zone (policy.py)
)
NOT_FOUND = "OBJECT_NOT_FOUND"
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what an HTTP header value may carry; a pasted newline is refused
_PROPERTY = re.compile(r"[A-Za-z0-9_]{1,100}")


class HubSpotContacts:
    """Fetches HubSpot contacts by id, one batch-read request per 100 ids."""

    kind: ClassVar[str] = "hubspot_contact"

    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_after: float = 3.0,
        backoff_factor: float = 0.5,
        extra_properties: Sequence[str] = (),
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.extra_properties = tuple(extra_properties)
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # Reads have no side effect: a lost answer may be asked for again.
        retry = retry_policy(
            max_retries,
            max_retry_after=max_retry_after,
            backoff_factor=backoff_factor,
            resend_after_timeout=True,
            methods=("GET", "POST"),
        )
        self.retry = retry
        self.pool = pool or urllib3.PoolManager(num_pools=2, maxsize=4, retries=retry, timeout=self.timeout)

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """One Fetched per request ({"object_id", "portal_id"?}), in order. Never raises for HTTP trouble."""
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token.strip():
            problem = "the CRM secret has no hubspot.access_token (a private-app or OAuth token)"
            return [Fetched("permanent", None, problem) for _ in requests]
        if not _TOKEN.fullmatch(token.strip()):
            problem = "hubspot.access_token holds characters a token cannot have"
            return [Fetched("permanent", None, problem) for _ in requests]
        properties = self._properties(credentials)
        ids = [_object_id(request) for request in requests]
        unique = list(dict.fromkeys(object_id for object_id in ids if object_id is not None))
        found: dict[str, Fetched] = {}
        for start in range(0, len(unique), MAX_IDS_PER_REQUEST):
            found.update(self._batch_read(token.strip(), unique[start : start + MAX_IDS_PER_REQUEST], properties))
        results: list[Fetched] = []
        for request, object_id in zip(requests, ids, strict=True):
            if object_id is None:
                results.append(Fetched("permanent", None, "the queued event names no HubSpot object id"))
                continue
            outcome = found[object_id]
            if outcome.outcome == "ok" and outcome.record is not None:
                record = contact_record(outcome.record, _text(request.get("portal_id")))
                outcome = Fetched("ok", record)
            results.append(outcome)
        return results

    def _properties(self, credentials: Mapping[str, Any]) -> list[str]:
        extra = credentials.get("extra_properties")
        names = [*STANDARD_PROPERTIES, *self.extra_properties]
        if isinstance(extra, list):
            names.extend(str(name) for name in extra if isinstance(name, str) and _PROPERTY.fullmatch(name))
        return list(dict.fromkeys(names))

    def _batch_read(self, token: str, ids: list[str], properties: list[str]) -> dict[str, Fetched]:
        """Outcome per id of one batch-read request."""
        body = {"inputs": [{"id": object_id} for object_id in ids], "properties": properties}
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "lead-caller/1.0",
        }
        try:
            response = self.pool.request(
                "POST",
                self.base_url + BATCH_READ_PATH,
                body=json.dumps(body).encode(),
                headers=headers,
                timeout=self.timeout,
                retries=self.retry,
            )
        except MaxRetryError as error:
            return _all(ids, "transient", f"HubSpot could not be reached: {type(error.reason).__name__}")
        except HTTPError as error:
            return _all(ids, "transient", f"HubSpot could not be reached: {type(error).__name__}")
        payload = _json(response.data)
        status = response.status
        if status in (200, 207) or (status == 404 and _mentions_not_found(payload)):
            if not isinstance(payload, dict):
                return _all(ids, "transient", f"HTTP {status} with a body that is not a JSON object")
            return _per_id(ids, payload)
        message = _error_message(status, payload)
        logger.warning("HubSpot batch read failed", extra={"http_status": status, "ids": len(ids)})
        if status == 429 or status >= 500:
            return _all(ids, "transient", message)
        return _all(ids, "permanent", message)


def _object_id(request: Mapping[str, Any]) -> str | None:
    text = _text(request.get("object_id"))
    return text if text is not None and text.isascii() and text.isdigit() else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, Mapping, list)):
        return None
    return str(value).strip() or None


def _all(ids: list[str], outcome: FetchOutcome, message: str) -> dict[str, Fetched]:
    return {object_id: Fetched(outcome, None, message) for object_id in ids}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _mentions_not_found(payload: Any) -> bool:
    """True for a 404 that is HubSpot's "not found" for the ids (not a wrong URL)."""
    if not isinstance(payload, dict):
        return False
    categories = [payload.get("category"), *(_dict(error).get("category") for error in _list(payload.get("errors")))]
    return NOT_FOUND in categories


def _per_id(ids: list[str], payload: Mapping[str, Any]) -> dict[str, Fetched]:
    """Match results and multi-status errors back to the requested ids."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in _list(payload.get("results")):
        if not isinstance(item, dict):
            continue
        properties = _dict(item.get("properties"))
        # A merged contact comes back under its new id; its hs_merged_object_ids name the old ones.
        merged = str(properties.get("hs_merged_object_ids") or "").split(";")
        for key in (_text(item.get("id")), _text(properties.get("hs_object_id")), *merged):
            if key and key.strip():
                found.setdefault(key.strip(), item)
    missing: set[str] = set()
    failed: dict[str, str] = {}
    unexplained = False
    for error in _list(payload.get("errors")):
        if not isinstance(error, dict):
            continue
        named = [text for value in _list(_dict(error.get("context")).get("ids")) if (text := _text(value))]
        category = str(error.get("category") or "")
        if category == NOT_FOUND:
            missing.update(named)
        elif named:
            message = f"{category or 'error'}: {str(error.get('message') or '')[:200]}"
            failed.update(dict.fromkeys(named, message))
        else:
            unexplained = True
    outcomes: dict[str, Fetched] = {}
    for object_id in ids:
        if object_id in found:
            outcomes[object_id] = Fetched("ok", found[object_id])
        elif object_id in failed:
            outcomes[object_id] = Fetched("transient", None, failed[object_id])
        elif object_id in missing or not unexplained:
            outcomes[object_id] = Fetched("gone", None, "HubSpot reports the contact as deleted or not found")
        else:
            outcomes[object_id] = Fetched("transient", None, "HubSpot answered with errors that name no ids")
    return outcomes


def _error_message(status: int, payload: Any) -> str:
    """A short description of an error answer (HubSpot's category/policy and message)."""
    parts = [f"HTTP {status}"]
    if isinstance(payload, dict):
        label = payload.get("policyName") or payload.get("category") or payload.get("errorType")
        if label:
            parts.append(str(label))
        if payload.get("message"):
            parts.append(str(payload["message"])[:300])
    return ": ".join(parts)


# ── write-back (writeback.py): a note on the contact, optionally a contact property ──────────

NOTES_PATH = "/crm/v3/objects/notes"
CONTACTS_PATH = "/crm/v3/objects/contacts"
#: HubSpot-defined association type "note to contact"
NOTE_TO_CONTACT = 202


class HubSpotWriteback:
    """Writes a call note on a HubSpot contact (CRM v3 notes + association), and optionally
    sets a contact property (`options["outcome_property"]`) to the call's outcome.

    Options (WRITEBACK.hubspot): `note` (default true), `outcome_property` (a contact
    property's internal name; the property must exist, e.g. a single-line text).
    Credentials: the CRM secret's `hubspot.access_token` (scopes
    `crm.objects.contacts.read` and `crm.objects.contacts.write`).
    """

    def __init__(self, base_url: str, http: JsonHttp | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or JsonHttp()

    def write(
        self,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
        record: CrmRecord,
        note: CallNote,
        *,
        look_first: bool,
    ) -> WriteResult:
        """Note (and property) on the contact; with `look_first`, reuse a note carrying the task's marker."""
        token = str(credentials.get("access_token") or "").strip()
        if not token or not _TOKEN.fullmatch(token):
            return WriteResult("permanent", "the CRM secret has no usable hubspot.access_token")
        contact_id = _contact_id(record)
        if contact_id is None:
            return WriteResult("permanent", "the lead names no HubSpot contact id")
        headers = {"Authorization": f"Bearer {token}"}
        ref = ""
        if options.get("note", True) is not False:
            found = self._find_note(headers, contact_id, note) if look_first else None
            if isinstance(found, WriteResult):
                return found
            if found:
                ref = found
            else:
                body = {
                    "properties": {"hs_timestamp": note.ended_at or _now_ms(), "hs_note_body": note.html()},
                    "associations": [
                        {
                            "to": {"id": contact_id},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}],
                        }
                    ],
                }
                answer = self.http.send(
                    "POST", self.base_url + NOTES_PATH, headers, json_body=body, label="create note"
                )
                if not answer.ok:
                    logger.warning("HubSpot note not created", extra={"http_status": answer.status})
                    return _write_failure(answer, "HubSpot note")
                ref = str(_dict(answer.payload).get("id") or "")
        prop = str(options.get("outcome_property") or "").strip()
        if prop:
            url = f"{self.base_url}{CONTACTS_PATH}/{contact_id}"
            body = {"properties": {prop: note.label}}
            answer = self.http.send("PATCH", url, headers, json_body=body, label="update contact")
            if not answer.ok:
                logger.warning("HubSpot contact property not set", extra={"http_status": answer.status})
                failure = _write_failure(answer, f"HubSpot property {prop}")
                written = f"note {ref} written; " if ref else ""
                return WriteResult(failure.outcome, written + failure.message, ref)
        return WriteResult("done", "", ref)

    def _find_note(self, headers: Mapping[str, str], contact_id: str, note: CallNote) -> str | WriteResult | None:
        """The id of the contact's note carrying the marker (search is eventually consistent: a few seconds)."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "associations.contact", "operator": "EQ", "value": contact_id}]}
            ],
            "properties": ["hs_note_body"],
            "sorts": [{"propertyName": "hs_timestamp", "direction": "DESCENDING"}],
            "limit": 100,
        }
        answer = self.http.send(
            "POST", self.base_url + NOTES_PATH + "/search", headers, json_body=body, label="search notes"
        )
        if not answer.ok:
            return _write_failure(answer, "HubSpot note search")
        for item in _list(_dict(answer.payload).get("results")):
            text = str(_dict(_dict(item).get("properties")).get("hs_note_body") or "")
            if note.marker in text:
                return str(_dict(item).get("id") or "") or "found"
        return None


def _contact_id(record: CrmRecord) -> str | None:
    """The contact id: `crm_object.id` of a contact, else the object part of "portal:object"."""
    candidate = record.object_id if record.object_type in ("", "contact", "contacts") and record.object_id else ""
    candidate = candidate or record.record_id.rsplit(":", 1)[-1]
    return candidate if candidate.isascii() and candidate.isdigit() else None


def _write_failure(answer: Answer, what: str) -> WriteResult:
    """transient for 429/5xx/no answer, else permanent; HubSpot's category and message quoted (redacted)."""
    detail = _error_message(answer.status or 0, answer.payload) if answer.status else answer.message
    result = answer.result(what)
    return WriteResult(result.outcome, f"{what}: {redact(detail)[:300]}")


def _now_ms() -> str:
    return str(int(time.time() * 1000))
