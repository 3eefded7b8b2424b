"""Local stand-in for the part of HubSpot's CRM API that lead-caller reads (contacts).

Serves, with ``Authorization: Bearer <token>`` checked (401 otherwise):

* ``POST /crm/v3/objects/contacts/batch/read``: 200 when every id is found, 207
  (multi-status) with an ``OBJECT_NOT_FOUND`` error listing the missing ids;
  a merged contact is also found by the ids in its ``hs_merged_object_ids``;
* ``GET /crm/v3/objects/contacts/{id}?properties=a,b``: 200, or 404 when missing;
* write-back: ``PATCH /crm/v3/objects/contacts/{id}`` (properties), ``POST
  /crm/v3/objects/notes`` (with associations to contacts, 201; 400 when the
  contact does not exist) and ``POST /crm/v3/objects/notes/search`` (filter
  ``associations.contact EQ <id>``); the notes are listed at ``GET /__standin__/notes``.

Requested properties without a value come back as ``null``, like HubSpot.
Tests queue faults ("status" with headers/body, "delay", "drop") for the next
API requests and read the recorded requests, through the Python API or the
HTTP admin API under ``/__standin__/`` (``GET requests``, ``GET|POST faults``,
``GET|POST contacts``, ``DELETE contacts/{id}``, ``POST reset``, ``GET config``).

Run standalone with ``python -m local.hubspot_api --port 8766``.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.standin import Fault, JSONDict, Reply, Request, StandInServer, cli_parser, serve_main

__all__ = ["ADMIN_PREFIX", "DEFAULT_CONTACTS", "STANDIN_TOKEN", "HubSpotApiStandIn", "StandInFault", "main"]

ADMIN_PREFIX = "/__standin__"
CONTACTS_PATH = "/crm/v3/objects/contacts"
NOTES_PATH = "/crm/v3/objects/notes"
STANDIN_TOKEN = "pat-na1-00000000-0000-4000-8000-000000000000"  # noqa: S105 - a fake private-app token
PORTAL_ID = 62515
MAX_BATCH = 100
_ALWAYS = ("createdate", "hs_object_id", "lastmodifieddate")
_DEFAULT_PROPERTIES = ("email", "firstname", "lastname")
_NOT_FOUND_MESSAGE = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."

#: The contacts of the reference samples 9.1/9.2 (portal 62515), as a HubSpot portal holds them.
DEFAULT_CONTACTS: dict[str, JSONDict] = {
    "1246978": {
        "firstname": "Maria",
        "lastname": "Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "phone": "+1 (512) 555-0142",
        "mobilephone": "+1 512 555 0199",
        "jobtitle": "Director of Operations",
        "company": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400",
        "city": "Austin",
        "state": "TX",
        "zip": "78701",
        "country": "United States",
        "message": "Requested a callback about fleet pricing.",
        "hs_lead_status": "NEW",
        "lifecyclestage": "lead",
        "createdate": "2026-01-01T00:00:00.123Z",
    },
    "1246979": {
        "firstname": "James",
        "lastname": "Okafor",
        "email": "james.okafor@northwind-solar.example",
        "phone": "(415) 555-0117",
        "jobtitle": "Facilities Manager",
        "company": "Northwind Solar",
        "city": "San Francisco",
        "state": "CA",
        "zip": "94105",
        "country": "United States",
        "message": "Asked for a quote for 40 rooftop panels.",
        "hs_lead_status": "OPEN",
        "lifecyclestage": "lead",
        "createdate": "2026-01-01T00:00:00.456Z",
    },
    "65059681032": {
        "firstname": "Priya",
        "lastname": "Raman",
        "email": "priya.raman@brightpath-analytics.example",
        "phone": "+44 20 7946 0321",
        "jobtitle": "Head of Customer Success",
        "company": "Brightpath Analytics",
        "city": "London",
        "country": "United Kingdom",
        "hs_lead_status": "NEW",
        "lifecyclestage": "marketingqualifiedlead",
        "createdate": "2026-01-01T00:00:00.741Z",
    },
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error_body(message: str, category: str, **extra: Any) -> JSONDict:
    """HubSpot's error envelope."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


_JSON_TYPE = "application/json;charset=utf-8"


def _json(status: int, payload: Any) -> Reply:
    """A JSON answer with HubSpot's Content-Type."""
    return Reply.json(status, payload, content_type=_JSON_TYPE)


