"""Local stand-in for the part of the Pipedrive API lead-caller reads.

Serves ``GET /api/v2/persons/{id}`` and ``GET /api/v2/organizations/{id}`` in
Pipedrive's envelope (``{"success": true, "data": {...}}``; 404 ``{"success":
false, "error": "Person not found", ...}``), checks the API token (header
``x-api-token`` or query ``api_token``; 401 otherwise) and sends the
``x-ratelimit-*`` headers. Tests inject faults (an error status such as 429
with ``Retry-After``, a slow answer, a dropped connection) through the Python
API or the HTTP admin API under ``/__standin__/``:

    GET  /__standin__/requests        what the API received (tokens never recorded)
    GET  /__standin__/faults          pending faults;  POST {"kind": "status", "status": 429, ...}
    GET  /__standin__/persons         POST a person (API v2 shape); DELETE /__standin__/persons/{id}
    GET  /__standin__/organizations   POST an organisation
    GET  /__standin__/config          base URL and token
    POST /__standin__/reset           back to the sample persons and organisations

Write-back: ``POST /api/v1/notes`` and ``POST /api/v1/activities`` (attached to a
known person, and/or a lead/deal; 400 without one, 404 for an unknown person),
``GET /api/v1/notes?person_id=|lead_id=|deal_id=`` and ``GET
/api/v1/persons/{id}/activities``; shown at ``GET /__standin__/notes`` and
``GET /__standin__/activities``.

The sample data follows the reference samples 9.8: person 8 (Maria Gonzalez,
organisation 1 Acme Logistics) and person 11 (organisation 2 Lead Org).

Run standalone with ``python -m local.pipedrive_api --port 8766``.
"""

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.standin import FAULT_KINDS as FAULT_KINDS
from local.standin import Fault as _Fault
from local.standin import JSONDict, Reply, Request, StandInServer, cli_parser, serve_main, status_phrase

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_TOKEN",
    "Fault",
    "PipedriveApiStandIn",
    "main",
    "sample_organizations",
    "sample_persons",
]

ADMIN_PREFIX = "/__standin__"
DEFAULT_TOKEN = "pd-standin-0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # noqa: S105 - a fake credential
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
_ROUTES = (
    (re.compile(r"/api/v2/persons/(?P<id>\d+)"), "persons", "Person not found"),
    (re.compile(r"/api/v2/organizations/(?P<id>\d+)"), "organizations", "Organization not found"),
)

ADDRESS_FIELD = "3d0fa3429dfa2d3dec265b4fc5dc8258ab66cdf3"
JOB_TITLE_FIELD = "9c1b7e2a4d5f6e7a8b9c0d1e2f3a4b5c6d7e8f90"


def sample_persons() -> dict[int, JSONDict]:
    """Persons 8 and 11 of the reference samples, as API v2 answers them (custom fields as plain values)."""
    return {
        8: {
            "id": 8,
            "name": "Maria Gonzalez",
            "first_name": "Maria",
            "last_name": "Gonzalez",
            "owner_id": 12415231,
            "org_id": 1,
            "add_time": "2026-01-01T00:00:00Z",
            "update_time": "2026-01-01T00:00:00Z",
            "emails": [{"label": "work", "value": "maria.gonzalez@acme-logistics.example", "primary": True}],
            "phones": [
                {"label": "work", "value": "+1 (512) 555-0142", "primary": True},
                {"label": "mobile", "value": "+1 512 555 0199", "primary": False},
            ],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [5],
            "picture_id": None,
            "custom_fields": {
                ADDRESS_FIELD: {
                    "value": "1200 Congress Ave, Suite 400, Austin, TX 78701",
                    "country": "United States",
                    "locality": "Austin",
                    "route": "Congress Ave",
                    "street_number": "1200",
                    "subpremise": "Suite 400",
                    "admin_area_level_1": "Texas",
                    "admin_area_level_2": "Travis County",
                    "postal_code": "78701",
                    "formatted_address": "1200 Congress Ave Suite 400, Austin, TX 78701, USA",
                },
                JOB_TITLE_FIELD: "Director of Operations",
            },
        },
        11: {
            "id": 11,
            "name": "Daniel Okafor",
            "first_name": "Daniel",
            "last_name": "Okafor",
            "owner_id": 12415231,
            "org_id": 2,
            "add_time": "2022-11-24T15:30:12Z",
            "update_time": "2022-11-24T15:30:12Z",
            "emails": [{"label": "work", "value": "daniel.okafor@lead-org.example", "primary": True}],
            "phones": [{"label": "work", "value": "+1 (415) 555-0187", "primary": True}],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "custom_fields": {JOB_TITLE_FIELD: "Head of Procurement"},
        },
    }


