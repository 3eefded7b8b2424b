"""`Call Completed` events on the stack's EventBridge bus, from the leads table's stream.

Why a DynamoDB Stream (a transactional outbox) and not a PutEvents call next to the
outcome write: the stream holds every change of the item for 24 hours and Lambda
retries a failing batch in order, so an event cannot be lost between "written" and
"published", and it is emitted only for an actual transition into an attempt's end
(the conditional write happens once, so the stream record exists once).
The function's event filter passes only items whose new status ends an attempt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lead_caller.store import FINAL_OUTCOMES, OUTCOME_UNKNOWN, RECALL_PENDING

EVENT_SOURCE = "lead-caller"
DETAIL_TYPE = "Call Completed"
#: statuses whose arrival emits an event (RECALL_PENDING: the attempt ended, another follows)
EVENT_STATUSES = (*FINAL_OUTCOMES, OUTCOME_UNKNOWN, RECALL_PENDING)
DETAIL_FIELDS = (
    "call_status",
    "outcome",
    "summary",
    "sentiment",
    "duration",
    "started_at",
    "ended_at",
    "recording_url",
)


class PublishError(Exception):
    """EventBridge did not take the event; the stream batch is retried from this record."""


def ends_attempt(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """True when the change moved the lead into a status that ends a call attempt."""
    if not new or new.get("status") not in EVENT_STATUSES:
        return False
    old = old or {}
    return bool(old.get("status") != new.get("status") or old.get("call_attempt") != new.get("call_attempt"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def call_completed_detail(item: Mapping[str, Any]) -> dict[str, Any]:
    """The event detail of docs/lifecycle.md: ids and outcome, never a phone, email or transcript."""
    status = str(item.get("status"))
    task_ids = [str(task) for task in item.get("task_ids") or []]
    document = item.get("document") if isinstance(item.get("document"), Mapping) else {}
    detail: dict[str, Any] = {
        "lead_id": item.get("pk"),
        "source": item.get("source"),
        "record_id": item.get("record_id"),
        "document_id": (document or {}).get("document_id") or f"{item.get('source')}-{item.get('record_id')}",
        "run_id": item.get("run_id"),
        "task_id": item.get("task_id") or (task_ids[0] if len(task_ids) == 1 else None),
        "call_attempt": _plain(item.get("call_attempt") or 1),
        # recall_pending: the attempt's own outcome (no_answer, busy, voicemail); another attempt follows
        "status": str(item.get("attempt_status") or status) if status == RECALL_PENDING else status,
        **{key: _plain(item.get(key)) for key in DETAIL_FIELDS},
        "final": status != RECALL_PENDING,
    }
    return detail


class CallCompletedPublisher:
    """PutEvents of one `Call Completed` event per stream record that ends an attempt."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Send the event if this change ends an attempt; returns its detail (None when nothing was due)."""
        if not ends_attempt(old, new) or not self.bus_name:
            return None
        assert new is not None
        detail = call_completed_detail(new)
        response = self.client.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(detail, separators=(",", ":")),
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            codes = {str(entry.get("ErrorCode")) for entry in response.get("Entries", []) if entry.get("ErrorCode")}
            raise PublishError(f"PutEvents refused the event: {', '.join(sorted(codes))}")
        return detail