def _fault_error(status: int) -> Reply:
    """HubSpot's error answer for a "status" fault without a body."""
    if status == 429:
        body: Any = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING",
        }
    elif status in (401, 403):
        body = _error_body("The access token does not have the required scopes.", "MISSING_SCOPES")
    else:
        body = _error_body(f"HTTP {status} from the stand-in", "INTERNAL_ERROR")
    return _json(status, body)


@dataclass(frozen=True, slots=True)
class StandInFault(Fault):
    """One queued fault, applied to the next API request (admin requests are never faulted)."""

    def reply(self) -> Reply:
        """The answer of a "status" fault: HubSpot's error body for that status unless one was given."""
        return self.answer(_fault_error, _JSON_TYPE)


class HubSpotApiStandIn(StandInServer[StandInFault]):
    """In-process HubSpot CRM contacts API on 127.0.0.1, with fault injection. Thread-safe."""

    fault_type = StandInFault
    thread_name = "hubspot-standin"
    server_version = "HubSpotApiStandIn/1.0"
    admin_prefix = ADMIN_PREFIX
    json_type = _JSON_TYPE
    bad_length = (400, "invalid Content-Length")
    internal_error = "stand-in internal error"
    methods = frozenset({"GET", "POST", "PATCH", "DELETE"})

    def __init__(
        self,
        access_token: str = STANDIN_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        with_defaults: bool = True,
    ) -> None:
        """``with_defaults`` loads DEFAULT_CONTACTS (and again on reset)."""
        super().__init__(host, port)
        self.access_token = access_token
        self.with_defaults = with_defaults
        self._contacts: dict[str, JSONDict] = {}
        self._notes: dict[str, JSONDict] = {}
        self.reset()

    # ── test API ───────────────────────────────────────────────────────

    def add_contact(self, object_id: int | str, properties: Mapping[str, Any]) -> JSONDict:
        """Store (or replace) a contact; returns it as the API shows it with every property."""
        key = str(object_id).strip()
        if not key.isascii() or not key.isdigit():
            raise ValueError("a HubSpot object id is a string of digits")
        stored = {str(name): None if value is None else str(value) for name, value in properties.items()}
        stored.setdefault("createdate", _now_iso())
        stored["lastmodifieddate"] = stored.get("lastmodifieddate") or stored["createdate"]
        stored["hs_object_id"] = key
        with self._lock:
            self._contacts[key] = stored
        return _contact_view(key, stored, None)

    def delete_contact(self, object_id: int | str) -> bool:
        """Remove a contact (it then reads as missing); False when it was not there."""
        with self._lock:
            return self._contacts.pop(str(object_id).strip(), None) is not None

    @property
    def contacts(self) -> dict[str, JSONDict]:
        """Stored contacts (copies): object id -> properties."""
        with self._lock:
            return copy.deepcopy(self._contacts)

    @property
    def notes(self) -> dict[str, JSONDict]:
        """Notes written (copies): note id -> {"properties", "contact_ids"}."""
        with self._lock:
            return copy.deepcopy(self._notes)

    def reset(self) -> None:
        """Forget requests, faults and notes; contacts back to the defaults (or none)."""
        super().reset()
        with self._lock:
            self._contacts.clear()
            self._notes.clear()
        if self.with_defaults:
            for object_id, properties in DEFAULT_CONTACTS.items():
                self.add_contact(object_id, properties)

    # ── request handling ───────────────────────────────────────────────

    def _serve_api(self, request: Request) -> Reply:
        """Answer one API request (every one takes the next fault) and record it, Authorization masked."""
        fault = self._take_fault(request.path)
        parsed: Any = None
        try:
            parsed = json.loads(request.body) if request.body else None
        except ValueError:
            parsed = None
        authorized = self._authorized(request.headers)
        reply = self._apply_fault(
            fault,
            lambda: self._api(request.method, request.path, request.params, parsed, request.body, authorized),
        )
        masked = {k: ("Bearer ***" if k == "authorization" else v) for k, v in request.headers.items()}
        self._record(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": masked,
                "authorized": authorized,
                "json": parsed,
                **self._outcome(reply, fault),
                "received": _now_iso(),
            }
        )
        return reply

    def _error_reply(self, status: int, message: str) -> Reply:
        """HubSpot's error envelope."""
        return _json(status, _error_body(message, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR"))

    def _fault_error(self, status: int) -> Reply:
        """HubSpot's error answer for a "status" fault without a body."""
        return _fault_error(status)

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.access_token

    def _api(
        self, method: str, path: str, query: Mapping[str, list[str]], parsed: Any, body: bytes, authorized: bool
    ) -> Reply:
        batch = path.rstrip("/") == CONTACTS_PATH + "/batch/read"
        single = path.startswith(CONTACTS_PATH + "/") and not batch and path.count("/") == 5
        notes = path.rstrip("/") in (NOTES_PATH, NOTES_PATH + "/search")
        if not batch and not single and not notes:
            return _json(404, _error_body(f"Unable to route {method} {path}", "OBJECT_NOT_FOUND"))
        if not authorized:
            message = (
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            )
            return _json(401, _error_body(message, "INVALID_AUTHENTICATION"))
        if notes and method == "POST":
            return self._search_notes(parsed) if path.rstrip("/").endswith("/search") else self._create_note(parsed)
        if single and method == "PATCH":
            return self._update_contact(path.rsplit("/", 1)[1], parsed)
        if batch and method == "POST":
            return self._batch_read(parsed, body)
        if single and method == "GET":
            names = [name for value in query.get("properties", []) for name in value.split(",") if name]
            return self._get_one(path.rsplit("/", 1)[1], names)
        return _json(405, _error_body(f"Method {method} not allowed", "VALIDATION_ERROR"))

    def _find(self, object_id: str) -> tuple[str, JSONDict] | None:
        """The contact with this id, or the one it was merged into (caller holds the lock)."""
        if object_id in self._contacts:
            return object_id, self._contacts[object_id]
        for key, stored in self._contacts.items():
            merged = str(stored.get("hs_merged_object_ids") or "").split(";")
            if object_id in (item.strip() for item in merged):
                return key, stored
        return None

    def _get_one(self, object_id: str, names: Sequence[str]) -> Reply:
        with self._lock:
            found = self._find(object_id)
            view = None if found is None else _contact_view(found[0], found[1], names or _DEFAULT_PROPERTIES)
        if view is None:
            return _json(404, _error_body("resource not found", "OBJECT_NOT_FOUND"))
        return _json(200, view)

    def _batch_read(self, parsed: Any, body: bytes) -> Reply:
        if not isinstance(parsed, dict) or not isinstance(parsed.get("inputs"), list):
            detail = "the body is not JSON" if body and parsed is None else "inputs must be a list"
            return _json(400, _error_body(f"Invalid input JSON: {detail}", "VALIDATION_ERROR"))
        inputs = parsed["inputs"]
        if len(inputs) > MAX_BATCH:
            message = f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}"
            return _json(400, _error_body(message, "VALIDATION_ERROR"))
        ids = [str(item.get("id")) for item in inputs if isinstance(item, dict) and item.get("id") is not None]
        if len(ids) != len(inputs):
            return _json(400, _error_body("Every input needs an id", "VALIDATION_ERROR"))
        names = [str(name) for name in parsed.get("properties") or [] if isinstance(name, str)]
        started = _now_iso()
        results: list[JSONDict] = []
        missing: list[str] = []
        seen: set[str] = set()
        with self._lock:
            for object_id in dict.fromkeys(ids):
                found = self._find(object_id)
                if found is None:
                    missing.append(object_id)
                elif found[0] not in seen:
                    seen.add(found[0])
                    results.append(_contact_view(found[0], found[1], names or _DEFAULT_PROPERTIES))
        payload: JSONDict = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
        if not missing:
            return _json(200, payload)
        error = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": _NOT_FOUND_MESSAGE,
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }
        return _json(207, {**payload, "numErrors": 1, "errors": [error]})

    def _create_note(self, parsed: Any) -> Reply:
        properties = parsed.get("properties") if isinstance(parsed, dict) else None
        if not isinstance(properties, dict) or not properties.get("hs_timestamp"):
            return _json(
                400, _error_body("Property values were not valid: hs_timestamp is required", "VALIDATION_ERROR")
            )
        contact_ids: list[str] = []
        for association in parsed.get("associations") or []:
            target = str(((association or {}).get("to") or {}).get("id") or "")
            types = [t.get("associationTypeId") for t in (association or {}).get("types") or [] if isinstance(t, dict)]
            if 202 not in types:
                return _json(400, _error_body("unsupported association type", "VALIDATION_ERROR"))
            contact_ids.append(target)
        with self._lock:
            missing = [cid for cid in contact_ids if cid not in self._contacts]
            if missing:
                message = f"One or more associations are invalid: contact {missing[0]} does not exist"
                return _json(400, _error_body(message, "VALIDATION_ERROR"))
            note_id = str(90_000_000_000 + len(self._notes) + 1)
            stored = {str(k): None if v is None else str(v) for k, v in properties.items()}
            stored.update(hs_object_id=note_id, hs_createdate=_now_iso())
            self._notes[note_id] = {"properties": stored, "contact_ids": contact_ids}
        return _json(
            201, {"id": note_id, "properties": stored, "createdAt": stored["hs_createdate"], "archived": False}
        )

    def _search_notes(self, parsed: Any) -> Reply:
        groups = parsed.get("filterGroups") if isinstance(parsed, dict) else None
        wanted: str | None = None
        for group in groups or []:
            for item in (group or {}).get("filters") or []:
                if item.get("propertyName") == "associations.contact" and item.get("operator") == "EQ":
                    wanted = str(item.get("value"))
        names = [str(name) for name in (parsed or {}).get("properties") or []]
        with self._lock:
            found = [
                {"id": note_id, "properties": {n: note["properties"].get(n) for n in names or ["hs_note_body"]}}
                for note_id, note in self._notes.items()
                if wanted is None or wanted in note["contact_ids"]
            ]
        return _json(200, {"total": len(found), "results": found})

    def _update_contact(self, object_id: str, parsed: Any) -> Reply:
        properties = parsed.get("properties") if isinstance(parsed, dict) else None
        if not isinstance(properties, dict):
            return _json(400, _error_body("properties must be an object", "VALIDATION_ERROR"))
        with self._lock:
            stored = self._contacts.get(object_id)
            if stored is None:
                return _json(404, _error_body("resource not found", "OBJECT_NOT_FOUND"))
            stored.update({str(k): None if v is None else str(v) for k, v in properties.items()})
            stored["lastmodifieddate"] = _now_iso()
            view = _contact_view(object_id, stored, list(properties))
        return _json(200, view)

    def _admin(self, method: str, sub: str, body: bytes) -> Reply:
        """The ``/__standin__/`` admin API (trailing slashes ignored)."""
        return super()._admin(method, sub.rstrip("/"), body)

    def _admin_config(self) -> JSONDict:
        """``GET config``: base URL and token."""
        return {"base_url": self.base_url, "access_token": self.access_token}

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:
        """``GET|POST contacts`` and ``DELETE contacts/{id}``."""
        if (method, sub) == ("GET", "/contacts"):
            return self._admin_list(self.contacts)
        if (method, sub) == ("GET", "/notes"):
            return self._admin_list(self.notes)
        if method == "DELETE" and sub.startswith("/contacts/"):
            object_id = sub.removeprefix("/contacts/")
            if self.delete_contact(object_id):
                return _json(200, {"ok": True})
            return _json(404, {"error": f"no contact {object_id}"})
        if (method, sub) != ("POST", "/contacts"):
            return None
        data = self._admin_json(body)
        properties = data.get("properties")
        if not isinstance(properties, dict):
            return _json(400, {"error": 'expected {"id": "...", "properties": {...}}'})
        return _json(201, self.add_contact(str(data.get("id")), properties))


