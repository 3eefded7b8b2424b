"""Shared plumbing of the local HTTP stand-ins (Unpod sandbox, HubSpot API, Pipedrive API).

``StandInServer`` serves one in-process fake API from a daemon thread
(``ThreadingHTTPServer`` on 127.0.0.1 by default, silent) and owns what every
stand-in has: the lifecycle (``start``/``stop``/context manager, ``port``,
``root_url``/``base_url``/``admin_url``), the FIFO queue of ``Fault`` s
("status", "delay", "drop"), the request log and the common admin endpoints
under ``admin_prefix`` (``GET requests``, ``GET|POST faults``, ``GET config``,
``POST reset``). A subclass serves its API in ``_serve_api`` and adds admin
endpoints in ``_admin_route``. ``cli_parser`` and ``serve_main`` make the
``python -m local.<module>`` entry points.
"""

import argparse
import copy
import io
import json
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FAULT_KINDS",
    "HTML_TYPE",
    "JSON_TYPE",
    "Fault",
    "JSONDict",
    "Reply",
    "ReplyError",
    "Request",
    "StandInServer",
    "cli_parser",
    "serve_main",
    "status_phrase",
]

JSONDict = dict[str, Any]

FAULT_KINDS = ("status", "delay", "drop")
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status ("Error" when the status is not a known one)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(slots=True)
class Reply:
    """What the handler sends back (or not, when ``drop``), after waiting ``delay`` seconds."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None, *, content_type: str = JSON_TYPE
    ) -> Self:
        """A JSON answer; ``headers`` come after the Content-Type."""
        return cls(status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})})

    @classmethod
    def dropped(cls) -> Self:
        """No answer at all: the connection is closed."""
        return cls(0, drop=True)


@dataclass(frozen=True, slots=True)
class Request:
    """One API request as the handler read it (header names lower-cased)."""

    method: str
    raw_path: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        """The query parameters."""
        return parse_qs(self.query)


class ReplyError(Exception):
    """Raised by checks to short-circuit a request with an error reply."""

    def __init__(self, reply: Reply) -> None:
        """Carry ``reply``."""
        super().__init__(reply.status)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued fault: an error answer ("status"), a slow answer ("delay") or a dropped connection ("drop")."""

    kind: str
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    seconds: float = 0.0

    #: options every kind accepts on top of its own (a subclass adds them in ``_extra_fields``)
    extra_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def build(cls, kind: str, options: Mapping[str, Any]) -> Self:
        """Validate ``kind`` and its options; raise ValueError when they are wrong."""
        allowed = {"status": {"status", "headers", "body"}, "delay": {"seconds"}, "drop": set()}
        if kind not in allowed:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        unknown = set(options) - allowed[kind] - cls.extra_options
        if unknown:
            raise ValueError(f"unknown option(s) for fault {kind!r}: {', '.join(sorted(unknown))}")
        extra = cls._extra_fields(options)
        if kind == "status":
            status = options.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
                raise ValueError("fault 'status' needs status=<int 100..599>")
            raw_headers = options.get("headers") or {}
            if not isinstance(raw_headers, Mapping):
                raise ValueError("fault 'status' headers must be a mapping")
            headers = tuple((str(k), str(v)) for k, v in raw_headers.items())
            return cls(kind, status=status, headers=headers, body=copy.deepcopy(options.get("body")), **extra)
        if kind == "delay":
            seconds = options.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise ValueError("fault 'delay' needs seconds=<number >= 0>")
            return cls(kind, seconds=float(seconds), **extra)
        return cls(kind, **extra)

    @classmethod
    def _extra_fields(cls, options: Mapping[str, Any]) -> JSONDict:  # noqa: ARG003 - a hook
        """Validated ``extra_options`` as constructor arguments (none here)."""
        return {}

    def _extra_view(self) -> JSONDict:
        """The ``extra_options`` fields for ``to_dict`` (none here)."""
        return {}

    def to_dict(self) -> JSONDict:
        """JSON-friendly view of the fault."""
        view: JSONDict = {"kind": self.kind, **self._extra_view()}
        if self.kind == "status":
            view.update(status=self.status, headers=dict(self.headers), body=copy.deepcopy(self.body))
        elif self.kind == "delay":
            view["seconds"] = self.seconds
        return view

    def matches(self, path: str) -> bool:  # noqa: ARG002 - a hook
        """Whether the fault applies to a request for ``path`` (any path here)."""
        return True

    def answer(self, error: Callable[[int], Reply], json_type: str = JSON_TYPE) -> Reply:
        """The answer of a "status" fault: its body (text as HTML, else JSON) or ``error(status)``, plus its headers."""
        if self.body is None:
            reply = error(self.status)
        elif isinstance(self.body, str | bytes):
            raw = self.body.encode() if isinstance(self.body, str) else self.body
            reply = Reply(self.status, raw, {"Content-Type": HTML_TYPE})
        else:
            reply = Reply.json(self.status, self.body, content_type=json_type)
        reply.headers.update(dict(self.headers))
        return reply


