"""Fault matrix, dispatcher side: concurrent dispatchers (as concurrent Lambda invocations) on
moto, the Unpod sandbox over HTTP, and the handler's own requeue step (retry delays, dead letters).

Each case records its figures (see conftest.py) and asserts them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from lead_caller.config import Settings
from lead_caller.contacts import ContactDocument
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.leads import LeadMessage
from lead_caller.requeue import settle
from lead_caller.store import LeadStore
from lead_caller.unpod import UnpodCredentials
from local.unpod_sandbox import UnpodSandbox
from tests.conftest import fast_client

pytestmark = pytest.mark.faults


def contact(record_id: str, index: int = 0) -> ContactDocument:
    return ContactDocument(
        name=f"Lead {record_id}",
        contact_number=f"+1512555{index % 10000:04d}",
        email=f"{record_id}@example.com",
        document_id=f"generic-{record_id}",
    )


def lead(record_id: str, index: int = 0) -> LeadMessage:
    return LeadMessage("generic", record_id, time.time(), contact(record_id, index), {})


_ITEM_LOCK = threading.Lock()


class AtomicItems:
    """A client whose calls are serialised. In-process moto is not thread-safe: it evaluates a
    DynamoDB condition and writes in two Python steps that threads can interleave, and it can hand
    one SQS message to two concurrent receivers. Real DynamoDB applies a conditional write
    atomically per item and SQS hides a received message for its visibility timeout, which this
    restores (the code under test is unchanged)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with _ITEM_LOCK:
                return method(*args, **kwargs)

        return call


def make_dispatcher(
    settings: Settings, sandbox: UnpodSandbox, credentials: UnpodCredentials, **client: Any
) -> Dispatcher:
    """One 'Lambda container': its own boto3 client, Unpod client and dispatcher."""
    store = LeadStore(AtomicItems(boto3.client("dynamodb")), settings.table_name, settings.dedupe_window_seconds)
    return Dispatcher(settings, store, fast_client(sandbox.base_url, **client), lambda: credentials)


def calls_per_document(sandbox: UnpodSandbox) -> Counter[str]:
    return Counter(task["input"]["document_id"] for task in sandbox.created_tasks)


def concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) on `count` threads released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, max_receive_count=1000, unpod_requests_per_second=0)


def test_duplicate_storm(fault_settings, sandbox, credentials, record_figure):
    dispatchers = [make_dispatcher(fault_settings, sandbox, credentials) for _ in range(10)]
    same = lead("storm-same")
    delivery = QueuedRecord(str(uuid.uuid4()), same.to_json(), 1)
    concurrently(10, lambda i: dispatchers[i].dispatch([delivery]))
    renewed = lead("storm-new-ids")
    concurrently(10, lambda i: dispatchers[i].dispatch([QueuedRecord(str(uuid.uuid4()), renewed.to_json(), 1)]))

    calls = calls_per_document(sandbox)
    same_calls, new_calls = calls["generic-storm-same"], calls["generic-storm-new-ids"]
    record_figure("duplicate storm", "calls, one delivery x10 at once", same_calls, "1", same_calls == 1)
    record_figure("duplicate storm", "calls, 10 delivery ids at once", new_calls, "1", new_calls == 1)
    assert (same_calls, new_calls) == (1, 1)


def test_timeout_after_unpod_accepted_with_many_newer_runs(fault_settings, sandbox, credentials, record_figure):
    dispatcher = make_dispatcher(fault_settings, sandbox, credentials, read_timeout=0.3)
    sandbox.enqueue_fault("delay", seconds=1.0)  # the task is created, the answer is lost
    message = lead("accepted-then-timeout")
    first = QueuedRecord(str(uuid.uuid4()), message.to_json(), 1)
    assert first.message_id in dispatcher.dispatch([first]).retry
    others = fast_client(sandbox.base_url)  # 150 newer runs in the space, one lead each (other dispatches)
    for i in range(150):
        document = contact(f"newer-{i}", i).to_unpod()
        assert others.create_task(credentials, [document], "newer leads", {"type": "now"}).kind == "accepted"

    result = dispatcher.dispatch([dataclasses.replace(first, receive_count=2)])

    second_calls = calls_per_document(sandbox)["generic-accepted-then-timeout"] - 1
    record_figure("timeout after acceptance", "second calls (150 newer runs)", second_calls, "0", second_calls == 0)
    assert result.retry == {}
    assert second_calls == 0
    assert (dispatcher.store.get(message.lead_id) or {}).get("reconciled") is True


