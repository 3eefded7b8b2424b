"""Local fake of the Unpod voice-AI platform API (the "Unpod sandbox").

Serves the part of ``/api/v2/platform`` that lead-caller speaks (create task,
runs, run tasks, organizations, spaces, agents) with Unpod's quirks: ``Token``
auth, HTTP 206 for business errors, ``R``/``T`` + 32 hex ids. Tests can inject
faults (error statuses, slow answers, dropped connections) through the Python
API or through the HTTP admin API under ``/__sandbox__/``.

Run standalone with ``python -m local.unpod_sandbox --port 8765``.
"""

import contextlib
import copy
import io
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import urllib3

from local.standin import FAULT_KINDS as FAULT_KINDS
from local.standin import (
    Fault,
    JSONDict,
    Reply,
    ReplyError,
    Request,
    StandInServer,
    cli_parser,
    serve_main,
    status_phrase,
)

__all__ = ["ADMIN_PREFIX", "API_PREFIX", "EXPIRED_TOKEN", "Fault", "UnpodSandbox", "main"]

API_PREFIX = "/api/v2/platform"
ADMIN_PREFIX = "/__sandbox__"
EXPIRED_TOKEN = "expired-token"  # noqa: S105 - a fake credential
"""An ``Authorization: Token expired-token`` header gets 403 "Token has expired."."""

TERMINAL_TASK_STATUSES = frozenset({"completed", "failed", "partially_completed"})

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?")
_IST = timezone(timedelta(hours=5, minutes=30))
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


def _envelope(status: int, message: str, data: Any = None, **extra: Any) -> Reply:
    payload: JSONDict = {"status_code": status, "message": message, "data": {} if data is None else data}
    payload.update(extra)
    return Reply.json(status, payload)


def _unauthorized() -> Reply:
    reply = _envelope(401, "Invalid token.")
    reply.headers["WWW-Authenticate"] = "Token"
    return reply


def _validation_reply(errors: JSONDict) -> Reply:
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


def _seconds_until(schedule: object) -> float:
    """How long until a custom schedule's calling time (0 for now/auto or anything unreadable)."""
    if not isinstance(schedule, dict) or schedule.get("type") != "custom":
        return 0.0
    try:
        when = datetime.fromisoformat(f"{schedule.get('calling_date')}T{schedule.get('calling_time')}")
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=_IST)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _paginate(items: list[JSONDict], query: Mapping[str, list[str]]) -> list[JSONDict]:
    """Slice ``items`` by the ``page`` / ``page_size`` query parameters."""
    try:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["20"])[0])
    except ValueError:
        raise ReplyError(_envelope(400, "page and page_size must be integers")) from None
    if page < 1 or size < 1:
        raise ReplyError(_envelope(400, "page and page_size must be >= 1"))
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