F = TypeVar("F", bound=Fault)


class StandInServer(Generic[F]):
    """Base of an in-process fake HTTP API with fault injection, a request log and an admin API. Thread-safe."""

    #: the fault class ``enqueue_fault`` builds
    fault_type: type[F]
    #: how errors name the server ("stand-in already started")
    label: ClassVar[str] = "stand-in"
    thread_name: ClassVar[str] = "standin"
    server_version: ClassVar[str] = "StandIn/1.0"
    admin_prefix: ClassVar[str] = "/__standin__"
    json_type: ClassVar[str] = JSON_TYPE
    #: the HTTP methods served (others get 501)
    methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST", "DELETE"})
    max_body: ClassVar[int] = 10 * 1024 * 1024
    #: the status and message of the answer to a bad or too large Content-Length
    bad_length: ClassVar[tuple[int, str]] = (413, "Request body too large")
    #: the message prefix of the 500 answer to an exception in the stand-in
    internal_error: ClassVar[str] = "Stand-in internal error"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind to ``host``:``port`` on start (port 0 picks a free one)."""
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._faults: deque[F] = deque()
        self._requests: list[JSONDict] = []
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ── lifecycle ──────────────────────────────────────────────────────

    def start(self) -> Self:
        """Start serving on a daemon thread; returns self."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError(f"{self.label} already started")
            server = _HTTPServer((self.host, self._requested_port), self)
            self._stopping.clear()
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=self.thread_name, daemon=True
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
            raise RuntimeError(f"{self.label} not started")
        return int(server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://host:port`` of the running server (127.0.0.1 when bound to all interfaces)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL clients are given (``root_url`` here)."""
        return self.root_url

    @property
    def admin_url(self) -> str:
        """Admin API base URL, ``root_url`` + ``admin_prefix``."""
        return self.root_url + self.admin_prefix

    # ── test API ───────────────────────────────────────────────────────

    def enqueue_fault(self, kind: str, **options: Any) -> F:
        """Queue a fault ("status", "delay" or "drop") for the next API request it matches (FIFO)."""
        fault = self.fault_type.build(kind, options)
        with self._lock:
            self._faults.append(fault)
        return fault

    @property
    def pending_faults(self) -> list[F]:
        """Faults not yet consumed, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def requests(self) -> list[JSONDict]:
        """Recorded API requests (copies), oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    # ── request handling (for subclasses) ──────────────────────────────

    def _take_fault(self, path: str) -> F | None:
        """Remove and return the first pending fault that matches ``path``."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(path):
                    del self._faults[index]
                    return fault
        return None

    def _apply_fault(self, fault: F | None, serve: Callable[[], Reply]) -> Reply:
        """Drop, answer the fault's status, or ``serve()`` (delayed by a delay fault)."""
        if fault is not None and fault.kind == "drop":
            return Reply.dropped()
        if fault is not None and fault.kind == "status":
            return fault.answer(self._fault_error, self.json_type)
        reply = serve()
        if fault is not None:
            reply.delay = fault.seconds
        return reply

    @staticmethod
    def _outcome(reply: Reply, fault: Fault | None) -> JSONDict:
        """The ``status`` and ``fault`` fields of a request record."""
        return {"status": None if reply.drop else reply.status, "fault": None if fault is None else fault.kind}

    def _record(self, record: JSONDict) -> None:
        """Append a request record."""
        with self._lock:
            self._requests.append(record)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON answer with this stand-in's Content-Type."""
        return Reply.json(status, payload, headers, content_type=self.json_type)

    def _error_reply(self, status: int, message: str) -> Reply:
        """The API's error answer (overridden with the API's error envelope)."""
        return self._json(status, {"error": message})

    def _fault_error(self, status: int) -> Reply:
        """The answer of a "status" fault without a body."""
        return self._error_reply(status, status_phrase(status))

    def _read_body(self, headers: Mapping[str, str], rfile: io.BufferedIOBase) -> bytes:
        """Read the body (Content-Length bytes); ReplyError(``bad_length``) when the length is bad or too large."""
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            raise ReplyError(self._error_reply(*self.bad_length))
        return rfile.read(int(length)) if int(length) else b""

    def _dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Route one request: the admin API under ``admin_prefix``, anything else to ``_serve_api``."""
        url = urlsplit(raw_path)
        try:
            if url.path == self.admin_prefix or url.path.startswith(self.admin_prefix + "/"):
                return self._admin(method, url.path[len(self.admin_prefix) :], body)
            return self._serve_api(Request(method, raw_path, url.path, url.query, headers, body))
        except ReplyError as problem:
            return problem.reply

    def _serve_api(self, request: Request) -> Reply:
        """Answer one API request; may raise ReplyError."""
        raise NotImplementedError

    # ── admin API ──────────────────────────────────────────────────────

    def _admin(self, method: str, sub: str, body: bytes) -> Reply:
        """The admin API: the common endpoints, then ``_admin_route``; ValueError answers 400."""
        route = (method, sub.rstrip("/"))
        try:
            if route == ("GET", "/requests"):
                return self._admin_list(self.requests)
            if route == ("GET", "/faults"):
                return self._admin_list([fault.to_dict() for fault in self.pending_faults])
            if route == ("GET", "/config"):
                return self._json(200, self._admin_config())
            if route == ("POST", "/reset"):
                self.reset()
                return self._json(200, {"ok": True})
            if route == ("POST", "/faults"):
                data = self._admin_json(body)
                fault = self.enqueue_fault(str(data.pop("kind", None)), **data)
                return self._json(201, {"ok": True, "fault": fault.to_dict(), "pending": len(self.pending_faults)})
            reply = self._admin_route(method, sub, body)
        except ValueError as error:
            return self._json(400, {"error": str(error)})
        if reply is not None:
            return reply
        return self._json(404, {"error": f"unknown admin endpoint {method} {self.admin_prefix}{sub}"})

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:  # noqa: ARG002 - a hook
        """A subclass's own admin endpoints (``sub`` as requested); None when none matches."""
        return None

    def _admin_config(self) -> JSONDict:
        """The ``GET config`` answer."""
        return {"base_url": self.base_url}

    def _admin_list(self, items: list[Any] | dict[str, Any]) -> Reply:
        """``{"count": n, "data": items}``."""
        return self._json(200, {"count": len(items), "data": items})

    def _admin_json(self, body: bytes) -> JSONDict:
        """An admin request's JSON object body; ReplyError (400) otherwise."""
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ReplyError(self._json(400, {"error": "body must be JSON"})) from None
        if not isinstance(data, dict):
            raise ReplyError(self._json(400, {"error": "body must be a JSON object"}))
        return data


#: pending connections the local servers queue before the kernel refuses more: 500 senders at once
#: in the full fault profile (with 128, some were reset on a loaded 2-core host); Linux caps it at
#: net.core.somaxconn
LISTEN_BACKLOG = 1024


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its stand-in and keeps quiet about dropped sockets."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 resets connections under a burst

    def __init__(self, address: tuple[str, int], standin: StandInServer[Any]) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else."""
        if isinstance(sys.exception(), OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP/1.1 adapter around ``StandInServer._dispatch``."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    # Headers and body leave in two writes: with Nagle's algorithm on, a reused connection waits
    # for the client's delayed ACK (~40 ms) before the body is sent.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        """The stand-in's ``server_version`` for the Server header."""
        return f"{cast(_HTTPServer, self.server).standin.server_version} {self.sys_version}"

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
        standin = cast(_HTTPServer, self.server).standin
        if method not in standin.methods:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({method!r})")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = standin._read_body(headers, self.rfile)
        except ReplyError as problem:
            reply = problem.reply
            self.close_connection = True
        else:
            try:
                reply = standin._dispatch(method, self.path, headers, body)
            except Exception as exc:  # a stand-in bug: answer 500, never hang the client
                reply = standin._error_reply(500, f"{standin.internal_error}: {exc!r}")
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


def cli_parser(module: str, description: str, port: int) -> argparse.ArgumentParser:
    """An argument parser for ``python -m <module>`` with ``--host`` and ``--port``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help=f"0 picks a free port (default {port})")
    return parser


def serve_main(standin: StandInServer[Any], banner: Callable[[], Iterable[str]]) -> int:
    """Start ``standin``, print ``banner()`` and serve until Ctrl-C / SIGTERM; returns the exit code 0."""
    done = threading.Event()

    def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    standin.start()
    for line in banner():
        print(line, flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0
