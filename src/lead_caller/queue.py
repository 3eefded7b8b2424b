"""Hands accepted leads to the SQS queue that feeds the dispatcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_LIMIT = 10


class QueueError(Exception):
    """Some leads could not be queued; the sender must retry."""


class LeadQueue:
    """Sends lead messages to SQS, ten per SendMessageBatch call."""

    def __init__(self, client: SQSClient | Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, messages: Sequence[LeadMessage]) -> None:
        """Queue every message or raise QueueError (messages already sent are deduplicated later)."""
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            entries: list[Any] = [
                {"Id": str(index), "MessageBody": message.to_json()} for index, message in enumerate(chunk)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as error:  # botocore errors of every kind: network, throttling, auth
                raise QueueError(f"SendMessageBatch failed: {type(error).__name__}") from error
            failed = response.get("Failed") or []
            if failed:
                codes = ", ".join(sorted({str(item.get("Code")) for item in failed}))
                raise QueueError(f"{len(failed)} of {len(chunk)} messages were not queued ({codes})")
