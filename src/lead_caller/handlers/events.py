"""Event function: leads from EventBridge (`Lead Created` on the stack's bus; Salesforce change events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.event_intake import EventIntake
from lead_caller.observability import logger, metrics, tracer
from lead_caller.wiring import build_event_intake

settings = Settings.from_env()
events: EventIntake = build_event_intake(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda signature
    """Lambda entry point (asynchronous: an exception means retry, then the dead-letter queue)."""
    return events.handle(event).to_json()
