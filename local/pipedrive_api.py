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

The sample data follows the reference samples 9.8: person 8 (Maria Gonzalez,
organisation 1 Acme Logistics) and person 11 (organisation 2 Lead Org).

Run standalone with ``python -m local.pipedrive_api --port 8766``.
"""

import argparse
import copy
import json
import re
import signal
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_TOKEN",
    "Fault",
    "PipedriveApiStandIn",
    "main",
    "sample_organizations",
    "sample_persons",
]

JSONDict = dict[str, Any]

ADMIN_PREFIX = "/__standin__"
DEFAULT_TOKEN = "pd-standin-0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # noqa: S105 - a fake credential
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
FAULT_KINDS = ("status", "delay", "drop")
_MAX_BODY = 1024 * 1024
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
class Fault:
    """One queued fault, applied to the next API request whose path contains ``match``."""

    kind: str
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    seconds: float = 0.0
    match: str = ""

    @classmethod
    def build(cls, kind: str, options: Mapping[str, Any]) -> Self:
        """Validate ``kind`` and its options; raise ValueError when they are wrong."""
        allowed = {"status": {"status", "headers", "body", "match"}, "delay": {"seconds", "match"}, "drop": {"match"}}
        if kind not in allowed:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        unknown = set(options) - allowed[kind]
        if unknown:
            raise ValueError(f"unknown option(s) for fault {kind!r}: {', '.join(sorted(unknown))}")
        match = options.get("match", "")
        if not isinstance(match, str):
            raise ValueError("fault 'match' must be text (a part of the request path)")
        if kind == "status":
            status = options.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise ValueError("fault 'status' needs status=<int 100..599>")
            raw_headers = options.get("headers") or {}
            if not isinstance(raw_headers, Mapping):
                raise ValueError("fault 'status' headers must be a mapping")
            headers = tuple((str(k), str(v)) for k, v in raw_headers.items())
            return cls(kind, status=status, headers=headers, body=copy.deepcopy(options.get("body")), match=match)
        if kind == "delay":
            seconds = options.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("fault 'delay' needs seconds=<number >= 0>")
            return cls(kind, seconds=float(seconds), match=match)
        return cls(kind, match=match)

    def to_dict(self) -> JSONDict:
        """JSON-friendly view of the fault."""
        view: JSONDict = {"kind": self.kind, "match": self.match}
        if self.kind == "status":
            view.update(status=self.status, headers=dict(self.headers), body=copy.deepcopy(self.body))
        elif self.kind == "delay":
            view["seconds"] = self.seconds
        return view


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Reply:
    """Pipedrive's error envelope."""
    payload = {"success": False, "error": message, "errorCode": status, "error_info": ERROR_INFO}
    if status == 404:
        payload = {"success": False, "error": message, "error_info": ERROR_INFO, "data": None, "additional_data": None}
    return _json_reply(status, payload, headers)