def _contact_view(object_id: str, stored: Mapping[str, Any], names: Iterable[str] | None) -> JSONDict:
    """A contact as the v3 API returns it: requested properties (null when unset) plus the three defaults."""
    wanted = list(stored) if names is None else [*names, *_ALWAYS]
    properties = {name: stored.get(name) for name in dict.fromkeys(wanted)}
    return {
        "id": object_id,
        "properties": properties,
        "createdAt": stored.get("createdate"),
        "updatedAt": stored.get("lastmodifieddate"),
        "archived": False,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.hubspot_api", "Serve a local stand-in of HubSpot's CRM contacts API.", 8766)
    parser.add_argument("--access-token", default=STANDIN_TOKEN)
    parser.add_argument("--empty", action="store_true", help="start without the sample contacts")
    args = parser.parse_args(argv)
    standin = HubSpotApiStandIn(args.access_token, args.host, args.port, with_defaults=not args.empty)
    return serve_main(
        standin,
        lambda: [
            f"HubSpot API stand-in: {standin.base_url}  (HUBSPOT_API_BASE_URL)",
            f"  access token: {standin.access_token}",
            f"  contacts:     {', '.join(standin.contacts) or '(none)'}",
            f"  admin API:    {standin.admin_url}/ (requests, faults, contacts, reset, config)",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
