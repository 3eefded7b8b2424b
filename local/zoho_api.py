"""Local stand-in for the parts of Zoho that lead-caller uses: OAuth (accounts) and the CRM API.

One server plays both hosts (its URL is the accounts server and the
``api_domain`` it announces):

* ``POST /oauth/v2/token`` (refresh-token grant; parameters in the query or a
  form body): ``{"access_token", "api_domain": <this server>, "token_type":
  "Bearer", "expires_in"}``; like Zoho, a wrong client answers HTTP 200
  ``{"error": "invalid_client"}`` and a wrong refresh token HTTP 200
  ``{"error": "invalid_code"}``;
* ``GET /crm/{v}/{Leads|Contacts}/{id}`` and ``GET /crm/{v}/{module}?ids=a,b&fields=...``
  with ``Authorization: Zoho-oauthtoken <token>`` (401 ``INVALID_TOKEN`` for an
  unknown, expired or revoked token): ``{"data": [...]}`` with the requested
  fields (and ``id``), 204 when none of the ids exists;
* write-back: ``POST /crm/{v}/{module}/{id}/Notes`` (``{"data": [{"Note_Title",
  "Note_Content"}]}``; 201, or 400 ``INVALID_DATA`` when the record is not in
  that module) and ``GET /crm/{v}/{module}/{id}/Notes`` (204 when none); shown at
  ``GET /__standin__/notes``;
* ``GET|POST|PATCH|PUT|DELETE /crm/{v}/actions/watch``: the Notification API's
  watches, stored per channel and module. ``channel_expiry`` more than a week
  ahead (or none) falls back to one hour, as Zoho documents; expired watches
  disappear. ``notify()`` posts a callback to the watches' ``notify_url``.

The sample records follow the reference samples 9.9 (lead 5725767000003000064,
Maria Gonzalez). Tests queue faults ("status", "delay", "drop", optionally
``match`` = part of the path) and read the recorded requests (tokens and client
secrets masked), through the Python API or the admin API under ``/__standin__/``:
``GET requests``, ``GET|POST faults``, ``GET config``, ``POST reset``, ``GET|POST
records``, ``DELETE records/{module}/{id}``, ``GET watches``, ``POST
expire-tokens``, ``POST notify`` (``{"module", "ids", "operation"}``).

Run standalone with ``python -m local.zoho_api --port 8767``.
"""

import copy
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

from local.standin import Fault, JSONDict, Reply, Request, StandInServer, cli_parser, serve_main

__all__ = [
    "DEFAULT_RECORDS",
    "STANDIN_CLIENT_ID",
    "STANDIN_CLIENT_SECRET",
    "STANDIN_REFRESH_TOKEN",
    "ZohoApiStandIn",
    "ZohoFault",
    "main",
]

STANDIN_CLIENT_ID = "1000.STANDIN0ZOHO0CLIENT00000000000"
STANDIN_CLIENT_SECRET = "standin-zoho-client-secret-0123456789abcdef"  # noqa: S105 - a fake credential
STANDIN_REFRESH_TOKEN = "1000.5a7e0c2d9b1f4e6a8c3d5e7f9a1b3c5d.0f2e4d6c8b0a1f3e5d7c9b1a3f5e7d9c"  # noqa: S105 - fake
TOKEN_PATH = "/oauth/v2/token"  # noqa: S105 - a path, not a secret
MODULES = ("Leads", "Contacts")
WATCH_OPERATIONS = ("create", "edit", "delete", "all")
MAX_IDS = 100
MAX_TOKEN_LENGTH = 50
_CRM_PATH = re.compile(r"/crm/(v[0-9]{1,2}(?:\.[0-9])?)/(.+)")
_MASKED_PARAMS = frozenset({"client_secret", "refresh_token", "code"})
_ALWAYS_FIELDS = ("id",)

