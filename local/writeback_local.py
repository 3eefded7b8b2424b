"""The write-back path of the local stack: bus rule -> write-back queue -> WritebackFunction, in-process.

moto's EventBridge delivers `put_events` to SQS targets, so the local stack uses
the real route: `WritebackRoute.start()` creates (on the embedded AWS) the
stack's bus if nobody did yet, the write-back queue and its DLQ, and the
`Call Completed` rule with the queue as target, all from template.yaml; a
poller then feeds the queue to the write-back handler like Lambda's SQS event
source mapping (failed messages come back after a short delay instead of the
deployed backoff). `print_writebacks` shows what the CRM stand-ins and the
catch hook received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from local.resources import load_template, parameter_defaults

BUS_NAME = "lead-caller-leads"  # the template's ${AWS::StackName}-leads for the stack name lead-caller
QUEUE_NAME = "lead-caller-writeback"
DLQ_NAME = "lead-caller-writeback-dlq"
#: write-back switched on for every CRM that has a stand-in (make run); --config "env" may override
LOCAL_WRITEBACK = {"hubspot": {"outcome_property": "lc_call_outcome"}, "pipedrive": {}, "salesforce": {}, "zoho": {}}


class WritebackRoute:
    """The rule, queue and poller of the write-back path on the embedded AWS."""

    def __init__(
        self,
        client: Callable[[str], Any],
        invoke: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        retry_delay_seconds: int = 2,
        poll_wait_seconds: int = 1,
        bus_name: str = BUS_NAME,
    ) -> None:
        """`client(service)` gives boto3 clients of the embedded AWS; `invoke(event)` runs the handler."""
        self.client = client
        self.invoke = invoke
        self.retry_delay_seconds = retry_delay_seconds
        self.poll_wait_seconds = poll_wait_seconds
        self.bus_name = bus_name
        self.queue_url = ""
        self.queue_arn = ""
        self.log: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WritebackRoute:
        """Create bus (if missing), queues and rule as template.yaml defines them; start polling."""
        template = load_template()
        resources = template["Resources"]
        events, sqs = self.client("events"), self.client("sqs")
        if not any(bus["Name"] == self.bus_name for bus in events.list_event_buses().get("EventBuses", [])):
            events.create_event_bus(Name=self.bus_name)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = resources["WritebackQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        if isinstance(redrive, dict):
            redrive = parameter_defaults(template)[redrive["Ref"]]
        self.queue_url = sqs.create_queue(
            QueueName=QUEUE_NAME,
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(redrive)})},
        )["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        rule = resources["CallCompletedWritebackRule"]["Properties"]
        events.put_rule(
            Name="call-completed-writeback", EventBusName=self.bus_name, EventPattern=json.dumps(rule["EventPattern"])
        )
        events.put_targets(
            Rule="call-completed-writeback",
            EventBusName=self.bus_name,
            Targets=[{"Id": "writeback", "Arn": self.queue_arn}],
        )
        self._thread = threading.Thread(target=self._poll, name="writeback-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_wait_seconds + 5)

    def put(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Put a `Call Completed` event on the bus, as the outcome paths do."""
        response: dict[str, Any] = self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.bus_name,
                    "Source": "lead-caller",
                    "DetailType": "Call Completed",
                    "Detail": json.dumps(dict(detail)),
                }
            ]
        )
        return response

    def depth(self) -> int:
        """Messages waiting or in flight on the write-back queue."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return sum(int(found.get(name, 0)) for name in names)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once the queue is empty and nothing is being processed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.depth() == 0 and not self._busy.is_set():
                return True
            time.sleep(0.1)
        return False

    def _poll(self) -> None:
        from local.stack import sqs_event

        sqs = self.client("sqs")
        while not self._stop.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.poll_wait_seconds,
                    AttributeNames=["All"],
                )
            except Exception:  # the embedded AWS is stopping
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            messages = received.get("Messages") or []
            if not messages:
                continue
            self._busy.set()
            try:
                try:
                    response = self.invoke(sqs_event(messages, self.queue_arn))
                    failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
                except Exception:  # a crashed invocation: the whole batch comes back
                    failed = {message["MessageId"] for message in messages}
                self.log.append({"messages": len(messages), "failed": len(failed)})
                for message in messages:
                    if message["MessageId"] in failed:
                        sqs.change_message_visibility(
                            QueueUrl=self.queue_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=self.retry_delay_seconds,
                        )
                    else:
                        sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            finally:
                self._busy.clear()


def written(stack: Any) -> dict[str, Any]:
    """What each CRM stand-in and the catch hook received through write-back."""
    found: dict[str, Any] = {}
    if getattr(stack, "hubspot_api", None) is not None:
        found["hubspot notes"] = stack.hubspot_api.notes
    if getattr(stack, "pipedrive_api", None) is not None:
        found["pipedrive notes"] = stack.pipedrive_api.notes
        found["pipedrive activities"] = stack.pipedrive_api.activities
    if getattr(stack, "salesforce_api", None) is not None:
        found["salesforce tasks"] = stack.salesforce_api.tasks
    if getattr(stack, "zoho_api", None) is not None:
        found["zoho notes"] = stack.zoho_api.notes
    if getattr(stack, "catch_hook", None) is not None:
        found["catch hook deliveries"] = stack.catch_hook.deliveries
    return found


def print_writebacks(
    stack: Any, say: Callable[[str], None] = print, detail: Callable[[str], None] | None = None
) -> None:
    """One line with what the stand-ins received through write-back; the items themselves to `detail`."""
    detail = detail or say
    found = written(stack)
    say("=== write-backs: " + ", ".join(f"{name} {len(items)}" for name, items in found.items()))
    for name, items in found.items():
        if items:
            detail(f"--- {name}\n{json.dumps(items, indent=2, default=str)}")
