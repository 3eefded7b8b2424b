"""Local stand-in for the part of HubSpot's CRM API that lead-caller reads (contacts).

Serves, with ``Authorization: Bearer <token>`` checked (401 otherwise):

* ``POST /crm/v3/objects/contacts/batch/read``: 200 when every id is found, 207
  (multi-status) with an ``OBJECT_NOT_FOUND`` error listing the missing ids;
  a merged contact is also found by the ids in its ``hs_merged_object_ids``;
* ``GET /crm/v3/objects/contacts/{id}?properties=a,b``: 200, or 404 when missing.

Requested properties without a value come back as ``null``, like HubSpot.
Tests queue faults ("status" with headers/body, "delay", "drop") for the next
API requests and read the recorded requests, through the Python API or the
HTTP admin API under ``/__standin__/`` (``GET requests``, ``GET|POST faults``,
``GET|POST contacts``, ``DELETE contacts/{id}``, ``POST reset``, ``GET config``).

Run standalone with ``python -m local.hubspot_api --port 8766``.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = ["ADMIN_PREFIX", "DEFAULT_CONTACTS", "STANDIN_TOKEN", "HubSpotApiStandIn", "StandInFault", "main"]

JSONDict = dict[str, Any]

ADMIN_PREFIX = "/__standin__"
CONTACTS_PATH = "/crm/v3/objects/contacts"
STANDIN_TOKEN = "pat-na1-00000000-0000-4000-8000-000000000000"  # noqa: S105 - a fake private-app token
PORTAL_ID = 62515
MAX_BATCH = 100
_ALWAYS = ("createdate", "hs_object_id", "lastmodifieddate")
_DEFAULT_PROPERTIES = ("email", "firstname", "lastname")
_MAX_BODY = 10 * 1024 * 1024
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


@dataclass(frozen=True, slots=True)
class StandInFault:
    """One queued fault, applied to the next API request (admin requests are never faulted)."""

    kind: str
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    seconds: float = 0.0

    @classmethod
    def build(cls, kind: str, options: Mapping[str, Any]) -> StandInFault:
        """Validate ``kind`` ("status", "delay", "drop") and its options; ValueError when wrong."""
        allowed = {"status": {"status", "headers", "body"}, "delay": {"seconds"}, "drop": set()}
        if kind not in allowed:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(allowed)}")
        unknown = set(options) - allowed[kind]
        if unknown:
            raise ValueError(f"unknown option(s) for fault {kind!r}: {', '.join(sorted(unknown))}")
        if kind == "status":
            status = options.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise ValueError("fault 'status' needs status=<int 100..599>")
            headers = options.get("headers") or {}
            if not isinstance(headers, Mapping):
                raise ValueError("fault 'status' headers must be a mapping")
            pairs = tuple((str(k), str(v)) for k, v in headers.items())
            return cls(kind, status=status, headers=pairs, body=copy.deepcopy(options.get("body")))
        if kind == "delay":
            seconds = options.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("fault 'delay' needs seconds=<number >= 0>")
            return cls(kind, seconds=float(seconds))
        return cls(kind)

    def to_dict(self) -> JSONDict:
        """JSON view of the fault."""
        if self.kind == "status":
            return {"kind": self.kind, "status": self.status, "headers": dict(self.headers), "body": self.body}
        if self.kind == "delay":
            return {"kind": self.kind, "seconds": self.seconds}
        return {"kind": self.kind}

    def reply(self) -> _Reply:
        """The answer of a "status" fault: HubSpot's error body for that status unless one was given."""
        if self.body is None:
            if self.status == 429:
                body: Any = {
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": str(uuid.uuid4()),
                    "policyName": "TEN_SECONDLY_ROLLING",
                }
            elif self.status in (401, 403):
                body = _error_body("The access token does not have the required scopes.", "MISSING_SCOPES")
            else:
                body = _error_body(f"HTTP {self.status} from the stand-in", "INTERNAL_ERROR")
            reply = _Reply.json(self.status, body)
        elif isinstance(self.body, str):
            reply = _Reply(self.status, self.body.encode(), {"Content-Type": "text/html; charset=utf-8"})
        else:
            reply = _Reply.json(self.status, self.body)
        reply.headers.update(dict(self.headers))
        return reply


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any) -> _Reply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json;charset=utf-8"})