class UnpodSandbox(StandInServer[Fault]):
    """In-process fake Unpod API server with fault injection."""

    fault_type = Fault
    label = "sandbox"
    thread_name = "unpod-sandbox"
    server_version = "UnpodSandbox/1.0"
    admin_prefix = ADMIN_PREFIX
    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
    internal_error = "Sandbox internal error"

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
        super().__init__(host, port)
        self.api_token = api_token
        self.space_token = space_token
        self.org_handle = org_handle or None
        self.pilots: tuple[str, ...] = (pilots,) if isinstance(pilots, str) else tuple(pilots)
        self.status_as_map = status_as_map
        #: agent handle -> state shown by GET /agents/ ("published" when absent; "draft", "archived")
        self.agent_states: dict[str, str] = {}
        #: seconds every Create Task answer waits (a stand-in for a real API round trip; benchmark)
        self.response_delay = 0.0
        self._tasks: list[JSONDict] = []
        self._runs: list[JSONDict] = []
        self.calls = CallSimulation()
        self._timers: list[threading.Timer] = []
        self._deliveries: list[JSONDict] = []
        #: fault windows (epoch seconds): every Create Task answers 503 until outage_until
        self.outage_until = 0.0
        self.outage_status = 503
        #: Create Task requests accepted per wall-clock second (0 = unlimited); beyond: 429 + Retry-After
        self.rate_limit_per_second = 0
        self.rate_limit_retry_after = "1"
        self._per_second: dict[int, int] = {}

    def start_outage(self, seconds: float, status: int = 503) -> None:
        """Answer every Create Task with `status` for the next `seconds` (an Unpod outage)."""
        self.outage_status = status
        self.outage_until = time.time() + seconds

    def _window_reply(self, now: float) -> Reply | None:
        """The outage or rate-limit answer that applies at `now` (a request's arrival), if any."""
        if now < self.outage_until:
            return _envelope(self.outage_status, status_phrase(self.outage_status))
        if self.rate_limit_per_second > 0:
            second = int(now)
            with self._lock:
                used = self._per_second.get(second, 0)
                if used >= self.rate_limit_per_second:
                    reply = _envelope(429, "Request was throttled.")
                    reply.headers["Retry-After"] = self.rate_limit_retry_after
                    return reply
                self._per_second[second] = used + 1
        return None

    @property
    def base_url(self) -> str:
        """Unpod API base URL, e.g. ``http://127.0.0.1:PORT/api/v2/platform``."""
        return self.root_url + API_PREFIX

    # ── test API (enqueue_fault, pending_faults, requests: see StandInServer) ──

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
        super().reset()
        with self._lock:
            self._tasks.clear()
            self._runs.clear()
            self._deliveries.clear()

    # ── request handling ───────────────────────────────────────────────

    def _serve_api(self, request: Request) -> Reply:
        """Route one API request to its handler."""
        method, path, headers = request.method, request.path, request.headers
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
                    return self._create_task(request.raw_path, headers, request.body, args["space"])
                self._check_access(headers)
                return self._read_route(name, args, request.params)
            if allowed:
                reply = _envelope(405, f'Method "{method}" not allowed.')
                reply.headers["Allow"] = ", ".join(sorted(set(allowed)))
                return reply
        return _envelope(404, "Not found.")

    def _error_reply(self, status: int, message: str) -> Reply:
        """Unpod's envelope."""
        return _envelope(status, message)

    def _fault_error(self, status: int) -> Reply:
        """Unpod's envelope for a "status" fault without a body."""
        return _envelope(status, "Request was throttled." if status == 429 else status_phrase(status))

    def _read_body(self, headers: Mapping[str, str], rfile: io.BufferedIOBase) -> bytes:
        """The body per Content-Length: 411 without one for a chunked body, 400 when bad, 413 when too large."""
        length = headers.get("content-length")
        if length is None:
            if "transfer-encoding" in headers:
                raise ReplyError(_envelope(411, "Length Required"))
            return b""
        try:
            size = int(length)
        except ValueError:
            raise ReplyError(_envelope(400, "Invalid Content-Length")) from None
        if size < 0 or size > self.max_body:
            raise ReplyError(_envelope(413, "Request body too large"))
        return rfile.read(size)

    def _check_access(self, headers: Mapping[str, str]) -> None:
        """Token auth, then the optional Org-Handle check; raise ReplyError on failure."""
        keyword, _, token = headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if keyword.lower() != "token" or not token:
            raise ReplyError(_unauthorized())
        if token == EXPIRED_TOKEN:
            raise ReplyError(_envelope(403, "Token has expired."))
        if token != self.api_token:
            raise ReplyError(_unauthorized())
        org = headers.get("org-handle")
        if self.org_handle is not None and org is not None and org != self.org_handle:
            raise ReplyError(_envelope(403, "You do not have access to this organization"))

    def _check_space(self, space: str) -> None:
        if space != self.space_token:
            raise ReplyError(_envelope(206, "Invalid Space Token"))

    def _create_task(self, raw_path: str, headers: Mapping[str, str], body: bytes, space: str) -> Reply:
        """Create Task, with the next queued fault (if any) applied and the request recorded.

        The request is timed when it arrives: the rate limit counts it in that second, and so
        does `received_epoch` (stamped after the answer was built, a request checked in second s
        could be recorded in s + 1: a 6th request in a second limited to 5, by the clock alone).
        """
        arrived = time.time()
        fault = self._take_fault(raw_path)
        parsed: Any = None
        parse_ok = False
        with contextlib.suppress(ValueError):
            parsed, parse_ok = json.loads(body), True

        def serve() -> Reply:
            window = self._window_reply(arrived)
            if window is not None:
                return window
            try:
                reply = self._create_task_checked(headers, parsed, parse_ok, space)
            except ReplyError as problem:
                reply = problem.reply
            reply.delay = self.response_delay
            return reply

        reply = self._apply_fault(fault, serve)
        self._record(
            {
                "method": "POST",
                "path": raw_path,
                "headers": dict(headers),
                "json": parsed,
                "body": body.decode("utf-8", "replace"),
                **self._outcome(reply, fault),
                "received": datetime.fromtimestamp(arrived, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "received_epoch": arrived,
            }
        )
        return reply

    def _create_task_checked(
        self,
        headers: Mapping[str, str],
        payload: Any,
        parse_ok: bool,
        space: str,
    ) -> Reply:
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
        self._simulate_calls(tasks)
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

    def _read_route(self, name: str, args: Mapping[str, str], query: Mapping[str, list[str]]) -> Reply:
        """GET endpoints (auth already checked)."""
        if name == "organizations":
            org = {"name": "Sandbox Org", "domain_handle": self.org_handle}
            orgs = [] if self.org_handle is None else [org]
            return _envelope(200, "Organizations fetched successfully", orgs, count=len(orgs))
        if name == "spaces":
            return _envelope(200, "Spaces fetched successfully", [self._space_view()], count=1)
        if name == "agents":
            agents = [
                {"name": p, "handle": p, "type": "Voice", "state": self.agent_states.get(p, "published")}
                for p in self.pilots
            ]
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

    def _admin_config(self) -> JSONDict:
        """``GET config``: base URL, credentials and pilots."""
        return {
            "base_url": self.base_url,
            "api_token": self.api_token,
            "space_token": self.space_token,
            "org_handle": self.org_handle,
            "pilots": list(self.pilots),
        }

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:
        """``GET tasks``, ``GET runs`` and ``POST tasks/{task_id}`` (status and/or output)."""
        route = (method, sub.rstrip("/"))
        if route[1] in ("/calls", "/webhook-deliveries"):
            return self._admin_calls(method, route[1], body)
        if route == ("GET", "/tasks"):
            return self._admin_list(self.created_tasks)
        if route == ("GET", "/runs"):
            return self._admin_list(self.runs)
        if method != "POST" or not sub.startswith("/tasks/"):
            return None
        data = self._admin_json(body)
        task_id = sub.removeprefix("/tasks/").strip("/")
        status, output = data.get("status"), data.get("output")
        if (status is not None and not isinstance(status, str)) or (
            output is not None and not isinstance(output, dict)
        ):
            return self._json(400, {"error": "status must be a string and output an object"})
        try:
            return self._json(200, self.update_task(task_id, status=status, output=output))
        except KeyError:
            return self._json(404, {"error": f"unknown task {task_id}"})

    # ── call simulation: tasks progress by themselves and are POSTed to an agent webhook ──

    @property
    def webhook_deliveries(self) -> list[JSONDict]:
        """Agent webhook deliveries so far: task_id, status sent, HTTP answer, fault."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def stop(self) -> None:
        """Stop serving and cancel the calls still in progress."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        super().stop()

    def _simulate_calls(self, tasks: Sequence[JSONDict]) -> None:
        """Schedule pending -> in_progress -> final for each new task (when the simulation is on)."""
        sim = self.calls
        if not sim.enabled:
            return
        for task in tasks:
            # A custom schedule is called at its time, like Unpod does: the task waits as "scheduled".
            wait = _seconds_until(task.get("schedule"))
            if wait > 0:
                task["status"] = "scheduled"
            outcome = sim.next_outcome(str(task.get("ref_id") or ""))
            halfway = threading.Timer(
                wait + sim.delay_seconds / 2, self._progress, (task["task_id"], "in_progress", None)
            )
            final = threading.Timer(wait + sim.delay_seconds, self._progress, (task["task_id"], "final", outcome))
            for timer in (halfway, final):
                timer.daemon = True
                with self._lock:
                    self._timers.append(timer)
                timer.start()

    def _progress(self, task_id: str, step: str, outcome: str | None) -> None:
        if self._stopping.is_set():
            return
        with contextlib.suppress(KeyError):
            if step == "in_progress":
                self.update_task(task_id, status="in_progress")
                return
            status, output = self.calls.result(str(outcome))
            final = self.update_task(task_id, status=status, output=output)
            self._deliver(final)

    def _deliver(self, task: JSONDict) -> None:
        """POST the finished task like Unpod's agent webhook (retried up to 3 times on non-200)."""
        sim = self.calls
        fault = sim.next_delivery_fault()
        if not sim.webhook_url or fault == "drop":
            with self._lock:
                self._deliveries.append({"task_id": task["task_id"], "status": task["status"], "fault": fault})
            return
        view = _task_view(task)
        bodies = [view]
        if fault == "duplicate":
            bodies = [view, view]
        elif fault == "out_of_order":  # the final report, then a stale "in progress" one
            bodies = [view, {**view, "status": "in_progress", "output": {}}]
        for body in bodies:
            answer: int | None = None
            for _ in range(4):  # the first try and up to 3 retries
                try:
                    response = urllib3.request(
                        "POST",
                        sim.webhook_url,
                        body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json", **sim.webhook_headers},
                        timeout=5.0,
                        retries=False,
                    )
                    answer = response.status
                except urllib3.exceptions.HTTPError:
                    answer = None
                if answer == 200 or self._stopping.is_set():
                    break
            with self._lock:
                self._deliveries.append(
                    {"task_id": task["task_id"], "status": body["status"], "answer": answer, "fault": fault}
                )

    def _admin_calls(self, method: str, route: str, body: bytes) -> Reply:
        """``POST calls`` configures the simulation; ``GET calls`` shows it; ``GET webhook-deliveries``."""
        if route == "/webhook-deliveries":
            return self._admin_list(self.webhook_deliveries)
        if method == "POST":
            try:
                self.calls.configure(**self._admin_json(body))
            except (TypeError, ValueError) as error:
                return self._json(400, {"error": str(error)})
        return self._json(200, self.calls.view())


CALL_OUTCOMES = ("answered", "no_answer", "busy", "voicemail", "failed")
DELIVERY_FAULTS = ("duplicate", "out_of_order", "drop")


class CallSimulation:
    """How the sandbox's calls end: delay, outcome mix, the agent webhook and its delivery faults."""

    def __init__(self) -> None:
        self.enabled = False
        self.delay_seconds = 2.0
        self.mix: tuple[str, ...] = ("answered",)
        #: outcomes per document_id (ref_id), one per call attempt, before the mix applies
        self.by_document: dict[str, deque[str]] = {}
        self.webhook_url = ""
        self.webhook_headers: dict[str, str] = {}
        #: one fault per delivery (FIFO), then ``default_fault`` ("drop" = the webhook is killed)
        self.faults: deque[str] = deque()
        self.default_fault: str | None = None
        self.transcript_bytes = 0
        self._cycle = itertools.cycle(self.mix)
        self._lock = threading.Lock()

    def configure(
        self,
        *,
        enabled: bool = True,
        delay_seconds: float | None = None,
        mix: Sequence[str] | None = None,
        by_document: Mapping[str, Sequence[str]] | None = None,
        webhook_url: str | None = None,
        webhook_headers: Mapping[str, str] | None = None,
        faults: Sequence[str] | None = None,
        default_fault: str | None = "",
        transcript_bytes: int | None = None,
    ) -> None:
        """Change the settings given (``default_fault=""`` leaves it; None clears it)."""
        outcomes = list(mix or ()) + [o for seq in (by_document or {}).values() for o in seq]
        if unknown := sorted(set(outcomes) - set(CALL_OUTCOMES)):
            raise ValueError(f"unknown outcomes {unknown}; use {', '.join(CALL_OUTCOMES)}")
        wanted = [*(faults or ()), *([default_fault] if default_fault else [])]
        if unknown := sorted(set(wanted) - set(DELIVERY_FAULTS)):
            raise ValueError(f"unknown delivery faults {unknown}; use {', '.join(DELIVERY_FAULTS)}")
        with self._lock:
            self.enabled = enabled
            if delay_seconds is not None:
                self.delay_seconds = max(0.0, float(delay_seconds))
            if mix:
                self.mix = tuple(mix)
                self._cycle = itertools.cycle(self.mix)
            if by_document is not None:
                self.by_document.update({key: deque(values) for key, values in by_document.items()})
            if webhook_url is not None:
                self.webhook_url = webhook_url
            if webhook_headers is not None:
                self.webhook_headers = dict(webhook_headers)
            if faults is not None:
                self.faults.extend(faults)
            if default_fault != "":
                self.default_fault = default_fault
            if transcript_bytes is not None:
                self.transcript_bytes = max(0, int(transcript_bytes))

    def view(self) -> JSONDict:
        """The settings, for the admin API (header values masked)."""
        with self._lock:
            return {
                "enabled": self.enabled,
                "delay_seconds": self.delay_seconds,
                "mix": list(self.mix),
                "by_document": {key: list(values) for key, values in self.by_document.items()},
                "webhook_url": self.webhook_url,
                "webhook_headers": dict.fromkeys(self.webhook_headers, "***"),
                "faults": list(self.faults),
                "default_fault": self.default_fault,
                "transcript_bytes": self.transcript_bytes,
            }

    def next_outcome(self, document_id: str) -> str:
        """The outcome of the next call to this document."""
        with self._lock:
            planned = self.by_document.get(document_id)
            if planned:
                return planned.popleft()
            return next(self._cycle)

    def next_delivery_fault(self) -> str | None:
        """The fault of the next webhook delivery."""
        with self._lock:
            return self.faults.popleft() if self.faults else self.default_fault

    def result(self, outcome: str) -> tuple[str, JSONDict]:
        """(task status, output) of a finished call with this outcome."""
        start = datetime.now(UTC) - timedelta(seconds=45)
        times = {"start_time": start.isoformat().replace("+00:00", "Z"), "end_time": _now_iso()}
        call_id = "CALL_" + uuid.uuid4().hex[:16]
        if outcome == "answered":
            turns = [
                {"role": "agent", "content": "Hello, this is the sales team's assistant. Is now a good time?"},
                {"role": "user", "content": "Yes, tell me more."},
            ]
            if self.transcript_bytes:
                filler = "We talked about the plan in detail. " * (self.transcript_bytes // 36 + 1)
                turns.append({"role": "agent", "content": filler[: self.transcript_bytes]})
            return "completed", {
                "call_id": call_id,
                **times,
                "duration": 45,
                "recording_url": f"https://cdn.unpod.example/recordings/{call_id}.mp3",
                "transcript": turns,
                "post_call_data": {
                    "summary": "The lead is interested and asked for a demo next week.",
                    "outcome": "interested",
                    "sentiment": "positive",
                },
                "call_type": "outbound",
                "call_status": "completed",
                "call_end_reason": "caller_hangup",
            }
        if outcome == "failed":
            return "failed", {"call_id": call_id, **times, "duration": 0, "call_status": "failed"}
        return "completed", {
            "call_id": call_id,
            **times,
            "duration": 0,
            "call_status": outcome,
            "call_end_reason": outcome,
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the sandbox until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.unpod_sandbox", "Serve a local fake of the Unpod API.", 8765)
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
    return serve_main(
        sandbox,
        lambda: [
            f"Unpod sandbox base URL: {sandbox.base_url}",
            f"  api token:   {sandbox.api_token}",
            f"  space token: {sandbox.space_token}",
            f"  org handle:  {sandbox.org_handle or '(not checked)'}",
            f"  pilots:      {', '.join(sandbox.pilots)}",
            f"  admin API:   {sandbox.admin_url}/ (faults, requests, tasks, runs, reset)",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
