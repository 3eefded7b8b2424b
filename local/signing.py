"""Signs webhook requests the way senders do, for the local stack, tests and `events/`.

Usage (re-sign an API Gateway event for `sam local invoke` or the local stack):

    .venv/bin/python -m local.signing events/hubspot-webhooks-contact-creation.json > /tmp/event.json
    .venv/bin/python -m local.signing events/generic-signed.json --secrets my-webhook-secrets.json
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
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    from standardwebhooks.webhooks import Webhook
except ModuleNotFoundError as missing:  # run with a python that lacks the project's packages
    raise SystemExit(
        f"local.signing needs the project's environment ({missing.name} is missing): "
        "run `make venv`, then `.venv/bin/python -m local.signing ...`"
    ) from None

LOCAL_SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's public test secret
LOCAL_BEARER_TOKEN = "gen_9b2e7c4a1f6d8e3b5a0c2d4f6e8a1b3c"  # noqa: S105 - the sample token of events/, local only
LOCAL_HUBSPOT_CLIENT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # noqa: S105 - HubSpot's documented placeholder
#: the webhook secret document of the local stack (and the default of the re-sign tool)
LOCAL_WEBHOOK_SECRETS: dict[str, dict[str, Any]] = {
    "generic": {"signing_secret": LOCAL_SIGNING_SECRET, "bearer_token": LOCAL_BEARER_TOKEN},
    "hubspot": {
        "client_secret": LOCAL_HUBSPOT_CLIENT_SECRET,
        "api_key": "local-hubspot-api-key",
        "api_key_header": "x-api-key",
        "portal_id": 62515,  # the portal of the samples: workflow and Webhooks API events of a contact share a key
    },
    "pipedrive": {"basic_username": "pd-webhook", "basic_password": "s3cr3t-P@ss:with-colon"},
    "salesforce": {"organization_ids": ["00D5f000005KcCnEAK"]},  # the org of events/salesforce-*.json
    "zoho": {  # the values events/zoho-*.json carry
        "token": "zwh_3c1f8e2a9d4b7c6e5f0a1b2c3d4e5f6a",
        "notification_token": "zc-7f9a1e2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d",
        "channel_id": "1000000068001",
    },
}


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
    from lead_caller.crms.hubspot.webhook import hubspot_uri  # HubSpot's percent-decoding table

    stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    source = method.upper().encode() + hubspot_uri(url).encode() + body + stamp.encode()
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


def sign_request(
    source: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, Any] | None = None,
    timestamp: float | None = None,
) -> dict[str, str]:
    """Fresh authentication headers for a request to /webhooks/<source>, the way its sender makes them.

    `secrets` is the webhook secret document ({"generic": {...}, "hubspot": {...}, ...});
    the local stack's defaults (LOCAL_WEBHOOK_SECRETS) when None. Headers the request does
    not use are left alone: a generic event with a bearer token keeps its token (replaced by
    the configured one), a HubSpot event keeps its signature version.
    """
    secrets = LOCAL_WEBHOOK_SECRETS if secrets is None else secrets
    now = time.time() if timestamp is None else timestamp
    lower = {k.lower(): v for k, v in headers.items()}
    signed = dict(lower)
    credentials = dict(secrets.get(source) or {})
    if source == "hubspot":
        secret = str(credentials.get("client_secret", ""))
        version = lower.get("x-hubspot-signature-version", "").lower()
        if version == "v2":
            signed.update(hubspot_v2_headers(secret, method, url, body))
        elif version == "v1":
            signed.update(hubspot_v1_headers(secret, body))
        if "x-hubspot-signature-v3" in lower or not version:
            signed.update(hubspot_v3_headers(secret, method, url, body, int(now * 1000)))
        if credentials.get("api_key") and credentials.get("api_key_header", "x-api-key").lower() in lower:
            signed[credentials.get("api_key_header", "x-api-key").lower()] = str(credentials["api_key"])
    elif source == "zoho":
        header = str(credentials.get("token_header", "x-zoho-token")).lower()
        if header in lower and credentials.get("token"):
            signed[header] = str(credentials["token"])
    elif source == "pipedrive" or "basic" in lower.get("authorization", "").lower()[:6]:
        signed.update(
            basic_authorization(str(credentials.get("basic_username", "")), str(credentials.get("basic_password", "")))
        )
    elif "webhook-signature" in lower:
        signed.update(
            standard_webhook_headers(str(credentials.get("signing_secret", "")), body, lower.get("webhook-id"), now)
        )
    elif "authorization" in lower and credentials.get("bearer_token"):
        signed["authorization"] = f"Bearer {credentials['bearer_token']}"
    return signed


def resign_event(
    event: dict[str, Any],
    secrets: Mapping[str, Any] | None = None,
    public_url: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """A copy of an API Gateway v2 event with fresh authentication headers and timeEpoch.

    URL-bound signatures (HubSpot) are computed over `public_url` + rawPath, or
    https://<Host header> + rawPath when no public URL is given, as the webhook does.
    """
    signed: dict[str, Any] = json.loads(json.dumps(event))
    body = signed.get("body") or ""
    raw = base64.b64decode(body) if signed.get("isBase64Encoded") else body.encode()
    now = time.time() if timestamp is None else timestamp
    headers = {k.lower(): v for k, v in (signed.get("headers") or {}).items()}
    path = signed.get("rawPath") or "/webhooks/generic"
    query = signed.get("rawQueryString") or ""
    base = (public_url or f"https://{headers.get('host', 'localhost')}").rstrip("/")
    url = base + path + (f"?{query}" if query else "")
    source = path.rstrip("/").rsplit("/", 1)[-1]
    method = str(((signed.get("requestContext") or {}).get("http") or {}).get("method") or "POST")
    signed["headers"] = sign_request(source, method, url, headers, raw, secrets, now)
    signed.setdefault("requestContext", {})["timeEpoch"] = int(now * 1000)
    return signed


def main(argv: list[str] | None = None) -> int:
    """Command line: print the re-signed event."""
    parser = argparse.ArgumentParser(
        description="Re-sign an API Gateway v2 event from events/ with the current time, for sam local invoke "
        "or the local stack."
    )
    parser.add_argument("event", type=Path, help="an event file from events/")
    parser.add_argument(
        "--secrets",
        type=Path,
        help="JSON file of webhook credentials by source, as in the webhook secret "
        '({"hubspot": {"client_secret": ...}}); default: the local stack\'s',
    )
    parser.add_argument("--public-url", help="the base URL the sender signs (default: https://<Host header>)")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())
    secrets = json.loads(args.secrets.read_text()) if args.secrets else None
    json.dump(resign_event(event, secrets, args.public_url), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