class HubSpotApiStandIn:
    """In-process HubSpot CRM contacts API on 127.0.0.1, with fault injection. Thread-safe."""

    def __init__(
        self,
        access_token: str = STANDIN_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        with_defaults: bool = True,
    ) -> None:
        """``with_defaults`` loads DEFAULT_CONTACTS (and again on reset)."""
        self.access_token = access_token
        self.host = host
        self.with_defaults = with_defaults
        self._requested_port = port
        self._lock = threading.Lock()
        self._contacts: dict[str, JSONDict] = {}
        self._faults: deque[StandInFault] = deque()
        self._requests: list[JSONDict] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # ── lifecycle ──────────────────────────────────────────────────────

    def start(self) -> Self:
        """Serve on a daemon thread; returns self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("stand-in already started")
            server = _Server((self.host, self._requested_port), self)
            self._stopping.clear()
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="hubspot-standin", daemon=True
            )
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); wakes requests sleeping in a delay fault."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Start (if needed) and return self."""
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (only while started)."""
        server = self._server
        if server is None:
            raise RuntimeError("stand-in not started")
        return int(server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the API base the client appends ``/crm/v3/...`` to."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:PORT/__standin__``."""
        return self.base_url + ADMIN_PREFIX

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

    def enqueue_fault(self, kind: str, **options: Any) -> StandInFault:
        """Queue a fault for the next API request, FIFO: ("status", status=429, headers={...}), "delay", "drop"."""
        fault = StandInFault.build(kind, options)
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def pending_faults(self) -> list[StandInFault]:
        """Faults not yet consumed, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[JSONDict]:
        """Recorded API requests (copies, Authorization masked), oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def reset(self) -> None:
        """Forget requests and faults; contacts back to the defaults (or none)."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._contacts.clear()
        if self.with_defaults:
            for object_id, properties in DEFAULT_CONTACTS.items():
                self.add_contact(object_id, properties)

    # ── request handling ───────────────────────────────────────────────

    def _dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        split = urlsplit(raw_path)
        if split.path == ADMIN_PREFIX or split.path.startswith(ADMIN_PREFIX + "/"):
            return self._admin(method, split.path[len(ADMIN_PREFIX) :].rstrip("/"), body)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        parsed: Any = None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        authorized = self._authorized(headers)
        if fault is not None and fault.kind == "drop":
            reply = _Reply(0, drop=True)
        elif fault is not None and fault.kind == "status":
            reply = fault.reply()
        else:
            reply = self._api(method, split.path, parse_qs(split.query), parsed, body, authorized)
            reply.delay = fault.seconds if fault is not None else 0.0
        masked = {k: ("Bearer ***" if k == "authorization" else v) for k, v in headers.items()}
        record: JSONDict = {
            "method": method,
            "path": split.path,
            "query": split.query,
            "headers": masked,
            "authorized": authorized,
            "json": parsed,
            "status": None if reply.drop else reply.status,
            "fault": None if fault is None else fault.kind,
            "received": _now_iso(),
        }
        with self._lock:
            self._requests.append(record)
        return reply

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.access_token

    def _api(
        self, method: str, path: str, query: Mapping[str, list[str]], parsed: Any, body: bytes, authorized: bool
    ) -> _Reply:
        batch = path.rstrip("/") == CONTACTS_PATH + "/batch/read"
        single = path.startswith(CONTACTS_PATH + "/") and not batch and path.count("/") == 5
        if not batch and not single:
            return _Reply.json(404, _error_body(f"Unable to route {method} {path}", "OBJECT_NOT_FOUND"))
        if not authorized:
            message = (
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            )
            return _Reply.json(401, _error_body(message, "INVALID_AUTHENTICATION"))
        if batch and method == "POST":
            return self._batch_read(parsed, body)
        if single and method == "GET":
            names = [name for value in query.get("properties", []) for name in value.split(",") if name]
            return self._get_one(path.rsplit("/", 1)[1], names)
        return _Reply.json(405, _error_body(f"Method {method} not allowed", "VALIDATION_ERROR"))

    def _find(self, object_id: str) -> tuple[str, JSONDict] | None:
        """The contact with this id, or the one it was merged into (caller holds the lock)."""
        if object_id in self._contacts:
            return object_id, self._contacts[object_id]
        for key, stored in self._contacts.items():
            merged = str(stored.get("hs_merged_object_ids") or "").split(";")
            if object_id in (item.strip() for item in merged):
                return key, stored
        return None

    def _get_one(self, object_id: str, names: Sequence[str]) -> _Reply:
        with self._lock:
            found = self._find(object_id)
            view = None if found is None else _contact_view(found[0], found[1], names or _DEFAULT_PROPERTIES)
        if view is None:
            return _Reply.json(404, _error_body("resource not found", "OBJECT_NOT_FOUND"))
        return _Reply.json(200, view)

    def _batch_read(self, parsed: Any, body: bytes) -> _Reply:
        if not isinstance(parsed, dict) or not isinstance(parsed.get("inputs"), list):
            detail = "the body is not JSON" if body and parsed is None else "inputs must be a list"
            return _Reply.json(400, _error_body(f"Invalid input JSON: {detail}", "VALIDATION_ERROR"))
        inputs = parsed["inputs"]
        if len(inputs) > MAX_BATCH:
            message = f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}"
            return _Reply.json(400, _error_body(message, "VALIDATION_ERROR"))
        ids = [str(item.get("id")) for item in inputs if isinstance(item, dict) and item.get("id") is not None]
        if len(ids) != len(inputs):
            return _Reply.json(400, _error_body("Every input needs an id", "VALIDATION_ERROR"))
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
            return _Reply.json(200, payload)
        error = {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": _NOT_FOUND_MESSAGE,
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }
        return _Reply.json(207, {**payload, "numErrors": 1, "errors": [error]})

    def _admin(self, method: str, sub: str, body: bytes) -> _Reply:
        """The ``/__standin__/`` admin API."""
        route = (method, sub)
        if route == ("GET", "/requests"):
            items = self.requests
            return _Reply.json(200, {"count": len(items), "data": items})
        if route == ("GET", "/faults"):
            faults = [fault.to_dict() for fault in self.pending_faults]
            return _Reply.json(200, {"count": len(faults), "data": faults})
        if route == ("GET", "/contacts"):
            contacts = self.contacts
            return _Reply.json(200, {"count": len(contacts), "data": contacts})
        if route == ("GET", "/config"):
            return _Reply.json(200, {"base_url": self.base_url, "access_token": self.access_token})
        if route == ("POST", "/reset"):
            self.reset()
            return _Reply.json(200, {"ok": True})
        if method == "DELETE" and sub.startswith("/contacts/"):
            object_id = sub.removeprefix("/contacts/")
            if self.delete_contact(object_id):
                return _Reply.json(200, {"ok": True})
            return _Reply.json(404, {"error": f"no contact {object_id}"})
        if route in (("POST", "/faults"), ("POST", "/contacts")):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return _Reply.json(400, {"error": "body must be JSON"})
            if not isinstance(data, dict):
                return _Reply.json(400, {"error": "body must be a JSON object"})
            try:
                if sub == "/faults":
                    fault = self.enqueue_fault(str(data.pop("kind", None)), **data)
                    return _Reply.json(201, {"ok": True, "fault": fault.to_dict(), "pending": len(self.pending_faults)})
                properties = data.get("properties")
                if not isinstance(properties, dict):
                    return _Reply.json(400, {"error": 'expected {"id": "...", "properties": {...}}'})
                return _Reply.json(201, self.add_contact(str(data.get("id")), properties))
            except ValueError as error:
                return _Reply.json(400, {"error": str(error)})
        return _Reply.json(404, {"error": f"unknown admin endpoint {method} {ADMIN_PREFIX}{sub}"})


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


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its stand-in and keeps quiet about dropped sockets."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: HubSpotApiStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else."""
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 adapter around ``HubSpotApiStandIn._dispatch``."""

    protocol_version = "HTTP/1.1"
    server_version = "HubSpotApiStandIn/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent."""

    def do_GET(self) -> None:
        """Serve GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve POST."""
        self._serve("POST")

    def do_DELETE(self) -> None:
        """Serve DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        standin = cast(_Server, self.server).standin
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > _MAX_BODY:
            reply = _Reply.json(400, _error_body("invalid Content-Length", "VALIDATION_ERROR"))
            self.close_connection = True
        else:
            body = self.rfile.read(int(length))
            try:
                reply = standin._dispatch(method, self.path, headers, body)
            except Exception as error:  # a stand-in bug: answer 500, never hang the client
                reply = _Reply.json(500, _error_body(f"stand-in internal error: {error!r}", "INTERNAL_ERROR"))
        if reply.drop:
            self.close_connection = True
            return
        if reply.delay > 0:
            standin._stopping.wait(reply.delay)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. timed out during a delay fault)
            self.close_connection = True


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m local.hubspot_api", description="Serve a local stand-in of HubSpot's CRM contacts API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port (default 8766)")
    parser.add_argument("--access-token", default=STANDIN_TOKEN)
    parser.add_argument("--empty", action="store_true", help="start without the sample contacts")
    args = parser.parse_args(argv)
    standin = HubSpotApiStandIn(args.access_token, args.host, args.port, with_defaults=not args.empty)
    done = threading.Event()

    def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    standin.start()
    print(f"HubSpot API stand-in: {standin.base_url}  (HUBSPOT_API_BASE_URL)", flush=True)
    print(f"  access token: {standin.access_token}", flush=True)
    print(f"  contacts:     {', '.join(standin.contacts) or '(none)'}", flush=True)
    print(f"  admin API:    {standin.admin_url}/ (requests, faults, contacts, reset, config)", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
