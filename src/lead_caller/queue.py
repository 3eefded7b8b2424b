"""Hands accepted leads to the SQS queue that feeds the dispatcher."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_LIMIT = 10
MAX_PARALLEL_BATCHES = 10


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One sender pool per container, kept warm between invocations (starting threads costs ~1 ms each)."""
    global _POOL  # a per-process cache, like the boto3 clients
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=MAX_PARALLEL_BATCHES, thread_name_prefix="lead-queue")
        return _POOL


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
        if MAX_PARALLEL_BATCHES <= 1:
            for chunk in chunks:
                self._send_chunk(chunk)
            return
        pool = _pool()
        futures = [pool.submit(self._send_chunk, chunk) for chunk in chunks]
        wait(futures)  # every batch settles before the answer, as with a pool per call
        for future in futures:
            future.result()  # re-raises the first QueueError

    def _send_chunk(self, chunk: Sequence[LeadMessage]) -> None:
        single = getattr(self.client, "send_message", None)  # boto3 clients have it; some test doubles do not
        if len(chunk) == 1 and single is not None:
            # One lead (most deliveries): SendMessage, no batch envelope nor per-entry failures to read.
            try:
                single(QueueUrl=self.queue_url, MessageBody=chunk[0].to_json())
            except Exception as error:  # botocore errors of every kind: network, throttling, auth
                raise QueueError(f"SendMessage failed: {type(error).__name__}") from error
            return
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
