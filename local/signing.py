"""Signs webhook requests the way senders do, for the local stack, tests and `events/`.

Usage (re-sign an API Gateway event for `sam local invoke` or the local stack):

    python -m local.signing events/generic-signed.json --secret whsec_... > /tmp/event.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

LOCAL_SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's public test secret
LOCAL_BEARER_TOKEN = "gen_9b2e7c4a1f6d8e3b5a0c2d4f6e8a1b3c"  # noqa: S105 - the sample token of events/, local only


def standard_webhook_headers(
    secret: str, body: bytes, msg_id: str | None = None, timestamp: float | None = None
) -> dict[str, str]:
    """The webhook-id/-timestamp/-signature headers for `body` (Standard Webhooks v1)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def hubspot_v3_headers(
    client_secret: str, method: str, url: str, body: bytes, timestamp_ms: int | None = None
) -> dict[str, str]:
    """X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp, as HubSpot computes them.

    base64(HMAC-SHA256(client secret, method + URL + body + timestamp)); HubSpot signs the
    URL with some percent-escapes decoded, the same ones the verifier decodes.
    """
    stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    source = method.upper().encode() + url.encode() + body + stamp.encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return {"x-hubspot-signature-v3": base64.b64encode(digest).decode(), "x-hubspot-request-timestamp": stamp}


def hubspot_v2_headers(client_secret: str, method: str, url: str, body: bytes) -> dict[str, str]:
    """The v2 signature of workflow webhooks: hex SHA-256(client secret + method + URL + body)."""
    digest = hashlib.sha256(client_secret.encode() + method.upper().encode() + url.encode() + body).hexdigest()
    return {"x-hubspot-signature": digest, "x-hubspot-signature-version": "v2"}


def hubspot_v1_headers(client_secret: str, body: bytes) -> dict[str, str]:
    """The legacy v1 signature of the Webhooks API: hex SHA-256(client secret + body)."""
    return {
        "x-hubspot-signature": hashlib.sha256(client_secret.encode() + body).hexdigest(),
        "x-hubspot-signature-version": "v1",
    }


def basic_authorization(username: str, password: str) -> dict[str, str]:
    """An HTTP Basic Authorization header (Pipedrive, Zapier, Make)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def resign_event(event: dict[str, Any], secret: str, timestamp: float | None = None) -> dict[str, Any]:
    """A copy of an API Gateway v2 event with fresh Standard Webhooks headers and timeEpoch."""
    signed: dict[str, Any] = json.loads(json.dumps(event))
    body = signed.get("body") or ""
    raw = body.encode()
    if signed.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    now = time.time() if timestamp is None else timestamp
    headers = {k.lower(): v for k, v in (signed.get("headers") or {}).items()}
    headers.update(standard_webhook_headers(secret, raw, headers.get("webhook-id"), now))
    signed["headers"] = headers
    signed.setdefault("requestContext", {})["timeEpoch"] = int(now * 1000)
    return signed


def main(argv: list[str] | None = None) -> int:
    """Command line: print the re-signed event."""
    parser = argparse.ArgumentParser(description="Re-sign an API Gateway v2 event with the current time.")
    parser.add_argument("event", type=Path, help="an event file from events/")
    parser.add_argument("--secret", default=LOCAL_SIGNING_SECRET, help="the source's whsec_ signing secret")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())
    json.dump(resign_event(event, args.secret), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
