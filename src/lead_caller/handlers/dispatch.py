"""Dispatch function: consumes the leads queue and calls Unpod (partial batch failures)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.dispatcher import BatchResult, queued_records
from lead_caller.observability import logger, metrics, tracer
from lead_caller.requeue import settle
from lead_caller.wiring import build_dispatcher, build_sqs

settings = Settings.from_env()
dispatcher = build_dispatcher(settings)
sqs = build_sqs()


def report(result: BatchResult, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:  # noqa: ARG001
    """The partial batch response: every message the dispatcher wants retried is a failure.

    Built here rather than with Powertools' batch utility: the dispatcher already decided
    per message, and importing the utility (asyncio, data classes) costs ~40 ms of every
    cold start (`make bench`). The shape is Lambda's `ReportBatchItemFailures` contract.
    """
    failures = [
        {"itemIdentifier": str(record["messageId"])}
        for record in event.get("Records") or []
        if str(record.get("messageId")) in result.retry
    ]
    return {"batchItemFailures": failures}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: dispatch the batch, then report the messages to retry."""
    records = event.get("Records") or []
    if not records:  # Powertools refuses an empty batch; SQS never sends one, a manual invoke might
        return {"batchItemFailures": []}
    result = dispatcher.dispatch(queued_records(records))
    settle(sqs, settings.queue_url, settings.dead_letter_queue_url, records, result)
    return report(result, event, context)
