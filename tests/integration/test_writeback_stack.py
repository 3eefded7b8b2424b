"""Write-back through the local stack: a Call Completed event put on the bus reaches the write-back queue
by the stack's rule (moto delivers to SQS targets), the same handler Lambda runs writes the note into the
CRM stand-in and POSTs the signed outbound webhook to the catch hook, and records both in the lead."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lead_caller.store import dynamo_values
from local.stack import LocalStack, StackOptions
from local.writeback_local import written

pytestmark = pytest.mark.integration
EVENT = json.loads((__import__("pathlib").Path(__file__).parents[2] / "events" / "call-completed.json").read_text())


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(port=0, retry_delay_seconds=1)) as running:
        yield running


def put_lead(stack: LocalStack, source: str, record_id: str) -> str:
    lead_id = f"{source}#{record_id}"
    assert stack.resources is not None
    item = {"pk": lead_id, "source": source, "record_id": record_id, "status": "completed", "status_rank": 40}
    stack.client("dynamodb").put_item(TableName=stack.resources.table_name, Item=dynamo_values(item))
    return lead_id


def detail(lead_id: str, task_id: str) -> dict[str, Any]:
    source, record_id = lead_id.split("#", 1)
    found: dict[str, Any] = copy.deepcopy(EVENT["detail"])
    found.update(lead_id=lead_id, source=source, record_id=record_id, task_id=task_id)
    return found


def wait_for(stack: LocalStack, lead_id: str, field: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    item: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        item = stack.lead(lead_id)
        if item and item.get(field) and not item.get(f"{field}_lease_until"):
            return item
        time.sleep(0.1)
    raise AssertionError(f"{lead_id} has no {field}: {item}")


@pytest.mark.parametrize(
    ("source", "record_id", "where"),
    [
        ("hubspot", "62515:1246978", "hubspot notes"),
        ("pipedrive", "13177-person-8", "pipedrive notes"),
        ("salesforce", "00Q5f00000Lk9XyEAJ", "salesforce tasks"),
        ("zoho", "5725767000003000064", "zoho notes"),
    ],
)
def test_a_call_completed_event_becomes_a_note_in_the_crm_and_a_signed_webhook(stack, source, record_id, where):
    lead_id = put_lead(stack, source, record_id)
    task_id = f"T-{source}"
    before = len(written(stack)[where])

    answer = stack.call_completed(detail(lead_id, task_id))

    assert answer["FailedEntryCount"] == 0
    item = wait_for(stack, lead_id, "writeback")
    assert item["writeback"] == "done"
    item = wait_for(stack, lead_id, "webhook_delivery")
    assert item["webhook_delivery"] == "done"
    assert item["status"] == "completed"
    assert len(written(stack)[where]) == before + 1
    deliveries = [d for d in written(stack)["catch hook deliveries"] if d["webhook_id"] == f"msg_{task_id}"]
    assert len(deliveries) == 1
    assert deliveries[0]["verified"] is True


def test_the_same_event_twice_is_one_note_and_one_delivery(stack):
    lead_id = put_lead(stack, "hubspot", "62515:1246979")
    assert stack.hubspot_api is not None
    before = len(stack.hubspot_api.notes)
    stack.call_completed(detail(lead_id, "T-twice"))
    stack.call_completed(detail(lead_id, "T-twice"))
    assert stack.writeback_route is not None
    assert stack.writeback_route.wait_idle(timeout=30)
    assert len(stack.hubspot_api.notes) == before + 1
    deliveries = [d for d in written(stack)["catch hook deliveries"] if d["webhook_id"] == "msg_T-twice"]
    assert len(deliveries) == 1
