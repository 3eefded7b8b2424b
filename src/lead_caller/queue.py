"""Hands accepted leads to the SQS queue that feeds the dispatcher."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_LIMIT = 10
MAX_PARALLEL_BATCHES = 10


class QueueError(Exception):
    """Some leads could not be queued; the sender must retry."""


class LeadQueue:
    """Sends lead messages to SQS, ten per SendMessageBatch call."""

    def __init__(self, client: SQSClient | Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, messages: Sequence[LeadMessage]) -> None:
        """Queue every message or raise QueueError (messages already sent are deduplicated later).

        Batches of ten go out concurrently: a 100-lead HubSpot delivery costs one
        SendMessageBatch round trip instead of ten, inside the sender's timeout.
        """
        chunks = [messages[start : start + SQS_BATCH_LIMIT] for start in range(0, len(messages), SQS_BATCH_LIMIT)]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._send_chunk(chunk)
            return
        with ThreadPoolExecutor(max_workers=min(len(chunks), MAX_PARALLEL_BATCHES)) as pool:
            for future in [pool.submit(self._send_chunk, chunk) for chunk in chunks]:
                future.result()  # re-raises the first QueueError

    def _send_chunk(self, chunk: Sequence[LeadMessage]) -> None:
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
