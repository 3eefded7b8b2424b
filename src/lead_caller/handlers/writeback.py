"""Write-back function: consumes the write-back queue (`Call Completed` events), partial batch failures.

A message whose write-back must be tried again is reported failed and made
invisible for an exponential backoff (30 s, 60 s, ... up to 15 min) instead of the
queue's fixed visibility timeout; on its last receive (WRITEBACK_MAX_RECEIVE_COUNT,
the queue's maxReceiveCount) the failure is recorded in the lead instead.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.wiring import AWS_CONFIG, build_writeback

settings = Settings.from_env()
writeback = build_writeback(settings)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
sqs = boto3.client("sqs", config=AWS_CONFIG)
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 900


class RetryLaterError(Exception):
    """Marks a message as failed so SQS redelivers it (or moves it to the DLQ)."""


def backoff_seconds(receive_count: int) -> int:
    """30 s after the first receive, doubling, at most 15 minutes."""
    return int(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, receive_count - 1)))


def _queue_url(arn: str) -> str | None:
    """https://sqs.<region>.amazonaws.com/<account>/<name> of a queue ARN (None when it is not one)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return None
    return f"{sqs.meta.endpoint_url}/{parts[4]}/{parts[5]}"


def _delay(record: SQSRecord, receive_count: int) -> None:
    """Best effort: a failure here only means the queue's own visibility timeout applies."""
    queue_url = _queue_url(record.event_source_arn or "")
    if queue_url is None:
        return
    try:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=backoff_seconds(receive_count)
        )
    except (BotoCoreError, ClientError) as error:
        logger.warning("Backoff not set", extra={"error": type(error).__name__})


def record_handler(record: SQSRecord) -> None:
    """One `Call Completed` event (the EventBridge envelope is the message body)."""
    try:
        event = json.loads(record.body)
    except ValueError:
        logger.warning("Write-back message is not JSON; dropped", extra={"message_id": record.message_id})
        return
    if not isinstance(event, dict):
        logger.warning("Write-back message is not an object; dropped", extra={"message_id": record.message_id})
        return
    raw_count = (record.raw_event.get("attributes") or {}).get("ApproximateReceiveCount")  # always sent by SQS
    receive_count = int(str(raw_count)) if str(raw_count or "").isdigit() else 1
    result = writeback.handle(event, last_attempt=receive_count >= settings.writeback_max_receive_count)
    if result.retry:
        _delay(record, receive_count)
        raise RetryLaterError("; ".join(result.retry))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: write back every message, report the ones to retry."""
    if not event.get("Records"):
        return {"batchItemFailures": []}
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
