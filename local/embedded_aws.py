"""The embedded AWS of `make run`, the tests and `make bench`: moto's server app on loopback HTTP.

moto's own `ThreadedMotoServer` serves its app with werkzeug's development server, which
closes the connection after every response (werkzeug: "Always close the connection") and
starts a thread per connection: each AWS request paid a new TCP connection and a new thread,
~0.5 ms of CPU that AWS's keep-alive HTTPS does not cost. Here the same app runs under waitress,
a production WSGI server with HTTP/1.1 keep-alive, TCP_NODELAY and a thread pool: measured with
SendMessage + GetItem pairs, 2.1 ms of CPU per request instead of 2.6-2.7 ms.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

#: threads answering requests: long polls (ReceiveMessage with WaitTimeSeconds) hold one each
THREADS = 16
#: open connections at once: every boto3 client keeps a pool of up to 10
CONNECTION_LIMIT = 1000


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
        app = DomainDispatcherApplication(create_backend_app)
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
