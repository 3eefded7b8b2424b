"""Outcome function: `POST /unpod/calls`, Unpod's agent webhook (payload format 2.0)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.outcomes import AgentWebhook
from lead_caller.sources.base import Reply
from lead_caller.wiring import build_agent_webhook

settings = Settings.from_env()
webhook: AgentWebhook = build_agent_webhook(settings)
app = APIGatewayHttpResolver()


def _body(event: dict[str, Any]) -> bytes:
    text = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return text.encode()
    return text.encode()


def _response(reply: Reply) -> Response[str]:
    headers = dict(reply.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return Response(status_code=reply.status, content_type=content_type, body=reply.body, headers=headers)


@app.post("/unpod/calls")
def receive() -> Response[str]:
    """Hand the agent webhook's request to the outcome module."""
    event = app.current_event.raw_event
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return _response(webhook.handle(headers, _body(event)))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    """Anything but POST /unpod/calls."""
    return _response(Reply.json(404, {"error": "not_found", "message": "POST /unpod/calls only"}))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def unexpected(error: Exception) -> Response[str]:
    """AWS trouble or a bug, never bad input: log it (no payload) and let Unpod retry."""
    logger.exception("unexpected error", extra={"error": type(error).__name__})
    return _response(Reply.json(500, {"error": "internal", "message": "unexpected error, retry later"}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point."""
    return app.resolve(event, context)
