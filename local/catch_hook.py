"""Local stand-in for a Zapier / Make "Catch Hook": receives lead-caller's outbound webhook.

``POST <any path>`` answers like Zapier's catch hook (200 ``{"status": "success",
"attempt", "id", "request_id"}``) and keeps the delivery: headers, JSON body and
whether its Standard Webhooks signature verifies with ``signing_secret`` (the
``standardwebhooks`` package, as a receiver would check it). Faults ("status",
"delay", "drop") make it fail like a busy receiver. Admin API under
``/__standin__/``: ``GET deliveries`` (verified deliveries with their body),
``GET requests``, ``GET|POST faults``, ``GET config``, ``POST reset``.

Run standalone with ``python -m local.catch_hook --port 8769``.
"""

import copy
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from local.standin import Fault, JSONDict, Reply, Request, StandInServer, cli_parser, serve_main

__all__ = ["STANDIN_SIGNING_SECRET", "CatchHookStandIn", "main"]

STANDIN_SIGNING_SECRET = "whsec_Y2F0Y2gtaG9vay1zdGFuZC1pbi1zZWNyZXQtMDE="  # noqa: S105 - a fake secret
HOOK_PATH = "/hooks/catch/123456/abcdef/"


@dataclass(frozen=True, slots=True)
class CatchHookFault(Fault):
    """One queued fault, applied to the next delivery."""


class CatchHookStandIn(StandInServer[CatchHookFault]):
    """Receives signed webhooks on 127.0.0.1 and checks their signatures. Thread-safe."""

    fault_type = CatchHookFault
    label = "catch-hook stand-in"
    thread_name = "catch-hook-standin"
    server_version = "CatchHookStandIn/1.0"

    def __init__(self, signing_secret: str = STANDIN_SIGNING_SECRET, host: str = "127.0.0.1", port: int = 0) -> None:
        """Verify deliveries with ``signing_secret``."""
        super().__init__(host, port)
        self.signing_secret = signing_secret
        self._deliveries: list[JSONDict] = []

    @property
    def hook_url(self) -> str:
        """The URL to configure as `outbound_webhook.url`."""
        return self.root_url + HOOK_PATH

    @property
    def deliveries(self) -> list[JSONDict]:
        """Deliveries answered 2xx (copies): {"webhook_id", "verified", "json", "received"}."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def reset(self) -> None:
        """Forget requests, faults and deliveries."""
        super().reset()
        with self._lock:
            self._deliveries = []

    def _serve_api(self, request: Request) -> Reply:
        fault = self._take_fault(request.path)
        reply = self._apply_fault(fault, lambda: self._accept(request))
        self._record(
            {
                "method": request.method,
                "path": request.path,
                "webhook_id": request.headers.get("webhook-id"),
                **self._outcome(reply, fault),
                "received": datetime.now(UTC).isoformat(),
            }
        )
        return reply

    def verify(self, request: Request) -> bool:
        """Whether the Standard Webhooks signature of a request verifies."""
        try:
            Webhook(self.signing_secret).verify(request.body, dict(request.headers))
        except (WebhookVerificationError, ValueError):
            return False
        return True

    def _accept(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply.json(405, {"status": "error", "message": "POST only"})
        try:
            body: Any = json.loads(request.body)
        except ValueError:
            body = None
        verified = self.verify(request)
        request_id = str(uuid.uuid4())
        with self._lock:
            self._deliveries.append(
                {
                    "webhook_id": request.headers.get("webhook-id"),
                    "verified": verified,
                    "json": body,
                    "received": datetime.now(UTC).isoformat(),
                }
            )
            attempt = str(uuid.uuid4())
        return Reply.json(200, {"attempt": attempt, "id": request_id, "request_id": request_id, "status": "success"})

    def _admin_config(self) -> JSONDict:
        return {"hook_url": self.hook_url, "signing_secret": self.signing_secret}

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:  # noqa: ARG002 - the hook's signature
        if (method, sub.rstrip("/")) == ("GET", "/deliveries"):
            return self._admin_list(self.deliveries)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.catch_hook", "Serve a local catch hook for the outbound webhook.", 8769)
    parser.add_argument("--signing-secret", default=STANDIN_SIGNING_SECRET)
    args = parser.parse_args(argv)
    standin = CatchHookStandIn(args.signing_secret, args.host, args.port)
    return serve_main(
        standin,
        lambda: [
            f"Catch hook: {standin.hook_url}",
            f"  signing secret: {standin.signing_secret}",
            f"  admin API:      {standin.admin_url}/ (deliveries, requests, faults, reset)",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
