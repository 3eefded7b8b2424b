"""The outbound "call completed" webhook for no-code tools (Zapier / Make "Catch Hook", n8n, any URL).

Configured in the CRM secret: `"outbound_webhook": {"url": "https://hooks.zapier.com/...",
"signing_secret": "whsec_..."}` (the URL of a catch hook is itself a credential, so it
lives in the secret, not in a template parameter, and is never logged).

Signed with Standard Webhooks (the `standardwebhooks` package, the same algorithm the
generic source verifies): headers `webhook-id` (`msg_<task id>`, the same on every
retry so receivers can drop duplicates), `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`). Body:
`{"type": "call.completed", "timestamp": "...", "data": <the Call Completed detail>}`
(no phone number, email or transcript). 2xx = delivered; 408/409/425/429/5xx and
network trouble = transient (the shared retry policy, then the write-back queue's
backoff and DLQ); 410 and other 4xx = permanent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from lead_caller.crms.callnote import CallNote, JsonHttp, WriteResult
from lead_caller.observability import logger

EVENT_TYPE = "call.completed"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def configured(credentials: Mapping[str, Any]) -> bool:
    """Whether the CRM secret's `outbound_webhook` names a URL (the opt-in)."""
    return bool(str(credentials.get("url") or "").strip())


def message_id(note: CallNote) -> str:
    """The Standard Webhooks message id: stable per task."""
    return f"msg_{note.task_id}"


def payload(detail: Mapping[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """The JSON body sent."""
    stamp = occurred_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"type": EVENT_TYPE, "timestamp": stamp, "data": dict(detail)}


class OutboundWebhook:
    """Signs and POSTs the call-completed notification."""

    def __init__(self, http: JsonHttp | None = None, clock: Any = None) -> None:
        self.http = http or JsonHttp(read_timeout=10.0)
        self.clock = clock or (lambda: datetime.now(UTC))

    def deliver(
        self, credentials: Mapping[str, Any], note: CallNote, detail: Mapping[str, Any], occurred_at: datetime
    ) -> WriteResult:
        """POST the signed notification; never raises for HTTP or network trouble."""
        url = str(credentials.get("url") or "").strip()
        parts = urlsplit(url)
        if (
            not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK))
            or not parts.netloc
        ):
            return WriteResult("permanent", "outbound_webhook.url must be an https URL")
        secret = str(credentials.get("signing_secret") or "").strip()
        try:
            signer = Webhook(secret)
        except Exception:  # the package raises several kinds for a bad secret
            return WriteResult(
                "permanent", "outbound_webhook.signing_secret must be a whsec_... Standard Webhooks secret"
            )
        body = json.dumps(payload(detail, occurred_at), separators=(",", ":"))
        msg_id = message_id(note)
        now = self.clock()
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body),
            "Content-Type": "application/json",
        }
        response = self.http.send("POST", url, headers, raw=body, label="outbound webhook")
        if response.ok:
            return WriteResult("done", "", msg_id)
        logger.warning("Outbound webhook not delivered", extra={"http_status": response.status})
        if response.transient or response.status in _RETRYABLE_4XX:
            return WriteResult("transient", response.message)
        return WriteResult("permanent", response.message)
