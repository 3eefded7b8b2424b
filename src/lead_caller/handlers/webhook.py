"""Webhook function: `POST /webhooks/{source}` on the HTTP API (payload format 2.0)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.sources.base import Reply, WebhookRequest
from lead_caller.wiring import build_intake

settings = Settings.from_env()
intake = build_intake(settings)
app = APIGatewayHttpResolver()


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


def _response(reply: Reply) -> Response[str]:
    headers = dict(reply.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return Response(status_code=reply.status, content_type=content_type, body=reply.body, headers=headers)


@app.post("/webhooks/<source>")
def receive(source: str) -> Response[str]:
    """Hand the request to the intake for that source."""
    request = webhook_request(app.current_event.raw_event, source, settings.public_base_url)
    return _response(intake.handle(request))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    """Anything but POST /webhooks/{source}."""
    return _response(Reply.json(404, {"error": "not_found", "message": "POST /webhooks/{source} only"}))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def unexpected(error: Exception) -> Response[str]:
    """A bug, never bad input: log it (no payload) and let the sender retry."""
    logger.exception("unexpected error", extra={"error": type(error).__name__})
    return _response(Reply.json(500, {"error": "internal", "message": "unexpected error, retry later"}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return app.resolve(event, context)
