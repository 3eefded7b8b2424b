"""Write-back: a `Call Completed` event becomes a note/task in the lead's CRM and an outbound webhook.

Off the critical path: an EventBridge rule puts every `Call Completed` event of the
stack's bus on the write-back queue; the WritebackFunction (handlers/writeback.py)
runs `Writeback.handle` per message. Nothing here touches a lead's `status` or
outcome fields; a write-back that fails is recorded and never holds up or
changes the outcome.

Two channels per event, each idempotent per Unpod task and recorded in the lead item:

* `writeback` (the CRM note/task), for sources listed in WRITEBACK (config.py):
  `done` | `failed: <reason>` | `skipped` (the source has no write-back or is not opted in);
* `webhook_delivery` (the signed outbound webhook, outbound.py), when the CRM secret
  has `outbound_webhook.url`: `done` | `failed: <reason>`.

Per channel and task (`WritebackState`): a conditional UpdateItem takes a lease
(`<channel>_lease_task`, `<channel>_lease_until`) unless the task is already in
`<channel>_settled` (a string set) or another attempt holds an unexpired lease;
the CRM call runs; a second conditional UpdateItem records the status, adds the
task to the settled set and drops the lease. A transient failure gives the lease
back (keeping `_lease_task`) and the message is retried with backoff; on its
last receive the failure is recorded as `failed`. When the lease names the same
task as before, an earlier attempt may have written the note and died before
recording it: that attempt looks for a note carrying the task's marker first
(docs/writeback.md explains the window that remains).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from lead_caller.config import Settings
from lead_caller.crms.callnote import CallNote, CrmRecord, CrmWriter, WriteResult
from lead_caller.observability import logger, metrics, redact
from lead_caller.outbound import OutboundWebhook, configured
from lead_caller.store import dynamo_item, dynamo_values, iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Channel = Literal["writeback", "webhook_delivery"]
EVENT_DETAIL_TYPE = "Call Completed"
MAX_REASON = 300


@dataclass(frozen=True)
class Lease:
    """The result of trying to take a channel's lease for a task.

    kind: claimed (go ahead), settled (already done/failed/skipped: nothing to do),
    busy (another attempt holds it: retry later), missing (no such lead).
    `looked_before`: an earlier attempt of this task took the lease and did not settle.
    """

    kind: Literal["claimed", "settled", "busy", "missing"]
    item: Mapping[str, Any]
    looked_before: bool = False


class WritebackState:
    """The per-task write-back records in the lead item (conditional writes only, never status fields)."""

    def __init__(
        self,
        client: DynamoDBClient | Any,
        table_name: str,
        lease_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.lease_seconds = lease_seconds
        self.clock = clock

    def get(self, lead_id: str) -> dict[str, Any] | None:
        """The lead item, or None."""
        response = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True)
        return dynamo_item(response.get("Item")) or None

    def claim(self, lead_id: str, channel: Channel, task_id: str) -> Lease:
        """Take the channel's lease for the task."""
        now = self.clock()
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression=f"SET {channel}_lease_task = :task, {channel}_lease_until = :until",
                ConditionExpression=(
                    f"attribute_exists(pk) AND NOT contains({channel}_settled, :task) "
                    f"AND (attribute_not_exists({channel}_lease_until) OR {channel}_lease_until < :now)"
                ),
                ExpressionAttributeValues=dynamo_values(
                    {":task": task_id, ":until": int(now + self.lease_seconds), ":now": int(now)}
                ),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = dynamo_item(error.response.get("Item"))  # type: ignore[arg-type]
            if not item:
                return Lease("missing", {})
            if task_id in (item.get(f"{channel}_settled") or set()):
                return Lease("settled", item)
            return Lease("busy", item)
        previous = dynamo_item(response.get("Attributes"))
        return Lease("claimed", previous, looked_before=previous.get(f"{channel}_lease_task") == task_id)

    def release(self, lead_id: str, channel: Channel, task_id: str) -> None:
        """Give the lease back after a transient failure (the task stays named: the retry looks first)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression=f"REMOVE {channel}_lease_until",
                ConditionExpression=f"{channel}_lease_task = :task",
                ExpressionAttributeValues=dynamo_values({":task": task_id}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def settle(
        self, lead_id: str, channel: Channel, task_id: str, status: str, ref: str = "", leased: bool = True
    ) -> bool:
        """Record the channel's final status for the task. False when the condition failed.

        `leased`: we hold the lease (else: only when the task is not settled yet, for `skipped`).
        """
        now = self.clock()
        sets = [f"{channel} = :status", f"{channel}_task = :task", f"{channel}_at = :now_iso"]
        values: dict[str, Any] = {":status": status, ":task": task_id, ":now_iso": iso(now), ":set": {task_id}}
        if ref:
            sets.append(f"{channel}_ref = :ref")
            values[":ref"] = ref[:200]
        condition = f"{channel}_lease_task = :task"
        if not leased:
            condition = f"attribute_exists(pk) AND NOT contains({channel}_settled, :task)"
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression="SET " + ", ".join(sets) + f" ADD {channel}_settled :set REMOVE {channel}_lease_until",
                ConditionExpression=condition,
                ExpressionAttributeValues=dynamo_values(values),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True


@dataclass(frozen=True)
class HandleResult:
    """What one event did per channel ("done", "failed", "skipped", "settled", "missing", ...) and what to retry."""

    channels: Mapping[str, str]
    retry: tuple[str, ...] = ()


class Writeback:
    """Runs the channels of one `Call Completed` event."""

    def __init__(
        self,
        settings: Settings,
        state: WritebackState,
        writers: Mapping[str, CrmWriter],
        outbound: OutboundWebhook,
        credentials: Callable[[], Mapping[str, Any]],
    ) -> None:
        self.settings = settings
        self.state = state
        self.writers = writers
        self.outbound = outbound
        self.credentials = credentials

    def handle(self, event: Mapping[str, Any], *, last_attempt: bool = False) -> HandleResult:
        """Write back one event (an EventBridge envelope or its bare detail). Raises only for AWS trouble."""
        detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else event
        assert isinstance(detail, Mapping)
        lead_id = str(detail.get("lead_id") or "").strip()
        try:
            note = CallNote.from_detail(detail)
        except ValueError as error:
            logger.warning("Call Completed event ignored", extra={"reason": str(error)})
            metrics.add_metric(name="WritebackEventsInvalid", unit="Count", value=1)
            return HandleResult({"event": "invalid"})
        if not lead_id:
            logger.warning("Call Completed event ignored", extra={"reason": "no lead_id", "task_id": note.task_id})
            return HandleResult({"event": "invalid"})
        occurred_at = _event_time(event.get("time"))
        source = str(detail.get("source") or lead_id.split("#", 1)[0])
        try:
            credentials = self.credentials()
        except Exception as error:  # secret unreadable: every channel waits
            logger.warning("CRM secret not readable", extra={"error": type(error).__name__})
            return HandleResult({"event": "secret"}, (f"CRM secret: {type(error).__name__}",))
        channels: dict[str, str] = {}
        retry: list[str] = []
        options = self.settings.writeback.get(source)
        writer = self.writers.get(source)
        if options is None or writer is None:
            done = self.state.settle(lead_id, "writeback", note.task_id, "skipped", leased=False)
            channels["writeback"] = "skipped" if done else "settled"
        else:
            source_credentials = credentials.get(source) if isinstance(credentials.get(source), Mapping) else {}
            assert isinstance(source_credentials, Mapping)

            def write_crm(item: Mapping[str, Any], look_first: bool) -> WriteResult:
                record = CrmRecord.from_item({**item, "pk": lead_id})
                return writer.write(source_credentials, options, record, note, look_first=look_first)

            self._run(lead_id, "writeback", note, write_crm, last_attempt, channels, retry)
        hook = credentials.get("outbound_webhook")
        if isinstance(hook, Mapping) and configured(hook):

            def deliver(item: Mapping[str, Any], look_first: bool) -> WriteResult:
                del item, look_first  # receivers dedupe by webhook-id, which is stable per task
                return self.outbound.deliver(hook, note, detail, occurred_at)

            self._run(lead_id, "webhook_delivery", note, deliver, last_attempt, channels, retry)
        logger.info("Write-back", extra={"lead_id": lead_id, "task_id": note.task_id, **channels})
        return HandleResult(channels, tuple(retry))

    def _run(
        self,
        lead_id: str,
        channel: Channel,
        note: CallNote,
        action: Callable[[Mapping[str, Any], bool], WriteResult],
        last_attempt: bool,
        channels: dict[str, str],
        retry: list[str],
    ) -> None:
        lease = self.state.claim(lead_id, channel, note.task_id)
        if lease.kind == "missing":
            logger.warning("Call Completed for an unknown lead", extra={"lead_id": lead_id, "task_id": note.task_id})
            metrics.add_metric(name="WritebackUnknownLead", unit="Count", value=1)
            channels[channel] = "missing"
            return
        if lease.kind == "settled":
            channels[channel] = "settled"  # an earlier delivery finished it: never a second note
            return
        if lease.kind == "busy":
            channels[channel] = "busy"
            retry.append(f"{channel}: another attempt holds the lease")
            return
        try:
            result = action(lease.item, lease.looked_before)
        except Exception:
            self.state.release(lead_id, channel, note.task_id)
            raise
        reason = redact(result.message)[:MAX_REASON]
        if result.outcome == "done":
            self.state.settle(lead_id, channel, note.task_id, "done", result.ref)
            metrics.add_metric(name=f"{_metric(channel)}Done", unit="Count", value=1)
            channels[channel] = "done"
        elif result.outcome == "permanent" or last_attempt:
            self.state.settle(lead_id, channel, note.task_id, f"failed: {reason}")
            metrics.add_metric(name=f"{_metric(channel)}Failed", unit="Count", value=1)
            logger.warning("Write-back failed", extra={"lead_id": lead_id, "channel": channel, "reason": reason})
            channels[channel] = "failed"
        else:
            self.state.release(lead_id, channel, note.task_id)
            channels[channel] = "retry"
            retry.append(f"{channel}: {reason}")


def _metric(channel: Channel) -> str:
    return "Writeback" if channel == "writeback" else "WebhookDelivery"


def _event_time(value: Any) -> datetime:
    """The event's `time` (ISO 8601), else now."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)
