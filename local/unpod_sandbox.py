"""Local fake of the Unpod voice-AI platform API (the "Unpod sandbox").

Serves the part of ``/api/v2/platform`` that lead-caller speaks (create task,
runs, run tasks, organizations, spaces, agents) with Unpod's quirks: ``Token``
auth, HTTP 206 for business errors, ``R``/``T`` + 32 hex ids. Tests can inject
faults (error statuses, slow answers, dropped connections) through the Python
API or through the HTTP admin API under ``/__sandbox__/``.

Run standalone with ``python -m local.unpod_sandbox --port 8765``.
"""

import argparse
import contextlib
import copy
import json
import re
import signal
import sys
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = ["ADMIN_PREFIX", "API_PREFIX", "EXPIRED_TOKEN", "Fault", "UnpodSandbox", "main"]

JSONDict = dict[str, Any]

API_PREFIX = "/api/v2/platform"
ADMIN_PREFIX = "/__sandbox__"
EXPIRED_TOKEN = "expired-token"  # noqa: S105 - a fake credential
"""An ``Authorization: Token expired-token`` header gets 403 "Token has expired."."""

FAULT_KINDS = ("status", "delay", "drop")
TERMINAL_TASK_STATUSES = frozenset({"completed", "failed", "partially_completed"})

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?")
_IST = timezone(timedelta(hours=5, minutes=30))
_MAX_BODY = 10 * 1024 * 1024
_VALIDATION_MESSAGE = "There is some Validation error"

_ROUTES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"/spaces/(?P<space>[^/]+)/tasks/create/"), "POST", "create_task"),
    (re.compile(r"/spaces/(?P<space>[^/]+)/tasks/"), "POST", "create_task"),
    (re.compile(r"/spaces/(?P<space>[^/]+)/tasks/"), "GET", "space_tasks"),
    (re.compile(r"/spaces/(?P<space>[^/]+)/runs/"), "GET", "runs"),
    (re.compile(r"/spaces/(?P<space>[^/]+)/runs/(?P<run>[^/]+)/tasks/"), "GET", "run_tasks"),
    (re.compile(r"/spaces/(?P<space>[^/]+)/"), "GET", "space"),
    (re.compile(r"/spaces/"), "GET", "spaces"),
    (re.compile(r"/organizations/"), "GET", "organizations"),
    (re.compile(r"/agents/"), "GET", "agents"),
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued fault, applied to the next create-task request."""

    kind: str
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    seconds: float = 0.0

    @classmethod
    def build(cls, kind: str, options: Mapping[str, Any]) -> Self:
        """Validate ``kind`` and its options; raise ValueError when they are wrong."""
        allowed = {"status": {"status", "headers", "body"}, "delay": {"seconds"}, "drop": set()}
        if kind not in allowed:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        unknown = set(options) - allowed[kind]
        if unknown:
            raise ValueError(f"unknown option(s) for fault {kind!r}: {', '.join(sorted(unknown))}")
        if kind == "status":
            status = options.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise ValueError("fault 'status' needs status=<int 100..599>")
            raw_headers = options.get("headers") or {}
            if not isinstance(raw_headers, Mapping):
                raise ValueError("fault 'status' headers must be a mapping")
            headers = tuple((str(k), str(v)) for k, v in raw_headers.items())
            return cls(kind, status=status, headers=headers, body=copy.deepcopy(options.get("body")))
        if kind == "delay":
            seconds = options.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("fault 'delay' needs seconds=<number >= 0>")
            return cls(kind, seconds=float(seconds))
        return cls(kind)

    def to_dict(self) -> JSONDict:
        """JSON-friendly view of the fault."""
        match self.kind:
            case "status":
                return {
                    "kind": self.kind,
                    "status": self.status,
                    "headers": dict(self.headers),
                    "body": copy.deepcopy(self.body),
                }
            case "delay":
                return {"kind": self.kind, "seconds": self.seconds}
            case _:
                return {"kind": self.kind}


@dataclass(slots=True)
class _Reply:
    """What the handler sends back (or not, when ``drop``)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


