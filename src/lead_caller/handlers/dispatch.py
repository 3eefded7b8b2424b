"""Dispatch function: consumes the leads queue and calls Unpod (partial batch failures)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.dispatcher import BatchResult, queued_records
from lead_caller.observability import logger, metrics, tracer
from lead_caller.requeue import settle
from lead_caller.wiring import build_dispatcher, build_sqs

settings = Settings.from_env()
dispatcher = build_dispatcher(settings)
sqs = build_sqs()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLaterError(Exception):
    """Marks a message as failed so SQS redelivers it (or moves it to the DLQ)."""


def report(result: BatchResult, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """The partial batch response: every message the dispatcher wants retried is a failure."""

    def record_handler(record: SQSRecord) -> None:
        reason = result.retry.get(record.message_id)
        if reason is not None:
            raise RetryLaterError(reason)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


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
