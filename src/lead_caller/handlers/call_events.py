"""Call events function: the leads table's stream -> `Call Completed` on the stack's EventBridge bus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.call_events import CallCompletedPublisher
from lead_caller.config import Settings
from lead_caller.observability import logger, metrics, tracer
from lead_caller.store import dynamo_item
from lead_caller.wiring import build_call_events

settings = Settings.from_env()
publisher: CallCompletedPublisher = build_call_events(settings)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


class EarlierRecordFailedError(Exception):
    """A record after a failed one: retried with it, so events keep their order and are not sent twice."""


def _image(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    return dynamo_item(raw)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Publish one event per record that ends a call attempt; report the first failure (and the rest after it)."""
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    failed = False

    def record_handler(record: DynamoDBRecord) -> None:
        nonlocal failed
        if failed:
            raise EarlierRecordFailedError("an earlier record of this batch failed")
        change = record.raw_event.get("dynamodb") or {}
        try:
            detail = publisher.publish(_image(change.get("OldImage")), _image(change.get("NewImage")))
        except Exception:
            failed = True
            raise
        if detail is not None:
            logger.info(
                "Call Completed published",
                extra={"lead_id": detail["lead_id"], "status": detail["status"], "attempt": detail["call_attempt"]},
            )

    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