def sample_organizations() -> dict[int, JSONDict]:
    """Organisations 1 and 2 of the reference samples, as API v2 answers them."""
    return {
        1: {
            "id": 1,
            "name": "Acme Logistics",
            "owner_id": 12415231,
            "add_time": "2026-01-01T00:00:00Z",
            "update_time": "2026-01-01T00:00:00Z",
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "address": {
                "value": "1200 Congress Ave, Austin, TX 78701",
                "country": "United States",
                "locality": "Austin",
                "formatted_address": "1200 Congress Ave, Austin, TX 78701, USA",
            },
            "custom_fields": {},
        },
        2: {
            "id": 2,
            "name": "Lead Org",
            "owner_id": 12415231,
            "add_time": "2022-11-24T15:30:00Z",
            "update_time": "2022-11-24T15:30:00Z",
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "address": None,
            "custom_fields": {},
        },
    }


@dataclass(frozen=True, slots=True)
class Fault(_Fault):
    """One queued fault, applied to the next API request whose path contains ``match``."""

    match: str = ""

    extra_options = frozenset({"match"})

    @classmethod
    def _extra_fields(cls, options: Mapping[str, Any]) -> JSONDict:
        """``match``: a part of the request path ("" matches every request)."""
        match = options.get("match", "")
        if not isinstance(match, str):
            raise ValueError("fault 'match' must be text (a part of the request path)")
        return {"match": match}

    def _extra_view(self) -> JSONDict:
        """``match`` for ``to_dict``."""
        return {"match": self.match}

    def matches(self, path: str) -> bool:
        """Whether ``match`` is a part of ``path``."""
        return self.match in path


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """Pipedrive's error envelope."""
    payload = {"success": False, "error": message, "errorCode": status, "error_info": ERROR_INFO}
    if status == 404:
        payload = {"success": False, "error": message, "error_info": ERROR_INFO, "data": None, "additional_data": None}
    return Reply.json(status, payload, headers)


