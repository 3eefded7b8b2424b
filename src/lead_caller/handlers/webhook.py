"""Webhook function: `POST /webhooks/{source}` on the HTTP API (payload format 2.0).

The one route is matched here rather than by Powertools' `APIGatewayHttpResolver`:
importing the event handler package costs ~80 ms of every cold start (it pulls in
asyncio, pydantic-free data classes and every resolver), measured with `make bench`,
for a single route whose answer is already built by the intake (`Reply`).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.sources.base import Reply, WebhookRequest
from lead_caller.wiring import build_intake

settings = Settings.from_env()
intake = build_intake(settings)
_ROUTE = re.compile(r"^/webhooks/([^/]+)/?$")


def webhook_request(event: dict[str, Any], source: str, public_base_url: str | None) -> WebhookRequest:
    """The raw request of an API Gateway v2 event: exact body bytes, lower-case headers, public URL."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    body_text = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body_text, validate=True)
        except (binascii.Error, ValueError):
            body = body_text.encode("utf-8", "surrogatepass")
    else:
        body = body_text.encode("utf-8", "surrogatepass")  # a lone surrogate stays bad input (4xx), not a 500
    path = event.get("rawPath") or f"/webhooks/{source}"
    query = event.get("rawQueryString") or ""
    context = event.get("requestContext") or {}
    base = public_base_url or f"https://{headers.get('host') or context.get('domainName', 'localhost')}"
    return WebhookRequest(
        source=source,
        method=str((context.get("http") or {}).get("method") or "POST").upper(),
        path=path,
        query=query,
        headers=headers,
        body=body,
        public_url=base + path + (f"?{query}" if query else ""),
        received_at=float(context.get("timeEpoch") or time.time() * 1000) / 1000,
    )


def _response(reply: Reply) -> dict[str, Any]:
    """The payload-2.0 response of a Reply (API Gateway sends `body` as is)."""
    headers = dict(reply.headers)
    headers["Content-Type"] = headers.pop("Content-Type", "application/json")
    return {"statusCode": reply.status, "headers": headers, "body": reply.body, "isBase64Encoded": False}


def route(event: dict[str, Any]) -> str | None:
    """The source of `POST /webhooks/{source}`, or None for any other method or path."""
    context = event.get("requestContext") or {}
    method = str((context.get("http") or {}).get("method") or "").upper()
    match = _ROUTE.match(str(event.get("rawPath") or ""))
    if method != "POST" or match is None:
        return None
    parameters = event.get("pathParameters") or {}
    return str(parameters.get("source") or match.group(1))


def receive(event: dict[str, Any]) -> dict[str, Any]:
    """Hand the request to the intake for its source; 404 JSON for anything else; 500 JSON for a bug."""
    source = route(event)
    if source is None:
        return _response(Reply.json(404, {"error": "not_found", "message": "POST /webhooks/{source} only"}))
    try:
        return _response(intake.handle(webhook_request(event, source, settings.public_base_url)))
    except Exception as error:  # a bug, never bad input: log it (no payload) and let the sender retry
        logger.exception("unexpected error", extra={"error": type(error).__name__})
        return _response(Reply.json(500, {"error": "internal", "message": "unexpected error, retry later"}))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda signature
    """Lambda entry point."""
    # API Gateway's request id, the key Powertools' `correlation_paths.API_GATEWAY_HTTP` names, read
    # directly: its JMESPath search cost ~5 us of every request in a loop and ~15-20 us next to a
    # real send (docs/performance.md), for one fixed dictionary path.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    return receive(event)
