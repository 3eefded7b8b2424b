"""Poller function (scheduled): reconciles open leads with Unpod and sends due re-calls."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.outcomes import Poller
from lead_caller.wiring import build_poller

settings = Settings.from_env()
poller: Poller = build_poller(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda signature
    """One run; stops early when the invocation is about to time out (the next run goes on)."""
    summary = poller.run(time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    return summary.to_json()