class PipedriveApiStandIn(StandInServer[Fault]):
    """In-process fake of the Pipedrive API (persons, organisations) with fault injection."""

    fault_type = Fault
    thread_name = "pipedrive-standin"
    server_version = "PipedriveStandIn/1.0"
    admin_prefix = ADMIN_PREFIX
    methods = frozenset({"GET", "POST", "PATCH", "DELETE"})
    max_body = 1024 * 1024

    def __init__(self, api_token: str = DEFAULT_TOKEN, host: str = "127.0.0.1", port: int = 0) -> None:
        """Configure the accepted API token; the sample persons and organisations are loaded."""
        super().__init__(host, port)
        self.api_token = api_token
        self._persons = sample_persons()
        self._organizations = sample_organizations()
        self._notes: list[JSONDict] = []
        self._activities: list[JSONDict] = []

    # ── test API (enqueue_fault, pending_faults, requests: see StandInServer) ──

    def add_person(self, person: Mapping[str, Any]) -> JSONDict:
        """Add or replace a person (API v2 shape, ``id`` required); returns a copy."""
        return self._put(self._persons, person)

    def add_organization(self, organization: Mapping[str, Any]) -> JSONDict:
        """Add or replace an organisation (API v2 shape, ``id`` required); returns a copy."""
        return self._put(self._organizations, organization)

    def delete_person(self, person_id: int) -> None:
        """Forget a person: the API answers 404 for it from now on."""
        with self._lock:
            self._persons.pop(int(person_id), None)

    def delete_organization(self, org_id: int) -> None:
        """Forget an organisation: the API answers 404 for it from now on."""
        with self._lock:
            self._organizations.pop(int(org_id), None)

    @property
    def persons(self) -> dict[int, JSONDict]:
        """The persons held (copies)."""
        with self._lock:
            return copy.deepcopy(self._persons)

    @property
    def organizations(self) -> dict[int, JSONDict]:
        """The organisations held (copies)."""
        with self._lock:
            return copy.deepcopy(self._organizations)

    @property
    def notes(self) -> list[JSONDict]:
        """Notes written through the API (copies)."""
        with self._lock:
            return copy.deepcopy(self._notes)

    @property
    def activities(self) -> list[JSONDict]:
        """Activities written through the API (copies)."""
        with self._lock:
            return copy.deepcopy(self._activities)

    def reset(self) -> None:
        """Forget requests, faults, notes and activities; back to the sample persons and organisations."""
        super().reset()
        with self._lock:
            self._notes = []
            self._activities = []
            self._persons = sample_persons()
            self._organizations = sample_organizations()

    def _put(self, table: dict[int, JSONDict], item: Mapping[str, Any]) -> JSONDict:
        raw_id = item.get("id")
        if not isinstance(raw_id, int) or isinstance(raw_id, bool) or raw_id < 1:
            raise ValueError("the item needs a positive integer id")
        stored = copy.deepcopy(dict(item))
        with self._lock:
            table[raw_id] = stored
        return copy.deepcopy(stored)

    # ── request handling ───────────────────────────────────────────────
    # ── request handling ───────────────────────────────────────────────

    def _serve_api(self, request: Request) -> Reply:
        """Answer one API request (with the first fault matching its path) and record it, tokens left out."""
        path, query = request.path, request.params
        fault = self._take_fault(path)
        reply = self._apply_fault(fault, lambda: self._route(request, query))
        token = request.headers.get("x-api-token") or (query.get("api_token") or [""])[0]
        self._record(
            {
                "method": request.method,
                "path": path,  # the query (which may hold api_token) is left out on purpose
                **self._outcome(reply, fault),
                "authenticated": token == self.api_token,
                "received": datetime.now(UTC).isoformat(),
            }
        )
        return reply

    def _route(self, request: Request, query: Mapping[str, list[str]]) -> Reply:
        """The write-back endpoints (API v1), else the v2 reads."""
        path = request.path.rstrip("/")
        v1 = path in ("/api/v1/notes", "/api/v1/activities") or re.fullmatch(r"/api/v1/persons/\d+/activities", path)
        if not v1:
            return self._api(request.method, request.path, request.headers, query)
        token = request.headers.get("x-api-token") or (query.get("api_token") or [""])[0]
        if token != self.api_token:
            return _error(401, "unauthorized access")
        if request.method == "GET" and path == "/api/v1/notes":
            return self._list(self._notes, query)
        if request.method == "GET" and path.endswith("/activities"):
            return self._list(self._activities, {"person_id": [path.split("/")[4]]})
        if request.method != "POST" or (path.endswith("/activities") and path != "/api/v1/activities"):
            return _error(405, f'Method "{request.method}" not allowed.')
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, "Invalid JSON")
        return self._add(self._notes if path == "/api/v1/notes" else self._activities, data, path)

    def _list(self, table: list[JSONDict], query: Mapping[str, list[str]]) -> Reply:
        wanted = {key: values[0] for key, values in query.items() if key in ("person_id", "lead_id", "deal_id")}
        with self._lock:
            found = [
                copy.deepcopy(item)
                for item in table
                if all(str(item.get(key)) == value for key, value in wanted.items())
            ]
        return Reply.json(200, {"success": True, "data": found or None}, _RATE_HEADERS)

    def _add(self, table: list[JSONDict], data: Any, path: str) -> Reply:
        if not isinstance(data, dict):
            return _error(400, "Invalid JSON")
        if path == "/api/v1/notes" and not str(data.get("content") or "").strip():
            return _error(400, "Note content is required.")
        if not any(data.get(key) for key in ("person_id", "lead_id", "deal_id", "org_id")):
            return _error(400, "Either deal_id, person_id, org_id or lead_id is required.")
        with self._lock:
            person_id = data.get("person_id")
            if person_id is not None and int(person_id) not in self._persons:
                return _error(404, "Person not found")
            item = {**data, "id": len(table) + 1, "add_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}
            table.append(item)
        return Reply.json(201, {"success": True, "data": copy.deepcopy(item)}, _RATE_HEADERS)

    def _api(self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> Reply:
        token = headers.get("x-api-token") or (query.get("api_token") or [""])[0]
        if token != self.api_token:
            return _error(401, "unauthorized access")
        for pattern, table_name, missing in _ROUTES:
            match = pattern.fullmatch(path.rstrip("/"))
            if match is None:
                continue
            if method != "GET":
                return _error(405, f'Method "{method}" not allowed.', {"Allow": "GET"})
            table = self._persons if table_name == "persons" else self._organizations
            with self._lock:
                item = copy.deepcopy(table.get(int(match["id"])))
            if item is None:
                return _error(404, missing, _RATE_HEADERS)
            return Reply.json(200, {"success": True, "data": item}, _RATE_HEADERS)
        return _error(404, "Unknown method .")

    def _error_reply(self, status: int, message: str) -> Reply:
        """Pipedrive's error envelope."""
        return _error(status, message)

    def _fault_error(self, status: int) -> Reply:
        """Pipedrive's error for a "status" fault without a body (429 with exhausted rate-limit headers)."""
        reply = _error(status, "Request over limit" if status == 429 else status_phrase(status))
        if status == 429:
            reply.headers.update({**_RATE_HEADERS, "x-ratelimit-remaining": "0", "x-ratelimit-reset": "10"})
        return reply

    def _admin_config(self) -> JSONDict:
        """``GET config``: base URL and token."""
        return {"base_url": self.base_url, "api_token": self.api_token}

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:
        """``GET|POST persons``, ``GET|POST organizations`` and ``DELETE persons|organizations/{id}``."""
        route = (method, sub.rstrip("/"))
        if route == ("GET", "/persons"):
            return self._json(200, {"data": list(self.persons.values())})
        if route == ("GET", "/notes"):
            return self._admin_list(self.notes)
        if route == ("GET", "/activities"):
            return self._admin_list(self.activities)
        if route == ("GET", "/organizations"):
            return self._json(200, {"data": list(self.organizations.values())})
        if method == "DELETE" and (found := re.fullmatch(r"/(persons|organizations)/(\d+)", route[1])):
            if found[1] == "persons":
                self.delete_person(int(found[2]))
            else:
                self.delete_organization(int(found[2]))
            return self._json(200, {"ok": True})
        if route not in (("POST", "/persons"), ("POST", "/organizations")):
            return None
        data = self._admin_json(body)
        added = self.add_person(data) if route[1] == "/persons" else self.add_organization(data)
        return self._json(201, {"ok": True, "data": added})


_RATE_HEADERS = {"x-ratelimit-limit": "80", "x-ratelimit-remaining": "79", "x-ratelimit-reset": "2"}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.pipedrive_api", "Serve a local stand-in of the Pipedrive API.", 8766)
    parser.add_argument("--api-token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    standin = PipedriveApiStandIn(api_token=args.api_token, host=args.host, port=args.port)
    return serve_main(
        standin,
        lambda: [
            f"Pipedrive API stand-in: {standin.base_url}/api/v2/persons/{{id}}",
            f"  api token:  {standin.api_token}  (header x-api-token)",
            f"  persons:    {', '.join(str(i) for i in standin.persons)}",
            f"  admin API:  {standin.admin_url}/ (faults, requests, persons, organizations, reset)",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
