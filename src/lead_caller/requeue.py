"""After a batch: retried messages get their delay, given-up ones go to the dead-letter queue.

Lambda's SQS event source leaves a failed message invisible for the queue's visibility
timeout; `ChangeMessageVisibility` on each failed message (before the partial batch
response is returned) makes that the retry schedule's delay instead. A message given up
is copied to the dead-letter queue (reason as a message attribute) and then acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lead_caller.dispatcher import BatchResult
from lead_caller.observability import logger
from lead_caller.retry_schedule import visibility_seconds


def settle(
    sqs: Any,
    queue_url: str,
    dead_letter_queue_url: str,
    records: Sequence[Mapping[str, Any]],
    result: BatchResult,
) -> None:
    """Move given-up messages to the dead-letter queue, then apply the retry delays (in place)."""
    by_id = {str(record["messageId"]): record for record in records}
    for message_id, reason in list(result.dead_letter.items()):
        record = by_id.get(message_id)
        if record is None:
            continue
        try:
            if not dead_letter_queue_url:
                raise RuntimeError("DEAD_LETTER_QUEUE_URL is not set")
            sqs.send_message(
                QueueUrl=dead_letter_queue_url,
                MessageBody=str(record.get("body") or ""),
                MessageAttributes={"lead_caller_reason": {"DataType": "String", "StringValue": reason or "given up"}},
            )
        except Exception as error:  # botocore errors of every kind: leave it to the queue's redrive policy
            logger.warning("dead-letter send failed", extra={"message_id": message_id, "error": type(error).__name__})
            result.retry[message_id] = "to the dead-letter queue (redrive policy)"
            result.delays[message_id] = 0.0
    entries = [
        {
            "Id": str(index),
            "ReceiptHandle": str(by_id[message_id].get("receiptHandle") or ""),
            "VisibilityTimeout": visibility_seconds(delay),
        }
        for index, (message_id, delay) in enumerate(result.delays.items())
        if message_id in result.retry and message_id in by_id and by_id[message_id].get("receiptHandle")
    ]
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        try:
            response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=chunk)
        except Exception as error:  # the message comes back after the queue's visibility timeout instead
            logger.warning("retry delays not applied", extra={"count": len(chunk), "error": type(error).__name__})
            continue
        if response.get("Failed"):
            logger.warning("some retry delays not applied", extra={"count": len(response["Failed"])})
