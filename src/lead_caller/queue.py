"""Hands accepted leads to the SQS queue that feeds the dispatcher.

**Sizes.** SQS counts a message's UTF-8 bytes, per message and per
SendMessageBatch call. It allows 1 MiB of each today, but a queue created
before 2025 keeps a `MaximumMessageSize` of 256 KiB until it is raised, and
the dispatcher receives up to 10 messages in one invocation (6 MB at most for
a synchronous payload). So lead-caller budgets 256 KiB (262,144 bytes) for one
lead and for one batch call: batches are split by bytes as well as by count
(10), and a lead whose message alone is larger is not queued but rejected
with a reason naming its largest field (`oversize_problem`). Ordinary leads
are far smaller: a document's texts are capped (contacts.py) at about 14,000
characters; only data a source carries verbatim (e.g. a Pipedrive deal's
custom fields) can grow that large.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_LIMIT = 10
#: SendMessageBatch calls in flight at once: the calling thread and the pool's threads. No more than
#: botocore's default connection pool (10), or the extra connections are opened and thrown away.
MAX_PARALLEL_BATCHES = 10
#: the byte budget of one lead's message and of one SendMessageBatch call (module docstring)
MAX_MESSAGE_BYTES = 262_144
MAX_BATCH_BYTES = 262_144


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One sender pool per container, kept warm between invocations (starting threads costs ~1 ms each)."""
    global _POOL  # a per-process cache, like the boto3 clients
    with _POOL_LOCK:
        if _POOL is None:
            # the calling thread sends a batch too (LeadQueue.send)
            _POOL = ThreadPoolExecutor(max_workers=MAX_PARALLEL_BATCHES - 1, thread_name_prefix="lead-queue")
        return _POOL


class QueueError(Exception):
    """Some leads could not be queued; the sender must retry."""


def message_bytes(message: LeadMessage) -> int:
    """The size SQS counts for a message: its body's UTF-8 bytes."""
    return len(message.to_json().encode("utf-8"))


def oversize_problem(message: LeadMessage, limit: int = MAX_MESSAGE_BYTES) -> str | None:
    """Why the message cannot be queued (too large or too deeply nested), naming the largest field; else None."""
    try:
        size = message_bytes(message)
    except (RecursionError, ValueError):
        return "lead: its data is nested too deeply to be queued"
    if size <= limit:
        return None
    parts: dict[str, Any] = {}
    for group, values in (
        ("document", message.document.to_unpod() if message.document else {}),
        ("routing", message.routing),
        ("enrichment", message.enrichment or {}),
    ):
        for key, value in values.items() if isinstance(values, Mapping) else []:
            parts[f"{group}.{key}"] = value
    sizes = {
        name: len(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")) for name, value in parts.items()
    }
    largest = max(sizes, key=lambda name: sizes[name]) if sizes else "lead"
    return (
        f"{largest}: the lead is {size} bytes once queued, more than the {limit}-byte limit "
        f"({largest} alone is {sizes.get(largest, size)} bytes)"
    )


def batches(
    bodies: Sequence[str], max_count: int = SQS_BATCH_LIMIT, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[int]]:
    """Indexes of `bodies` grouped into SendMessageBatch calls of at most `max_count` and `max_bytes`."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, body in enumerate(bodies):
        size = len(body.encode("utf-8"))
        if current and (len(current) >= max_count or used + size > max_bytes):
            groups.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        groups.append(current)
    return groups


class LeadQueue:
    """Sends lead messages to SQS, up to ten (and 256 KiB) per SendMessageBatch call."""

    def __init__(self, client: SQSClient | Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, messages: Sequence[LeadMessage]) -> None:
        """Queue every message or raise QueueError (messages already sent are deduplicated later).

        Batches go out concurrently: a 100-lead HubSpot delivery costs one
        SendMessageBatch round trip instead of ten, inside the sender's timeout.
        A message over MAX_MESSAGE_BYTES raises QueueError (the intake rejects those first).
        """
        bodies = [message.to_json() for message in messages]
        for body in bodies:
            if len(body.encode("utf-8")) > MAX_MESSAGE_BYTES:
                raise QueueError(f"a message is larger than {MAX_MESSAGE_BYTES} bytes")
        chunks = [[bodies[index] for index in group] for group in batches(bodies)]
        if len(chunks) <= 1 or MAX_PARALLEL_BATCHES <= 1:
            for chunk in chunks:
                self._send_chunk(chunk)
            return
        pool = _pool()
        futures = [pool.submit(self._send_chunk, chunk) for chunk in chunks[1:]]
        try:
            self._send_chunk(chunks[0])  # this thread sends one batch too, instead of only waiting
        finally:
            wait(futures)  # every batch settles before the answer, as with a pool per call
        for future in futures:
            future.result()  # re-raises the first QueueError

    def _send_chunk(self, chunk: Sequence[str]) -> None:
        single = getattr(self.client, "send_message", None)  # boto3 clients have it; some test doubles do not
        if len(chunk) == 1 and single is not None:
            # One lead (most deliveries): SendMessage, no batch envelope nor per-entry failures to read.
            try:
                single(QueueUrl=self.queue_url, MessageBody=chunk[0])
            except Exception as error:  # botocore errors of every kind: network, throttling, auth
                raise QueueError(f"SendMessage failed: {type(error).__name__}") from error
            return
        entries: list[Any] = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(chunk)]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as error:  # botocore errors of every kind: network, throttling, auth
            raise QueueError(f"SendMessageBatch failed: {type(error).__name__}") from error
        failed = response.get("Failed") or []
        if failed:
            codes = ", ".join(sorted({str(item.get("Code")) for item in failed}))
            raise QueueError(f"{len(failed)} of {len(chunk)} messages were not queued ({codes})")