#: The records of the reference samples 9.9, as Zoho's API returns them.
DEFAULT_RECORDS: dict[str, dict[str, JSONDict]] = {
    "Leads": {
        "5725767000003000064": {
            "id": "5725767000003000064",
            "First_Name": "Maria",
            "Last_Name": "Gonzalez",
            "Full_Name": "Maria Gonzalez",
            "Email": "maria.gonzalez@acme-logistics.example",
            "Phone": "+1 (512) 555-0142",
            "Mobile": "+1 512 555 0199",
            "Designation": "Director of Operations",
            "Company": "Acme Logistics",
            "Street": "1200 Congress Ave, Suite 400",
            "City": "Austin",
            "State": "TX",
            "Zip_Code": "78701",
            "Country": "United States",
            "Description": "Requested a callback about fleet pricing.",
            "Lead_Source": "Web Download",
            "Lead_Status": "Not Contacted",
            "Tag": [
                {"name": "inbound", "id": "5725767000000411001", "color_code": "#57B1FD"},
                {"name": "pricing", "id": "5725767000000411003", "color_code": "#879BFC"},
            ],
            "Owner": {"name": "Patricia Boyle", "id": "5725767000000235011", "email": "p.boyle@zylker.example"},
            "Created_Time": "2026-01-01T00:00:00+00:00",
        },
        "5725767000003000065": {
            "id": "5725767000003000065",
            "First_Name": "James",
            "Last_Name": "Okafor",
            "Full_Name": "James Okafor",
            "Email": "james.okafor@northwind-solar.example",
            "Phone": "(415) 555-0117",
            "Mobile": None,
            "Designation": "Facilities Manager",
            "Company": "Northwind Solar",
            "Street": None,
            "City": "San Francisco",
            "State": "CA",
            "Zip_Code": "94105",
            "Country": "United States",
            "Description": "Asked for a quote for 40 rooftop panels.",
            "Lead_Source": "Chat",
            "Lead_Status": "Contacted",
            "Tag": [],
            "Created_Time": "2026-01-01T00:00:01+00:00",
        },
    },
    "Contacts": {
        "5725767000003001001": {
            "id": "5725767000003001001",
            "First_Name": "Priya",
            "Last_Name": "Raman",
            "Full_Name": "Priya Raman",
            "Email": "priya.raman@brightpath-analytics.example",
            "Phone": "+44 20 7946 0321",
            "Mobile": None,
            "Title": "Head of Customer Success",
            "Account_Name": {"name": "Brightpath Analytics", "id": "5725767000002000001"},
            "Mailing_Street": None,
            "Mailing_City": "London",
            "Mailing_State": None,
            "Mailing_Zip": None,
            "Mailing_Country": "United Kingdom",
            "Description": None,
            "Lead_Source": "Partner",
            "Tag": [{"name": "partner", "id": "5725767000000411005"}],
            "Created_Time": "2026-01-01T00:00:02+00:00",
        }
    },
}