class PipedriveApiStandIn:
    """In-process fake of the Pipedrive API (persons, organisations) with fault injection."""

    def __init__(self, api_token: str = DEFAULT_TOKEN, host: str = "127.0.0.1", port: int = 0) -> None:
        """Configure the accepted API token; the sample persons and organisations are loaded."""
        self.api_token = api_token
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[JSONDict] = []
        self._persons = sample_persons()
        self._organizations = sample_organizations()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ── lifecycle ──────────────────────────────────────────────────────

    def start(self) -> Self:
        """Start serving on a daemon thread; returns self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("stand-in already started")
            server = _Server((self.host, self._requested_port), self)
            self._stopping.clear()
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="pipedrive-standin", daemon=True
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
        """``http://127.0.0.1:PORT``: the Pipedrive API base (paths start with /api/v2)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:PORT/__standin__``."""
        return self.base_url + ADMIN_PREFIX

    # ── test API ───────────────────────────────────────────────────────

    def enqueue_fault(self, kind: str, **options: Any) -> Fault:
        """Queue a fault ("status", "delay" or "drop") for the next matching API request (FIFO)."""
        fault = Fault.build(kind, options)
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not yet consumed, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[JSONDict]:
        """Recorded API requests (copies), oldest first: method, path, status, fault, authenticated."""
        with self._lock:
            return copy.deepcopy(self._requests)

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

    def reset(self) -> None:
        """Forget requests and faults; back to the sample persons and organisations."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
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

    def _dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        split = urlsplit(raw_path)
        path, query = split.path, parse_qs(split.query)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return self._admin(method, path[len(ADMIN_PREFIX) :], body)
        with self._lock:
            fault = next((f for f in self._faults if f.match in path), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.kind == "drop":
            reply = _Reply(0, drop=True)
        elif fault is not None and fault.kind == "status":
            reply = self._fault_reply(fault)
        else:
            reply = self._api(method, path, headers, query)
            reply.delay = fault.seconds if fault is not None else 0.0
        token = headers.get("x-api-token") or (query.get("api_token") or [""])[0]
        record: JSONDict = {
            "method": method,
            "path": path,  # the query (which may hold api_token) is left out on purpose
            "status": None if reply.drop else reply.status,
            "fault": None if fault is None else fault.kind,
            "authenticated": token == self.api_token,
            "received": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self._requests.append(record)
        return reply

    def _api(self, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> _Reply:
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
            return _json_reply(200, {"success": True, "data": item}, _RATE_HEADERS)
        return _error(404, "Unknown method .")

    @staticmethod
    def _fault_reply(fault: Fault) -> _Reply:
        if fault.body is None:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            reply = _error(fault.status, "Request over limit" if fault.status == 429 else phrase)
            if fault.status == 429:
                reply.headers.update({**_RATE_HEADERS, "x-ratelimit-remaining": "0", "x-ratelimit-reset": "10"})
        elif isinstance(fault.body, str | bytes):
            raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
            reply = _Reply(fault.status, raw, {"Content-Type": "text/html; charset=utf-8"})
        else:
            reply = _json_reply(fault.status, fault.body)
        reply.headers.update(dict(fault.headers))
        return reply

    def _admin(self, method: str, sub: str, body: bytes) -> _Reply:
        """The ``/__standin__/`` admin API."""
        route = (method, sub.rstrip("/"))
        if route == ("GET", "/requests"):
            items = self.requests
            return _json_reply(200, {"count": len(items), "data": items})
        if route == ("GET", "/faults"):
            faults = [f.to_dict() for f in self.pending_faults]
            return _json_reply(200, {"count": len(faults), "data": faults})
        if route == ("GET", "/persons"):
            return _json_reply(200, {"data": list(self.persons.values())})
        if route == ("GET", "/organizations"):
            return _json_reply(200, {"data": list(self.organizations.values())})
        if route == ("GET", "/config"):
            return _json_reply(200, {"base_url": self.base_url, "api_token": self.api_token})
        if route == ("POST", "/reset"):
            self.reset()
            return _json_reply(200, {"ok": True})
        if method == "DELETE" and (found := re.fullmatch(r"/(persons|organizations)/(\d+)", route[1])):
            if found[1] == "persons":
                self.delete_person(int(found[2]))
            else:
                self.delete_organization(int(found[2]))
            return _json_reply(200, {"ok": True})
        if route in (("POST", "/faults"), ("POST", "/persons"), ("POST", "/organizations")):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return _json_reply(400, {"error": "body must be JSON"})
            if not isinstance(data, dict):
                return _json_reply(400, {"error": "body must be a JSON object"})
            try:
                if route[1] == "/faults":
                    fault = self.enqueue_fault(str(data.pop("kind", None)), **data)
                    return _json_reply(201, {"ok": True, "fault": fault.to_dict(), "pending": len(self.pending_faults)})
                added = self.add_person(data) if route[1] == "/persons" else self.add_organization(data)
            except ValueError as exc:
                return _json_reply(400, {"error": str(exc)})
            return _json_reply(201, {"ok": True, "data": added})
        return _json_reply(404, {"error": f"unknown admin endpoint {method} {ADMIN_PREFIX}{sub}"})


_RATE_HEADERS = {"x-ratelimit-limit": "80", "x-ratelimit-remaining": "79", "x-ratelimit-reset": "2"}


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its stand-in and keeps quiet about dropped sockets."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: PipedriveApiStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else."""
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP/1.1 adapter around ``PipedriveApiStandIn._dispatch``."""

    protocol_version = "HTTP/1.1"
    server_version = "PipedriveStandIn/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: no per-request stderr output."""

    def do_GET(self) -> None:
        """Serve GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve POST."""
        self._serve("POST")

    def do_PATCH(self) -> None:
        """Serve PATCH."""
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        """Serve DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        standin = cast(_Server, self.server).standin
        headers = {name.lower(): value for name, value in self.headers.items()}
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > _MAX_BODY:
            reply = _error(413, "Request body too large")
            self.close_connection = True
        else:
            body = self.rfile.read(int(length)) if int(length) else b""
            try:
                reply = standin._dispatch(method, self.path, headers, body)
            except Exception as exc:  # a stand-in bug: answer 500, never hang the client
                reply = _error(500, f"Stand-in internal error: {exc!r}")
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
        prog="python -m local.pipedrive_api", description="Serve a local stand-in of the Pipedrive API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port (default 8766)")
    parser.add_argument("--api-token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    standin = PipedriveApiStandIn(api_token=args.api_token, host=args.host, port=args.port)
    done = threading.Event()

    def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    standin.start()
    print(f"Pipedrive API stand-in: {standin.base_url}/api/v2/persons/{{id}}", flush=True)
    print(f"  api token:  {standin.api_token}  (header x-api-token)", flush=True)
    print(f"  persons:    {', '.join(str(i) for i in standin.persons)}", flush=True)
    print(f"  admin API:  {standin.admin_url}/ (faults, requests, persons, organizations, reset)", flush=True)
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
