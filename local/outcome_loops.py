"""The outcome side of the local stack: what AWS runs on a schedule or from a stream.

* the transcript bucket, the stack's event bus and a queue that captures the
  `Call Completed` events through an EventBridge rule (like a user's rule would);
* the poller function, invoked on a timer (in AWS: the OutcomePollSchedule rule);
* the call events function, fed from the leads table's DynamoDB stream like
  Lambda's stream event source mapping (same status filter, in order, a failed
  record and those after it are retried);
* the Unpod sandbox's call simulation, pointed at the local `POST /unpod/calls`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from lead_caller.call_events import DETAIL_TYPE, EVENT_SOURCE, EVENT_STATUSES

LOCAL_AGENT_WEBHOOK_TOKEN = "agt_6d2f9a4c1e8b7f3a5c0d2e4f6a8b1c3d"  # noqa: S105 - the local stack's own token
TRANSCRIPT_BUCKET = "lead-caller-transcripts"
EVENT_BUS = "lead-caller-leads"
CAPTURE_QUEUE = "lead-caller-call-completed-capture"
#: short local timings (the deployed defaults are minutes and hours); --config "env" wins
LOCAL_OUTCOME_ENVIRONMENT = {
    "OUTCOME_POLL_BACKOFF_SECONDS": "4",
    "OUTCOME_POLL_MAX_SECONDS": "8",
    "OUTCOME_HORIZON_SECONDS": "120",
    "RECALL_DELAYS_SECONDS": "1",
    "TRANSCRIPT_BUCKET": TRANSCRIPT_BUCKET,
    "EVENT_BUS_NAME": EVENT_BUS,
}


def with_agent_webhook_token(webhook_secret: Mapping[str, Any]) -> dict[str, Any]:
    """The webhooks secret with an "unpod" agent webhook token (unless it has one)."""
    secret = {key: dict(value) for key, value in webhook_secret.items()}
    secret.setdefault("unpod", {"agent_webhook_token": LOCAL_AGENT_WEBHOOK_TOKEN})
    return secret


#: how often the stream consumer lists the stream's shards again
SHARDS_REFRESH_SECONDS = 10.0


class OutcomeLoops:
    """Creates the outcome resources and runs the poller and the stream consumer on threads."""

    def __init__(
        self,
        client: Callable[[str], Any],
        table_name: str,
        invoke_poller: Callable[[], dict[str, Any]],
        invoke_call_events: Callable[[dict[str, Any]], dict[str, Any]],
        poll_interval: float = 2.0,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.invoke_poller = invoke_poller
        self.invoke_call_events = invoke_call_events
        self.poll_interval = poll_interval
        self.events: list[dict[str, Any]] = []
        self.poller_runs: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._capture_url = ""
        self._stream_arn = ""
        self._shards: list[dict[str, Any]] = []
        self._shards_read_at = -SHARDS_REFRESH_SECONDS
        self._events_lock = threading.Lock()

    def create_resources(self) -> None:
        """Bucket, bus, capture queue and rule; the table's stream must already exist."""
        self.client("s3").create_bucket(Bucket=TRANSCRIPT_BUCKET)
        events, sqs = self.client("events"), self.client("sqs")
        if not any(bus["Name"] == EVENT_BUS for bus in events.list_event_buses().get("EventBuses", [])):
            events.create_event_bus(Name=EVENT_BUS)  # the write-back route may have created it
        self._capture_url = sqs.create_queue(QueueName=CAPTURE_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self._capture_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE]}
        events.put_rule(Name="call-completed-capture", EventBusName=EVENT_BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="call-completed-capture", EventBusName=EVENT_BUS, Targets=[{"Id": "q", "Arn": arn}])
        table = self.client("dynamodb").describe_table(TableName=self.table_name)["Table"]
        self._stream_arn = str(table.get("LatestStreamArn") or "")

    def start(self) -> None:
        """Start the poller timer and the stream consumer."""
        for target, name in ((self._poll_loop, "outcome-poller"), (self._stream_loop, "call-events-stream")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop both loops."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.poll_interval + 5)

    # ---- the scheduled poller --------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poller_runs.append(self.invoke_poller())
            except Exception as error:  # the scheduled invocation failed; the next one goes on
                self.poller_runs.append({"error": type(error).__name__})

    # ---- the stream event source mapping ----------------------------------------------
    def _stream_loop(self) -> None:
        if not self._stream_arn:
            return
        streams = self.client("dynamodbstreams")
        iterators: dict[str, str] = {}
        pending: list[dict[str, Any]] = []
        while not self._stop.is_set():
            try:
                if not pending:
                    pending = self._read(streams, iterators)
                if pending:
                    pending = self._deliver(pending)
            except Exception:  # the embedded AWS is stopping
                if self._stop.is_set():
                    return
            if not pending:
                self._stop.wait(0.3)
            else:
                self._stop.wait(1.0)  # a failed batch is retried after a short delay
            # (the captured events are moved into `events` by whoever reads them: drain_events)

    def _read(self, streams: Any, iterators: dict[str, str]) -> list[dict[str, Any]]:
        """New records of every shard since the last one read (`iterators`: shard -> last sequence number).

        A fresh iterator after the last sequence number each time, rather than the
        NextShardIterator moto returns: that one stops advancing once records arrive while
        the stream is being read, and the outbox would go quiet.
        """
        records: list[dict[str, Any]] = []
        for shard in self._stream_shards(streams):
            shard_id = shard["ShardId"]
            last = iterators.get(shard_id)
            position: dict[str, str] = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
                if last
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            iterator = streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard_id, **position)[
                "ShardIterator"
            ]
            for _ in range(100):  # pages of 100 records
                response = streams.get_records(ShardIterator=iterator, Limit=100)
                page = response.get("Records") or []
                if not page:
                    break
                records.extend(page)
                iterators[shard_id] = str(page[-1]["dynamodb"]["SequenceNumber"])
                iterator = response.get("NextShardIterator") or ""
                if not iterator or len(page) < 100:
                    break
        # The template's FilterCriteria: only items whose new status ends a call attempt.
        return [
            record
            for record in records
            if record.get("eventName") in ("INSERT", "MODIFY")
            and ((record.get("dynamodb") or {}).get("NewImage") or {}).get("status", {}).get("S") in EVENT_STATUSES
        ]

    def _stream_shards(self, streams: Any) -> list[dict[str, Any]]:
        """The stream's shards, described again every SHARDS_REFRESH_SECONDS (not on every read:
        the loop reads every 0.3 s, and an idle stack spent half its CPU on this loop)."""
        now = time.monotonic()
        if now - self._shards_read_at >= SHARDS_REFRESH_SECONDS:
            self._shards = streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
            self._shards_read_at = now
        return self._shards

    def _deliver(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Invoke in batches of 10; returns the records to retry (the first failed one and after)."""
        for start in range(0, len(records), 10):
            batch = records[start : start + 10]
            event = {"Records": [{**record, "eventSource": "aws:dynamodb"} for record in batch]}
            try:
                failures = self.invoke_call_events(event).get("batchItemFailures") or []
            except Exception:
                return records[start:]
            if failures:
                failed = {item["itemIdentifier"] for item in failures}
                first = next(i for i, r in enumerate(batch) if r["dynamodb"].get("SequenceNumber") in failed)
                return records[start + first :]
        return []

    def drain_events(self) -> list[dict[str, Any]]:
        """Move the captured `Call Completed` events into `events`; returns all so far."""
        sqs = self.client("sqs")
        with self._events_lock:
            while True:
                messages = sqs.receive_message(QueueUrl=self._capture_url, MaxNumberOfMessages=10).get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    self.events.append(json.loads(message["Body"]))
                sqs.delete_message_batch(
                    QueueUrl=self._capture_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
            return list(self.events)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `check` until it is true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