def _error(code: str, message: str, **details: Any) -> JSONDict:
    """Zoho's error envelope."""
    return {"code": code, "details": details, "message": message, "status": "error"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


@dataclass(frozen=True, slots=True)
class ZohoFault(Fault):
    """A fault that may be limited to requests whose path contains ``match`` ("" = any request)."""

    match: str = ""

    extra_options: ClassVar[frozenset[str]] = frozenset({"match"})

    @classmethod
    def _extra_fields(cls, options: Mapping[str, Any]) -> JSONDict:
        match = options.get("match", "")
        if not isinstance(match, str):
            raise ValueError("fault 'match' must be text (a part of the request path)")
        return {"match": match}

    def _extra_view(self) -> JSONDict:
        return {"match": self.match}

    def matches(self, path: str) -> bool:
        """Whether the fault applies to ``path``."""
        return self.match in path


class ZohoApiStandIn(StandInServer[ZohoFault]):
    """In-process Zoho accounts + CRM API (records, watches) on 127.0.0.1, with fault injection. Thread-safe."""

    fault_type = ZohoFault
    label = "Zoho stand-in"
    thread_name = "zoho-standin"
    server_version = "ZohoApiStandIn/1.0"
    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

    def __init__(
        self,
        client_id: str = STANDIN_CLIENT_ID,
        client_secret: str = STANDIN_CLIENT_SECRET,
        refresh_token: str = STANDIN_REFRESH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        with_defaults: bool = True,
        token_lifetime: int = 3600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``with_defaults`` loads DEFAULT_RECORDS (and again on reset); ``clock`` dates watches."""
        super().__init__(host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.with_defaults = with_defaults
        #: ``expires_in`` of the access tokens issued from now on (seconds)
        self.token_lifetime = token_lifetime
        self.clock = clock
        self._records: dict[str, dict[str, JSONDict]] = {module: {} for module in MODULES}
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._watches: dict[tuple[str, str], JSONDict] = {}
        self._notes: list[JSONDict] = []
        self.reset()

    # ── test API ───────────────────────────────────────────────────────

    def add_record(self, module: str, record: Mapping[str, Any]) -> JSONDict:
        """Store (or replace) a record of Leads or Contacts (``id`` required, digits); returns a copy."""
        if module not in MODULES:
            raise ValueError(f"module must be one of {', '.join(MODULES)}")
        record_id = str(record.get("id") or "").strip()
        if not record_id.isascii() or not record_id.isdigit():
            raise ValueError("a Zoho record id is a string of digits")
        stored = {**copy.deepcopy(dict(record)), "id": record_id}
        with self._lock:
            self._records[module][record_id] = stored
        return copy.deepcopy(stored)

    def delete_record(self, module: str, record_id: str) -> bool:
        """Remove a record (it then reads as missing); False when it was not there."""
        with self._lock:
            return self._records.get(module, {}).pop(str(record_id), None) is not None

    @property
    def records(self) -> dict[str, dict[str, JSONDict]]:
        """Stored records (copies): module -> id -> record."""
        with self._lock:
            return copy.deepcopy(self._records)

    @property
    def watches(self) -> list[JSONDict]:
        """Active watches (copies), one per channel and module, ``token`` included."""
        with self._lock:
            self._drop_expired_watches()
            return copy.deepcopy(list(self._watches.values()))

    @property
    def token_grants(self) -> int:
        """How many token requests were received."""
        return sum(1 for item in self.requests if item["path"] == TOKEN_PATH)

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid (the next API call gets 401 INVALID_TOKEN)."""
        with self._lock:
            self._tokens.clear()

    @property
    def notes(self) -> list[JSONDict]:
        """Notes written through the API (copies), with ``Parent_Id`` {module, id}."""
        with self._lock:
            return copy.deepcopy(self._notes)

    def reset(self) -> None:
        """Forget requests, faults, tokens, watches and notes; records back to the samples (or none)."""
        super().reset()
        with self._lock:
            self._notes = []
            self._tokens.clear()
            self._watches.clear()
            self._records = {module: {} for module in MODULES}
        if self.with_defaults:
            for module, records in DEFAULT_RECORDS.items():
                for record in records.values():
                    self.add_record(module, record)

    def callback_body(
        self, watch: Mapping[str, Any], record_ids: Sequence[str], operation: str = "insert", *, values: bool = True
    ) -> JSONDict:
        """The body Zoho posts to a watch's notify_url for these records (9.9 a)."""
        module = str(watch["resource_name"])
        stored = self.records.get(module, {})
        body: JSONDict = {"server_time": int(time.time() * 1000)}
        if values and watch.get("return_affected_field_values"):
            body["affected_values"] = [
                {"record_id": rid, "values": {k: v for k, v in stored[rid].items() if k != "id" and v is not None}}
                for rid in record_ids
                if rid in stored
            ]
        query = parse_qs(str(watch["notify_url"]).partition("?")[2])
        body.update(
            {
                "query_params": {key: value[0] for key, value in query.items()},
                "module": module,
                "resource_uri": f"{self.base_url}/crm/v8/{module}",
                "ids": list(record_ids),
                "affected_fields": [],
                "operation": operation,
                "channel_id": str(watch["channel_id"]),
                "token": watch.get("token"),
            }
        )
        return body

    def notify(
        self, module: str, record_ids: Sequence[str], operation: str = "insert", *, values: bool = True
    ) -> list[tuple[str, int | None]]:
        """POST the callback of these records to every active watch of ``module`` and ``operation``.

        Returns (notify_url, HTTP status or None when unreachable) per callback sent.
        """
        event = {"insert": "create", "update": "edit"}.get(operation, operation)
        sent: list[tuple[str, int | None]] = []
        for watch in self.watches:
            wanted = {f"{module}.{event}", f"{module}.all"}
            if watch["resource_name"] != module or not wanted & set(watch["events"]):
                continue
            body = json.dumps(self.callback_body(watch, record_ids, operation, values=values)).encode()
            request = urllib.request.Request(  # noqa: S310 - the URL a test or the local stack registered
                str(watch["notify_url"]), data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    sent.append((str(watch["notify_url"]), int(response.status)))
            except urllib.error.HTTPError as error:
                sent.append((str(watch["notify_url"]), int(error.code)))
            except OSError:
                sent.append((str(watch["notify_url"]), None))
        return sent

    # ── request handling ───────────────────────────────────────────────

    def _serve_api(self, request: Request) -> Reply:
        method, headers, body = request.method, request.headers, request.body
        path = request.path.rstrip("/") or "/"
        query = parse_qs(request.query, keep_blank_values=True)
        fault = self._take_fault(path)
        authorized: bool | None = None
        parsed: Any = None
        if path == TOKEN_PATH:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
            params = {**query, **form}
            reply = self._apply_fault(fault, lambda: self._token(method, params))
            recorded_query = {k: ["***"] if k in _MASKED_PARAMS else v for k, v in query.items()}
            parsed = {k: "***" if k in _MASKED_PARAMS else v[0] for k, v in form.items()}
        else:
            recorded_query = query
            authorized = self._authorized(headers)
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            match = _CRM_PATH.fullmatch(path)
            if match is None:
                reply = self._apply_fault(fault, lambda: self._error_reply(404, "INVALID_URL_PATTERN"))
            else:
                version, resource = match.groups()
                payload = parsed
                reply = self._apply_fault(
                    fault, lambda: self._crm(method, version, resource, query, payload, body, authorized)
                )
            if isinstance(parsed, dict) and isinstance(parsed.get("watch"), list):
                parsed = copy.deepcopy(parsed)
                for item in parsed["watch"]:
                    if isinstance(item, dict) and "token" in item:
                        item["token"] = "***"  # noqa: S105 - masking, not a secret
        masked = {k: ("Zoho-oauthtoken ***" if k == "authorization" else v) for k, v in headers.items()}
        self._record(
            {
                "method": method,
                "path": path,
                "query": recorded_query,
                "headers": masked,
                "authorized": authorized,
                "json": parsed,
                **self._outcome(reply, fault),
                "received": _iso(datetime.now(UTC)),
            }
        )
        return reply

    def _error_reply(self, status: int, message: str) -> Reply:
        """Zoho's error envelope; ``message`` is the code."""
        texts = {
            "INVALID_URL_PATTERN": "Please check if the URL trying to access is a correct one",
            "TOO_MANY_REQUESTS": "You have reached the API limit, try again later",
        }
        return self._json(status, _error(message, texts.get(message, message)))

    def _fault_error(self, status: int) -> Reply:
        """Zoho's answer to a "status" fault without a body."""
        if status == 429:
            return self._error_reply(429, "TOO_MANY_REQUESTS")
        if status == 401:
            return self._json(401, _error("INVALID_TOKEN", "invalid oauth token"))
        return self._json(status, _error("INTERNAL_ERROR", "Internal Server Error"))

    # ── accounts ───────────────────────────────────────────────────────

    def _token(self, method: str, params: Mapping[str, list[str]]) -> Reply:
        if method != "POST":
            return self._json(405, {"error": "invalid_request"})
        grant = _first(params, "grant_type")
        if grant != "refresh_token":
            return self._json(200, {"error": "unsupported_grant_type"})
        if _first(params, "client_id") != self.client_id or _first(params, "client_secret") != self.client_secret:
            return self._json(200, {"error": "invalid_client"})
        if _first(params, "refresh_token") != self.refresh_token:
            return self._json(200, {"error": "invalid_code"})
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return self._json(
            200,
            {
                "access_token": token,
                "scope": "ZohoCRM.modules.leads.READ ZohoCRM.modules.contacts.READ ZohoCRM.notifications.ALL",
                "api_domain": self.base_url,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
            },
        )

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        if scheme != "Zoho-oauthtoken":
            return False
        with self._lock:
            expiry = self._tokens.get(token.strip())
        return expiry is not None and time.monotonic() < expiry

    # ── CRM API ────────────────────────────────────────────────────────

    def _crm(
        self,
        method: str,
        version: str,
        resource: str,
        query: Mapping[str, list[str]],
        parsed: Any,
        body: bytes,
        authorized: bool,
    ) -> Reply:
        if not authorized:
            return self._json(401, _error("INVALID_TOKEN", "invalid oauth token"))
        parts = resource.split("/")
        if parts == ["actions", "watch"]:
            return self._watch(method, version, query, parsed, body)
        module = parts[0]
        if module in MODULES and len(parts) == 3 and parts[2] == "Notes":
            return self._record_notes(method, module, parts[1], parsed)
        if module not in MODULES or len(parts) > 2:
            return self._json(400, _error("INVALID_MODULE", "the module name given seems to be invalid"))
        if method != "GET":
            return self._json(405, _error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))
        fields = [name for value in query.get("fields", []) for name in value.split(",") if name]
        if len(parts) == 2:
            return self._read(module, [parts[1]], fields)
        ids = [name for value in query.get("ids", []) for name in value.split(",") if name]
        if not ids and not fields:
            return self._json(400, _error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing"))
        if len(ids) > MAX_IDS:
            return self._json(400, _error("LIMIT_EXCEEDED", f"at most {MAX_IDS} ids", limit=MAX_IDS))
        if not ids:
            with self._lock:
                ids = list(self._records[module])
        return self._read(module, ids, fields)

    def _record_notes(self, method: str, module: str, record_id: str, parsed: Any) -> Reply:
        with self._lock:
            exists = record_id in self._records[module]
            notes = [copy.deepcopy(n) for n in self._notes if n["Parent_Id"] == {"module": module, "id": record_id}]
        if not exists:
            error = _error("INVALID_DATA", "the related id given seems to be invalid", api_name="Parent_Id")
            return self._json(400, {"data": [{**error, "status": "error"}]})
        if method == "GET":
            return self._json(200, {"data": notes, "info": {"count": len(notes)}}) if notes else Reply(204)
        if method != "POST":
            return self._json(405, _error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))
        items = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
            return self._json(400, _error("INVALID_DATA", "invalid data", expected_data_type="jsonarray"))
        answers = []
        with self._lock:
            for item in items:
                note_id = str(5725767000004000000 + len(self._notes) + 1)
                self._notes.append(
                    {
                        "id": note_id,
                        "Note_Title": item.get("Note_Title"),
                        "Note_Content": item.get("Note_Content"),
                        "Parent_Id": {"module": module, "id": record_id},
                        "Created_Time": _iso(self.clock()),
                    }
                )
                details = {"id": note_id, "Created_Time": _iso(self.clock())}
                answers.append({"code": "SUCCESS", "details": details, "message": "record added", "status": "success"})
        return self._json(201, {"data": answers})

    def _read(self, module: str, ids: Iterable[str], fields: Sequence[str]) -> Reply:
        with self._lock:
            found = [
                copy.deepcopy(self._records[module][rid]) for rid in dict.fromkeys(ids) if rid in self._records[module]
            ]
        if not found:
            return Reply(204)
        if fields:
            wanted = [*_ALWAYS_FIELDS, *fields]
            found = [{name: record.get(name) for name in dict.fromkeys(wanted)} for record in found]
        info = {"per_page": 200, "count": len(found), "page": 1, "more_records": False}
        return self._json(200, {"data": found, "info": info})

    # ── Notification API ───────────────────────────────────────────────

    def _drop_expired_watches(self) -> None:
        """Forget watches past their expiry (caller holds the lock)."""
        now = self.clock()
        for key in [key for key, watch in self._watches.items() if watch["_expires"] <= now]:
            del self._watches[key]

    def _watch(self, method: str, version: str, query: Mapping[str, list[str]], parsed: Any, body: bytes) -> Reply:
        if method == "GET":
            channel, module = _first(query, "channel_id"), _first(query, "module")
            with self._lock:
                self._drop_expired_watches()
                found = [
                    _watch_view(watch)
                    for (watch_channel, watch_module), watch in self._watches.items()
                    if (channel is None or watch_channel == channel) and (module is None or watch_module == module)
                ]
            if not found:
                return Reply(204)
            info = {"per_page": 200, "count": len(found), "page": 1, "more_records": False}
            return self._json(200, {"watch": found, "info": info})
        if method == "DELETE":
            channels = [c for value in query.get("channel_ids", []) for c in value.split(",") if c]
            with self._lock:
                for key in [key for key in self._watches if key[0] in channels]:
                    del self._watches[key]
            items = [
                {
                    "code": "SUCCESS",
                    "details": {"channel_id": channel},
                    "message": "Successfully un-subscribed from actions-watch",
                    "status": "success",
                }
                for channel in channels
            ]
            return self._json(200, {"watch": items})
        if method not in ("POST", "PATCH", "PUT"):
            return self._json(405, _error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"))
        if not isinstance(parsed, dict) or not isinstance(parsed.get("watch"), list) or not parsed["watch"]:
            detail = "the body is not JSON" if body and parsed is None else "watch must be a non-empty array"
            return self._json(400, _error("INVALID_DATA", detail, expected_data_type="jsonarray", api_name="watch"))
        results = [self._subscribe(method, version, item) for item in parsed["watch"]]
        status = 200 if all(item["status"] == "success" for item in results) else 400
        return self._json(status, {"watch": results})

    def _subscribe(self, method: str, version: str, item: Any) -> JSONDict:
        """Enable (POST) or update (PATCH/PUT) one watch entry; Zoho's per-entry answer."""
        if not isinstance(item, dict):
            return _error("INVALID_DATA", "invalid data", expected_data_type="jsonobject")
        for name in ("channel_id", "events", "notify_url"):
            if item.get(name) in (None, "", []):
                return _error("MANDATORY_NOT_FOUND", "required field not found", api_name=name)
        channel = str(item["channel_id"]).strip()
        if not channel.isdigit():
            return _error("INVALID_DATA", "invalid data", api_name="channel_id", expected_data_type="long")
        token = item.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH):
            return _error("INVALID_DATA", "the length of the token exceeds 50 characters", api_name="token")
        events = item["events"]
        parsed_events: list[tuple[str, str]] = []
        for event in events if isinstance(events, list) else [events]:
            module, _, operation = str(event).partition(".")
            if module not in MODULES or operation not in WATCH_OPERATIONS:
                return _error("INVALID_DATA", "invalid event", api_name="events", value=str(event))
            parsed_events.append((module, operation))
        now = self.clock()
        expiry, defaulted = now + timedelta(hours=1), True
        if item.get("channel_expiry") is not None:
            try:
                asked = datetime.fromisoformat(str(item["channel_expiry"]))
            except ValueError:
                return _error("INVALID_DATA", "invalid data", api_name="channel_expiry", expected_data_type="datetime")
            if asked.tzinfo is None:
                return _error("INVALID_DATA", "the time zone is missing", api_name="channel_expiry")
            if asked <= now:
                return _error("INVALID_DATA", "the expiry time is in the past", api_name="channel_expiry")
            if asked <= now + timedelta(days=7):
                expiry, defaulted = asked, False
        modules = list(dict.fromkeys(module for module, _ in parsed_events))
        with self._lock:
            self._drop_expired_watches()
            if method != "POST":
                missing = [module for module in modules if (channel, module) not in self._watches]
                if missing:
                    return _error(
                        "RESOURCE_NOT_FOUND", "the channel does not watch this module", resource_name=missing[0]
                    )
            details: list[JSONDict] = []
            for module in modules:
                operations = [f"{module}.{op}" for m, op in parsed_events if m == module]
                previous = self._watches.get((channel, module)) if method == "PATCH" else None
                watch: JSONDict = {
                    "channel_id": channel,
                    "resource_name": module,
                    "resource_id": "5725767000000002175" if module == "Leads" else "5725767000000002179",
                    "resource_uri": f"{self.base_url}/crm/{version}/{module}",
                    "events": list(dict.fromkeys([*(previous or {}).get("events", []), *operations])),
                    "notify_url": str(item["notify_url"]),
                    "token": token if token is not None else (previous or {}).get("token"),
                    "return_affected_field_values": bool(
                        item.get("return_affected_field_values", (previous or {}).get("return_affected_field_values"))
                    ),
                    "notify_on_related_action": bool(item.get("notify_on_related_action", False)),
                    "channel_expiry": _iso(expiry),
                    "expiry_defaulted": defaulted,
                    "_expires": expiry,
                }
                self._watches[(channel, module)] = watch
                details.append(
                    {
                        "channel_expiry": watch["channel_expiry"],
                        "resource_uri": watch["resource_uri"],
                        "resource_id": watch["resource_id"],
                        "resource_name": module,
                        "channel_id": channel,
                    }
                )
        message = (
            "Successfully subscribed for actions-watch of the given module"
            if method == "POST"
            else "Successfully updated the subscribe details"
        )
        return {"code": "SUCCESS", "details": {"events": details}, "message": message, "status": "success"}

    # ── admin API ──────────────────────────────────────────────────────

    def _admin_config(self) -> JSONDict:
        return {
            "base_url": self.base_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:
        route = (method, sub.rstrip("/"))
        if route == ("GET", "/records"):
            return self._admin_list(self.records)
        if route == ("GET", "/notes"):
            return self._admin_list(self.notes)
        if route == ("GET", "/watches"):
            return self._admin_list([{k: v for k, v in w.items() if k != "token"} for w in self._public_watches()])
        if route == ("POST", "/expire-tokens"):
            self.expire_tokens()
            return self._json(200, {"ok": True})
        if route == ("POST", "/records"):
            data = self._admin_json(body)
            record = data.get("record")
            if not isinstance(record, dict):
                raise ValueError('expected {"module": "Leads", "record": {"id": "...", ...}}')
            return self._json(201, self.add_record(str(data.get("module")), record))
        if route == ("POST", "/notify"):
            data = self._admin_json(body)
            ids = data.get("ids")
            if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
                raise ValueError('expected {"module": "Leads", "ids": ["..."], "operation": "insert"}')
            sent = self.notify(str(data.get("module")), ids, str(data.get("operation") or "insert"))
            return self._json(200, {"sent": [{"notify_url": url, "status": status} for url, status in sent]})
        if method == "DELETE" and (found := re.fullmatch(r"/records/(Leads|Contacts)/(\d+)", route[1])):
            if self.delete_record(found[1], found[2]):
                return self._json(200, {"ok": True})
            return self._json(404, {"error": f"no record {found[2]} in {found[1]}"})
        return None

    def _public_watches(self) -> list[JSONDict]:
        return [_watch_view(watch) for watch in self.watches]


def _watch_view(watch: Mapping[str, Any]) -> JSONDict:
    """A watch as GET actions/watch shows it (internal fields left out)."""
    return {key: copy.deepcopy(value) for key, value in watch.items() if not key.startswith("_")}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.zoho_api", "Serve a local stand-in of Zoho's accounts and CRM APIs.", 8767)
    parser.add_argument("--empty", action="store_true", help="start without the sample records")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="expires_in of issued tokens (seconds)")
    args = parser.parse_args(argv)
    standin = ZohoApiStandIn(
        host=args.host, port=args.port, with_defaults=not args.empty, token_lifetime=args.token_lifetime
    )

    def banner() -> list[str]:
        return [
            f"Zoho API stand-in: {standin.base_url}  (accounts server and api_domain)",
            f"  client_id:     {standin.client_id}",
            f"  client_secret: {standin.client_secret}",
            f"  refresh_token: {standin.refresh_token}",
            f"  records:       {', '.join(f'{m}/{i}' for m, r in standin.records.items() for i in r) or '(none)'}",
            f"  admin API:     {standin.admin_url}/ (requests, faults, records, watches, notify, reset, config)",
        ]

    return serve_main(standin, banner)


if __name__ == "__main__":
    raise SystemExit(main())