def test_crash_between_unpods_success_and_the_dynamodb_write(fault_settings, sandbox, credentials, record_figure):
    dispatcher = make_dispatcher(fault_settings, sandbox, credentials)
    original = dispatcher.store.mark_many_call_requested  # the dispatcher records accepted calls in batches

    def crash(*_args: Any, **_kwargs: Any) -> list[bool]:
        raise RuntimeError("the function died")

    dispatcher.store.mark_many_call_requested = crash  # type: ignore[method-assign]
    message = lead("crash-after-success")
    first = QueuedRecord(str(uuid.uuid4()), message.to_json(), 1)
    with pytest.raises(RuntimeError):
        dispatcher.dispatch([first])  # Lambda reports the whole batch failed: SQS redelivers
    dispatcher.store.mark_many_call_requested = original  # type: ignore[method-assign]

    result = dispatcher.dispatch([dataclasses.replace(first, receive_count=2)])

    second_calls = calls_per_document(sandbox)["generic-crash-after-success"] - 1
    record_figure("crash after Unpod's success", "second calls", second_calls, "0", second_calls == 0)
    assert result.retry == {}
    assert second_calls == 0


def event_source(
    settings: Settings,
    sandbox: UnpodSandbox,
    credentials: UnpodCredentials,
    workers: int,
    messages: list[LeadMessage],
    timeout: float,
) -> None:
    """Lambda's SQS event source in miniature: `workers` concurrent pollers, each its own
    dispatcher, with the handler's requeue step; returns when every message is done.

    The burst is queued in waves of at most 1,000 waiting messages: in-process moto's queue
    slows down with thousands of visible messages, which would measure moto, not the pace.
    """
    expected = len(messages)
    stop = threading.Event()
    done = Counter[str]()
    lock = threading.Lock()

    def poll() -> None:
        sqs: Any = AtomicItems(boto3.client("sqs"))
        dispatcher = make_dispatcher(settings, sandbox, credentials)
        while not stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=settings.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                time.sleep(0.1)
                continue
            records: list[dict[str, Any]] = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                }
                for m in messages
            ]
            queued = [
                QueuedRecord(r["messageId"], r["body"], int(r["attributes"].get("ApproximateReceiveCount", 1)))
                for r in records
            ]
            result = dispatcher.dispatch(queued)
            settle(sqs, settings.queue_url, settings.dead_letter_queue_url, records, result)
            finished = [r for r in records if r["messageId"] not in result.retry]
            if finished:
                sqs.delete_message_batch(
                    QueueUrl=settings.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(finished)],
                )
                with lock:
                    done["leads"] += len(finished)

    producer: Any = AtomicItems(boto3.client("sqs"))
    sent = 0

    def top_up() -> int:
        count = sent
        while count < expected and count - done["leads"] < 1000:
            chunk = messages[count : count + 10]
            entries = [{"Id": str(j), "MessageBody": m.to_json()} for j, m in enumerate(chunk)]
            producer.send_message_batch(QueueUrl=settings.queue_url, Entries=entries)
            count += len(chunk)
        return count

    sent = top_up()
    threads = [threading.Thread(target=poll, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and done["leads"] < expected:
        sent = top_up()
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


def test_paced_burst(fault_settings, aws, sandbox, credentials, record_figure, faults_profile):
    # quick: a burst four workers send faster than 2/s (12 Create Task requests), so the ceiling
    # is what paces it (300 leads at 10/s never reached the ceiling: at most 4 requests in a second)
    leads, rate, workers = (120, 2, 4) if faults_profile == "quick" else (10_000, 5, 6)
    settings = dataclasses.replace(
        fault_settings,
        unpod_requests_per_second=rate,
        pacing_max_wait_seconds=1.0,
        dead_letter_queue_url=aws.dlq_url,
    )
    sandbox.rate_limit_per_second = rate
    messages = [lead(f"burst-{i}", i) for i in range(leads)]

    event_source(settings, sandbox, credentials, workers, messages, timeout=60 if faults_profile == "quick" else 1500)

    per_second = Counter(int(request["received_epoch"]) for request in sandbox.requests)
    calls = calls_per_document(sandbox)
    observed = max(per_second.values())
    doubled = sum(1 for n in calls.values() if n > 1)
    throttled = sum(1 for r in sandbox.requests if r["status"] == 429)
    case = "paced burst"
    record_figure(case, f"max Create Task requests/s (limit {rate}/s)", observed, f"<= {rate}", observed <= rate)
    record_figure(
        case,
        "seconds at the limit (the pacer was what held it)",
        list(per_second.values()).count(rate),
        "> 0",
        rate in per_second.values(),
    )
    record_figure(case, f"leads called, of {leads}", len(calls), str(leads), len(calls) == leads)
    record_figure(case, "leads called more than once", doubled, "0", doubled == 0)
    record_figure(case, "429 answers (deferred by Retry-After)", throttled, "0", throttled == 0)
    assert observed <= rate
    assert observed == rate  # the burst reached the ceiling: the property was tested, not just met
    assert len(calls) == leads
    assert doubled == 0