class _ReplyError(Exception):
    """Raised by checks to short-circuit a request with an error reply."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    body = json.dumps(payload).encode()
    return _Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def _envelope(status: int, message: str, data: Any = None, **extra: Any) -> _Reply:
    payload: JSONDict = {"status_code": status, "message": message, "data": {} if data is None else data}
    payload.update(extra)
    return _json_reply(status, payload)


def _unauthorized() -> _Reply:
    reply = _envelope(401, "Invalid token.")
    reply.headers["WWW-Authenticate"] = "Token"
    return reply


def _validation_reply(errors: JSONDict) -> _Reply:
    return _envelope(206, _VALIDATION_MESSAGE, {"errors": errors}, errors=errors)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _type_name(value: object) -> str:
    return type(value).__name__


def _document_errors(doc: object) -> JSONDict:
    """Field errors of one document (contact), empty when it is valid."""
    if not isinstance(doc, dict):
        return {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {_type_name(doc)}."]}
    errors: JSONDict = {}
    name = doc.get("name")
    if name is None:
        errors["name"] = ["This field is required."]
    elif not isinstance(name, str) or not name.strip():
        errors["name"] = ["This field may not be blank."]
    number = doc.get("contact_number")
    if number is None:
        errors["contact_number"] = ["This field is required."]
    elif not isinstance(number, str) or not _E164.fullmatch(number):
        errors["contact_number"] = ["Enter a valid phone number."]
    return errors


def _validation_errors(payload: JSONDict) -> JSONDict:
    """Serializer-style errors for ``documents`` and ``context``."""
    errors: JSONDict = {}
    docs = payload.get("documents")
    if docs is None:
        errors["documents"] = ["This field is required."]
    elif not isinstance(docs, list):
        errors["documents"] = [f'Expected a list of items but got type "{_type_name(docs)}".']
    elif not docs:
        errors["documents"] = ["This list may not be empty."]
    else:
        per_doc = {str(i): e for i, doc in enumerate(docs) if (e := _document_errors(doc))}
        if per_doc:
            errors["documents"] = per_doc
    context = payload.get("context")
    if context is None:
        errors["context"] = ["This field is required."]
    elif not isinstance(context, str):
        errors["context"] = ["Not a valid string."]
    elif not context.strip():
        errors["context"] = ["This field may not be blank."]
    return errors


def _schedule_error(schedule: object) -> str | None:
    """Why ``schedule`` is refused (HTTP 400), or None when it is fine."""
    if schedule is None:
        return None
    if not isinstance(schedule, dict):
        return "Task Creation Failed: schedule must be an object"
    kind = schedule.get("type")
    if kind in ("now", "auto"):
        return None
    if kind != "custom":
        return f"Task Creation Failed: invalid schedule type {kind!r}"
    date, time = schedule.get("calling_date"), schedule.get("calling_time")
    if not isinstance(date, str) or not isinstance(time, str):
        return "Task Creation Failed: calling_date and calling_time are required for a custom schedule"
    if not _DATE.fullmatch(date) or not _TIME.fullmatch(time):
        return "Task Creation Failed: invalid calling_date or calling_time"
    try:
        when = datetime.fromisoformat(f"{date}T{time}")
    except ValueError:
        return "Task Creation Failed: invalid calling_date or calling_time"
    if when.tzinfo is None:
        when = when.replace(tzinfo=_IST)
    if when <= datetime.now(UTC):
        return "Task Creation Failed: calling time must be in the future"
    return None


def _paginate(items: list[JSONDict], query: Mapping[str, list[str]]) -> list[JSONDict]:
    """Slice ``items`` by the ``page`` / ``page_size`` query parameters."""
    try:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["20"])[0])
    except ValueError:
        raise _ReplyError(_envelope(400, "page and page_size must be integers")) from None
    if page < 1 or size < 1:
        raise _ReplyError(_envelope(400, "page and page_size must be >= 1"))
    return items[(page - 1) * size : page * size]


def _task_view(task: JSONDict) -> JSONDict:
    keys = (
        "task_id",
        "run_id",
        "status",
        "input",
        "ref_id",
        "output",
        "assignee",
        "task",
        "created",
        "modified",
    )
    return {k: copy.deepcopy(task[k]) for k in keys}


class UnpodSandbox:
    """In-process fake Unpod API server with fault injection."""

    def __init__(
        self,
        api_token: str = "sandbox-api-token",  # noqa: S107 - a fake credential
        space_token: str = "SANDBOXSPACE0000000000001",  # noqa: S107
        org_handle: str | None = "sandbox-org",
        pilots: Sequence[str] = ("sandbox-agent",),
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        status_as_map: bool = False,
    ) -> None:
        """Configure credentials; ``status_as_map`` answers ``data.status`` as {task_id: status}."""
        self.api_token = api_token
        self.space_token = space_token
        self.org_handle = org_handle or None
        self.pilots: tuple[str, ...] = (pilots,) if isinstance(pilots, str) else tuple(pilots)
        self.host = host
        self.status_as_map = status_as_map
        #: seconds every Create Task answer waits (a stand-in for a real API round trip; benchmark)
        self.response_delay = 0.0
        self._requested_port = port
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[JSONDict] = []
        self._tasks: list[JSONDict] = []
        self._runs: list[JSONDict] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ── lifecycle ──────────────────────────────────────────────────────

    def start(self) -> Self:
        """Start serving on a daemon thread; returns self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("sandbox already started")
            server = _Server((self.host, self._requested_port), self)
            self._stopping.clear()
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="unpod-sandbox", daemon=True
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
            raise RuntimeError("sandbox not started")
        return int(server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Unpod API base URL, e.g. ``http://127.0.0.1:PORT/api/v2/platform``."""
        return self.root_url + API_PREFIX

    @property
    def admin_url(self) -> str:
        """Admin API base URL, ``http://127.0.0.1:PORT/__sandbox__``."""
        return self.root_url + ADMIN_PREFIX

    # ── test API ───────────────────────────────────────────────────────

    def enqueue_fault(self, kind: str, **options: Any) -> Fault:
        """Queue a fault ("status", "delay" or "drop") for the next create-task request (FIFO)."""
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
        """Recorded create-task requests (copies), oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def created_tasks(self) -> list[JSONDict]:
        """Tasks created so far (copies), oldest first."""
        with self._lock:
            return copy.deepcopy(self._tasks)

    @property
    def runs(self) -> list[JSONDict]:
        """Runs created so far (copies), oldest first."""
        with self._lock:
            return [self._run_view(run) for run in self._runs]

    def update_task(
        self,
        task_id: str,
        *,
        status: str | None = None,
        output: JSONDict | None = None,
    ) -> JSONDict:
        """Set a task's status and/or output (to fake call progress); KeyError if unknown."""
        with self._lock:
            task = next((t for t in self._tasks if t["task_id"] == task_id), None)
            if task is None:
                raise KeyError(task_id)
            if status is not None:
                task["status"] = status
            if output is not None:
                task["output"] = copy.deepcopy(output)
            task["modified"] = _now_iso()
            for run in self._runs:
                if run["run_id"] == task["run_id"]:
                    run["modified"] = task["modified"]
            return copy.deepcopy(task)

    def reset(self) -> None:
        """Forget requests, tasks, runs and pending faults."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._tasks.clear()
            self._runs.clear()

    # ── request handling ───────────────────────────────────────────────

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Route one HTTP request to its handler."""
        split = urlsplit(raw_path)
        path, query = split.path, parse_qs(split.query)
        try:
            if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
                return self._admin(method, path[len(ADMIN_PREFIX) :], body)
            if path.startswith(API_PREFIX + "/"):
                sub = path[len(API_PREFIX) :]
                allowed: list[str] = []
                for pattern, route_method, name in _ROUTES:
                    if (match := pattern.fullmatch(sub)) is None:
                        continue
                    if route_method != method:
                        allowed.append(route_method)
                        continue
                    args = match.groupdict()
                    if name == "create_task":
                        return self._create_task(raw_path, headers, body, args["space"])
                    self._check_access(headers)
                    return self._read_route(name, args, query)
                if allowed:
                    reply = _envelope(405, f'Method "{method}" not allowed.')
                    reply.headers["Allow"] = ", ".join(sorted(set(allowed)))
                    return reply
            return _envelope(404, "Not found.")
        except _ReplyError as problem:
            return problem.reply

    def _check_access(self, headers: Mapping[str, str]) -> None:
        """Token auth, then the optional Org-Handle check; raise _ReplyError on failure."""
        keyword, _, token = headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if keyword.lower() != "token" or not token:
            raise _ReplyError(_unauthorized())
        if token == EXPIRED_TOKEN:
            raise _ReplyError(_envelope(403, "Token has expired."))
        if token != self.api_token:
            raise _ReplyError(_unauthorized())
        org = headers.get("org-handle")
        if self.org_handle is not None and org is not None and org != self.org_handle:
            raise _ReplyError(_envelope(403, "You do not have access to this organization"))

    def _check_space(self, space: str) -> None:
        if space != self.space_token:
            raise _ReplyError(_envelope(206, "Invalid Space Token"))

    def _create_task(self, raw_path: str, headers: dict[str, str], body: bytes, space: str) -> _Reply:
        """Create Task, with the next queued fault (if any) applied and the request recorded."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        parsed: Any = None
        parse_ok = False
        with contextlib.suppress(ValueError):
            parsed, parse_ok = json.loads(body), True
        if fault is not None and fault.kind == "drop":
            reply = _Reply(0, drop=True)
        elif fault is not None and fault.kind == "status":
            reply = self._fault_reply(fault)
        else:
            try:
                reply = self._create_task_checked(headers, parsed, parse_ok, space)
            except _ReplyError as problem:
                reply = problem.reply
            if fault is not None:
                reply.delay = fault.seconds
            elif self.response_delay:
                reply.delay = self.response_delay
        record: JSONDict = {
            "method": "POST",
            "path": raw_path,
            "headers": dict(headers),
            "json": parsed,
            "body": body.decode("utf-8", "replace"),
            "status": None if reply.drop else reply.status,
            "fault": None if fault is None else fault.kind,
            "received": _now_iso(),
        }
        with self._lock:
            self._requests.append(record)
        return reply

    @staticmethod
    def _fault_reply(fault: Fault) -> _Reply:
        headers = dict(fault.headers)
        if fault.body is None:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            message = "Request was throttled." if fault.status == 429 else phrase
            reply = _envelope(fault.status, message)
        elif isinstance(fault.body, str | bytes):
            raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
            reply = _Reply(fault.status, raw, {"Content-Type": "text/html; charset=utf-8"})
        else:
            reply = _json_reply(fault.status, fault.body)
        reply.headers.update(headers)
        return reply

    def _create_task_checked(
        self,
        headers: Mapping[str, str],
        payload: Any,
        parse_ok: bool,
        space: str,
    ) -> _Reply:
        """The normal Create Task path (auth, space, body, pilot, validation, schedule)."""
        self._check_access(headers)
        self._check_space(space)
        if not parse_ok or not isinstance(payload, dict):
            return _envelope(400, "JSON parse error - the request body must be a JSON object.")
        pilot = payload.get("pilot")
        if not isinstance(pilot, str) or pilot not in self.pilots:
            return _envelope(404, "Agent not found")
        if errors := _validation_errors(payload):
            return _validation_reply(errors)
        if (reason := _schedule_error(payload.get("schedule"))) is not None:
            return _envelope(400, reason)
        run_id, task_ids = self._store_run(space, pilot, payload)
        status: Any = dict.fromkeys(task_ids, "pending") if self.status_as_map else "pending"
        data = {"run_id": run_id, "task_ids": task_ids, "status": status}
        return _envelope(200, "Task Created Successfully", data)

    def _store_run(self, space: str, pilot: str, payload: JSONDict) -> tuple[str, list[str]]:
        run_id = "R" + uuid.uuid4().hex
        now = _now_iso()
        schedule = copy.deepcopy(payload.get("schedule")) or {"type": "now"}
        tasks: list[JSONDict] = []
        for doc in payload["documents"]:
            tasks.append(
                {
                    "task_id": "T" + uuid.uuid4().hex,
                    "run_id": run_id,
                    "status": "pending",
                    "input": copy.deepcopy(doc),
                    "ref_id": doc.get("document_id"),
                    "output": {},
                    "assignee": pilot,
                    "task": {"objective": payload["context"]},
                    "space_token": space,
                    "schedule": schedule,
                    "created": now,
                    "modified": now,
                }
            )
        task_ids = [t["task_id"] for t in tasks]
        run: JSONDict = {
            "run_id": run_id,
            "space_token": space,
            "pilot": pilot,
            "created": now,
            "modified": now,
            "task_ids": task_ids,
        }
        with self._lock:
            self._tasks.extend(tasks)
            self._runs.append(run)
        return run_id, task_ids

    def _run_view(self, run: JSONDict) -> JSONDict:
        """Public view of a run; its status follows its tasks (call with the lock held)."""
        statuses = [t["status"] for t in self._tasks if t["run_id"] == run["run_id"]]
        if all(s == "pending" for s in statuses):
            status = "pending"
        elif all(s in TERMINAL_TASK_STATUSES for s in statuses):
            status = "failed" if all(s == "failed" for s in statuses) else "completed"
        else:
            status = "running"
        return {
            "run_id": run["run_id"],
            "status": status,
            "created": run["created"],
            "modified": run["modified"],
            "run_mode": "prod",
        }

    def _read_route(self, name: str, args: Mapping[str, str], query: Mapping[str, list[str]]) -> _Reply:
        """GET endpoints (auth already checked)."""
        if name == "organizations":
            org = {"name": "Sandbox Org", "domain_handle": self.org_handle}
            orgs = [] if self.org_handle is None else [org]
            return _envelope(200, "Organizations fetched successfully", orgs, count=len(orgs))
        if name == "spaces":
            return _envelope(200, "Spaces fetched successfully", [self._space_view()], count=1)
        if name == "agents":
            agents = [{"name": p, "handle": p, "type": "Voice", "state": "published"} for p in self.pilots]
            return _envelope(200, "Agents fetched successfully", agents, count=len(agents))
        self._check_space(args["space"])
        if name == "space":
            return _envelope(200, "Space fetched successfully", self._space_view())
        with self._lock:
            if name == "runs":
                items = [self._run_view(r) for r in reversed(self._runs) if r["space_token"] == args["space"]]
                message = "Runs Fetched Successfully"
            elif name == "run_tasks":
                if not any(r["run_id"] == args["run"] for r in self._runs):
                    return _envelope(404, "Run not found")
                items = [_task_view(t) for t in self._tasks if t["run_id"] == args["run"]]
                message = "Tasks Fetched Successfully"
            else:  # space_tasks
                items = [_task_view(t) for t in reversed(self._tasks) if t["space_token"] == args["space"]]
                message = "Tasks Fetched Successfully"
        return _envelope(200, message, _paginate(items, query), count=len(items))

    def _space_view(self) -> JSONDict:
        return {
            "name": "Sandbox Space",
            "token": self.space_token,
            "agent_handle": self.pilots[0] if self.pilots else None,
        }

    def _admin(self, method: str, sub: str, body: bytes) -> _Reply:
        """The ``/__sandbox__/`` admin API."""
        route = (method, sub.rstrip("/"))
        if route == ("GET", "/requests"):
            items = self.requests
            return _json_reply(200, {"count": len(items), "data": items})
        if route == ("GET", "/tasks"):
            items = self.created_tasks
            return _json_reply(200, {"count": len(items), "data": items})
        if route == ("GET", "/runs"):
            items = self.runs
            return _json_reply(200, {"count": len(items), "data": items})
        if route == ("GET", "/faults"):
            faults = [f.to_dict() for f in self.pending_faults]
            return _json_reply(200, {"count": len(faults), "data": faults})
        if route == ("GET", "/config"):
            return _json_reply(
                200,
                {
                    "base_url": self.base_url,
                    "api_token": self.api_token,
                    "space_token": self.space_token,
                    "org_handle": self.org_handle,
                    "pilots": list(self.pilots),
                },
            )
        if route == ("POST", "/reset"):
            self.reset()
            return _json_reply(200, {"ok": True})
        if route == ("POST", "/faults") or (method == "POST" and sub.startswith("/tasks/")):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return _json_reply(400, {"error": "body must be JSON"})
            if not isinstance(data, dict):
                return _json_reply(400, {"error": "body must be a JSON object"})
            if route == ("POST", "/faults"):
                kind = data.pop("kind", None)
                try:
                    fault = self.enqueue_fault(str(kind), **data)
                except ValueError as exc:
                    return _json_reply(400, {"error": str(exc)})
                pending = len(self.pending_faults)
                return _json_reply(201, {"ok": True, "fault": fault.to_dict(), "pending": pending})
            task_id = sub.removeprefix("/tasks/").strip("/")
            status, output = data.get("status"), data.get("output")
            if (status is not None and not isinstance(status, str)) or (
                output is not None and not isinstance(output, dict)
            ):
                return _json_reply(400, {"error": "status must be a string and output an object"})
            try:
                return _json_reply(200, self.update_task(task_id, status=status, output=output))
            except KeyError:
                return _json_reply(404, {"error": f"unknown task {task_id}"})
        return _json_reply(404, {"error": f"unknown admin endpoint {method} {ADMIN_PREFIX}{sub}"})


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its sandbox and keeps quiet about dropped sockets."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: UnpodSandbox) -> None:
        super().__init__(address, _Handler)
        self.sandbox = sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else."""
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP/1.1 adapter around ``UnpodSandbox._dispatch``."""

    protocol_version = "HTTP/1.1"
    server_version = "UnpodSandbox/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: no per-request stderr output."""

    def do_GET(self) -> None:
        """Serve GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve POST."""
        self._serve("POST")

    def do_PUT(self) -> None:
        """Serve PUT."""
        self._serve("PUT")

    def do_PATCH(self) -> None:
        """Serve PATCH."""
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        """Serve DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sandbox = cast(_Server, self.server).sandbox
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = self._read_body(headers)
        except _ReplyError as problem:
            reply = problem.reply
            self.close_connection = True
        else:
            try:
                reply = sandbox._dispatch(method, self.path, headers, body)
            except Exception as exc:  # a sandbox bug: answer 500, never hang the client
                reply = _envelope(500, f"Sandbox internal error: {exc!r}")
        if reply.drop:
            self.close_connection = True
            return
        if reply.delay > 0:
            sandbox._stopping.wait(reply.delay)
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

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        length = headers.get("content-length")
        if length is None:
            if "transfer-encoding" in headers:
                raise _ReplyError(_envelope(411, "Length Required"))
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _ReplyError(_envelope(400, "Invalid Content-Length")) from None
        if size < 0 or size > _MAX_BODY:
            raise _ReplyError(_envelope(413, "Request body too large"))
        return self.rfile.read(size)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the sandbox until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m local.unpod_sandbox", description="Serve a local fake of the Unpod API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    parser.add_argument("--api-token", default="sandbox-api-token")
    parser.add_argument("--space-token", default="SANDBOXSPACE0000000000001")
    parser.add_argument("--org-handle", default="sandbox-org", help="empty string disables the check")
    parser.add_argument("--pilot", action="append", help="agent handle (repeatable; default sandbox-agent)")
    args = parser.parse_args(argv)
    sandbox = UnpodSandbox(
        api_token=args.api_token,
        space_token=args.space_token,
        org_handle=args.org_handle or None,
        pilots=tuple(args.pilot or ("sandbox-agent",)),
        host=args.host,
        port=args.port,
    )
    done = threading.Event()

    def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    sandbox.start()
    print(f"Unpod sandbox base URL: {sandbox.base_url}", flush=True)
    print(f"  api token:   {sandbox.api_token}", flush=True)
    print(f"  space token: {sandbox.space_token}", flush=True)
    print(f"  org handle:  {sandbox.org_handle or '(not checked)'}", flush=True)
    print(f"  pilots:      {', '.join(sandbox.pilots)}", flush=True)
    print(f"  admin API:   {sandbox.admin_url}/ (faults, requests, tasks, runs, reset)", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
