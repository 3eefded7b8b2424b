"""The embedded AWS of `make run`, the tests and `make bench`: moto's server app on loopback HTTP.

moto's own `ThreadedMotoServer` serves its app with werkzeug's development server, which
closes the connection after every response (werkzeug: "Always close the connection") and
starts a thread per connection: each AWS request paid a new TCP connection and a new thread,
~0.5 ms of CPU that AWS's keep-alive HTTPS does not cost. Here the same app runs under waitress,
a production WSGI server with HTTP/1.1 keep-alive, TCP_NODELAY and a thread pool: measured with
SendMessage + GetItem pairs, 2.1 ms of CPU per request instead of 2.6-2.7 ms.

moto's backends hold no locks: two requests at once can interleave inside one (a Scan copying
an item while an UpdateItem adds an attribute fails with "dictionary changed size during
iteration"; two conditional claims of one item can both pass their condition). AWS applies each
request atomically, so the server here answers one request at a time (`OneRequestAtATime`),
except a ReceiveMessage, which may wait up to 20 s for a message another request sends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

#: threads answering requests: long polls (ReceiveMessage with WaitTimeSeconds) hold one each
THREADS = 16
#: open connections at once: every boto3 client keeps a pool of up to 10
CONNECTION_LIMIT = 1000


#: the one request that may wait for another (SQS long polling); JSON and query protocols
_LONG_POLL_TARGET = "AmazonSQS.ReceiveMessage"
_LONG_POLL_ACTION = b"Action=ReceiveMessage"


class OneRequestAtATime:
    """WSGI middleware: the wrapped app serves one request at a time, like AWS applies each
    request atomically; a ReceiveMessage runs beside them (it can long-poll for a message)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._may_wait(environ):
            return self._app(environ, start_response)
        with self._lock:
            # the whole answer is produced under the lock (moto builds it before returning)
            answer = self._app(environ, start_response)
            try:
                return list(answer)
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()

    @staticmethod
    def _may_wait(environ: dict[str, Any]) -> bool:
        if environ.get("HTTP_X_AMZ_TARGET") == _LONG_POLL_TARGET:
            return True
        if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
            return False
        # the query protocol names the action in the body: read it, and hand the app a copy
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        return _LONG_POLL_ACTION in body


def cache_moto_module_list() -> None:
    """moto's server looks for a request's backend among its package's folders by listing them
    again (one `stat` per folder, ~170) for every request; they do not change while it runs."""
    import moto.backends

    if getattr(moto.backends, "_modules_cached", False):
        return
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: iter(modules)
    moto.backends._modules_cached = True  # type: ignore[attr-defined]


class EmbeddedAwsServer:
    """moto's server app on 127.0.0.1 (port 0: a free one), in a thread of this process.

    The interface of moto's `ThreadedMotoServer`: `start()`, `get_host_and_port()`, `stop()`.
    """

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        self._ip_address = ip_address
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen (raises OSError when the port is taken) and serve in a daemon thread."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from waitress.server import create_server

        cache_moto_module_list()
        logging.getLogger("waitress").setLevel(logging.ERROR)  # "task queue depth" notes under bursts
        app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = create_server(
            app,
            host=self._ip_address,
            port=self._port,
            threads=THREADS,
            connection_limit=CONNECTION_LIMIT,
            ident="lead-caller embedded AWS",
            clear_untrusted_proxy_headers=True,
        )
        self._thread = threading.Thread(target=self._server.run, name="embedded-aws", daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        """Where it listens."""
        assert self._server is not None, "start() first"
        return self._ip_address, int(self._server.effective_port)

    def stop(self) -> None:
        """End the worker threads, then waitress's loop, then close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        # Workers first: each finishes its request, none writes to a closed connection. Then the
        # loop: an empty map ends it (woken by its trigger); sockets are closed only once it has
        # stopped polling them (closing them under a running poll fails it with EBADF).
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        channels = dict(server._map)
        server._map.clear()
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger()
        if self._thread is not None:
            self._thread.join(timeout=3)
        for channel in channels.values():
            with contextlib.suppress(OSError):  # already closed
                channel.close()
