"""Call outcomes through the local stack: the sandbox's calls end by themselves, Unpod's agent webhook
(or, when it is killed, the poller) records them, re-calls follow no-answers, Call Completed events
reach the bus. Everything over real HTTP on 127.0.0.1, AWS in a moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.outcome_loops import wait_until
from local.signing import LOCAL_BEARER_TOKEN
from local.stack import LocalStack, StackOptions, open_leads

pytestmark = pytest.mark.integration
BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}
FINAL = {"completed", "no_answer", "busy", "voicemail", "call_failed", "outcome_unknown"}


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        port=0,
        retry_delay_seconds=1,
        outcome_poll_seconds=1.0,
        simulate_calls={"delay_seconds": 1.0},
        environment={
            "OUTCOME_POLL_BACKOFF_SECONDS": "2",
            "OUTCOME_POLL_MAX_SECONDS": "3",
            "RECALL_DELAYS_SECONDS": "1",
            "MAX_CALL_ATTEMPTS": "3",
        },
    )
    with LocalStack(options) as running:
        yield running


def send(stack: LocalStack, tag: str, outcomes: list[str]) -> str:
    record_id = f"oc-{tag}-{uuid.uuid4().hex[:8]}"
    assert stack.sandbox is not None
    stack.sandbox.calls.configure(by_document={f"generic-{record_id}": outcomes})
    body = {"id": record_id, "name": "Ada Lovelace", "phone": "+1 512 555 0142", "email": "ada@example.com"}
    status, _ = stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)
    assert status == 202
    return f"generic#{record_id}"


def settled(stack: LocalStack, lead_ids: list[str]) -> bool:
    return all((stack.lead(lead_id) or {}).get("status") in FINAL for lead_id in lead_ids)


def events_for(stack: LocalStack, lead_id: str) -> list[dict[str, Any]]:
    assert stack.outcome_loops is not None
    return [e["detail"] for e in stack.outcome_loops.drain_events() if e["detail"]["lead_id"] == lead_id]


def test_every_lead_reaches_its_final_outcome_through_the_agent_webhook(stack):
    assert stack.sandbox is not None
    stack.sandbox.calls.configure(default_fault=None, faults=["duplicate", "out_of_order"])
    leads = {
        "answered": send(stack, "a", ["answered"]),
        "never": send(stack, "n", ["no_answer", "no_answer", "busy"]),
        "second": send(stack, "s", ["busy", "answered"]),
        "failed": send(stack, "f", ["failed"]),
    }

    assert wait_until(lambda: settled(stack, list(leads.values())), timeout=90, interval=0.5), open_leads(stack)

    answered = stack.lead(leads["answered"])
    assert answered is not None
    assert answered["status"] == "completed"
    assert answered["outcome_source"] == "agent_webhook"
    assert answered["summary"].startswith("The lead is interested")
    assert answered["transcript_key"].startswith("transcripts/generic/")
    assert "transcript" not in answered
    never = stack.lead(leads["never"])
    assert never is not None
    assert never["status"] == "busy"
    assert never["call_attempt"] == 3
    assert [entry["outcome"] for entry in never["attempts_log"]] == ["no_answer", "no_answer", "busy"]
    second = stack.lead(leads["second"])
    assert second is not None
    assert (second["status"], second["call_attempt"]) == ("completed", 2)
    assert (stack.lead(leads["failed"]) or {}).get("status") == "call_failed"
    # exactly one task per attempt reached Unpod
    documents = [task["ref_id"] for task in stack.sandbox.created_tasks]
    assert documents.count(leads["never"].replace("#", "-")) == 3
    assert documents.count(leads["answered"].replace("#", "-")) == 1

    assert wait_until(lambda: len(events_for(stack, leads["never"])) >= 3, timeout=15)
    never_events = events_for(stack, leads["never"])
    assert [(e["call_attempt"], e["status"], e["final"]) for e in never_events] == [
        (1, "no_answer", False),
        (2, "no_answer", False),
        (3, "busy", True),
    ]
    [answered_event] = events_for(stack, leads["answered"])
    assert answered_event["status"] == "completed"
    assert answered_event["final"] is True
    assert "+15125550142" not in json.dumps(answered_event)
    assert "ada@example.com" not in json.dumps(answered_event)


def test_with_the_agent_webhook_killed_the_poller_still_ends_every_lead(stack):
    assert stack.sandbox is not None
    stack.sandbox.calls.configure(default_fault="drop")
    try:
        leads = [send(stack, "k1", ["answered"]), send(stack, "k2", ["busy", "no_answer", "no_answer"])]

        assert wait_until(lambda: settled(stack, leads), timeout=90, interval=0.5), open_leads(stack)
    finally:
        stack.sandbox.calls.configure(default_fault=None)

    first, second = (stack.lead(lead_id) or {} for lead_id in leads)
    assert (first["status"], first["outcome_source"]) == ("completed", "poller")
    assert first["transcript_key"]
    assert (second["status"], second["call_attempt"], second["outcome_source"]) == ("no_answer", 3, "poller")
    documents = {lead_id.replace("#", "-") for lead_id in leads}
    ours = {task["task_id"] for task in stack.sandbox.created_tasks if task["ref_id"] in documents}
    assert len(ours) == 4  # 1 + 3 attempts
    dropped = {d["task_id"] for d in stack.sandbox.webhook_deliveries if d.get("fault") == "drop"}
    assert ours <= dropped


def test_the_agent_webhook_route_refuses_bad_tokens_and_bad_bodies_over_http(stack):
    from local.outcome_loops import LOCAL_AGENT_WEBHOOK_TOKEN

    task = json.dumps({"task_id": "T" + "9" * 32, "status": "completed"}).encode()
    json_type = {"content-type": "application/json"}

    assert stack.post("/unpod/calls", task, {**json_type, "x-lead-caller-token": "nope"})[0] == 401
    assert stack.post("/unpod/calls", task, json_type)[0] == 401
    good = {**json_type, "x-lead-caller-token": LOCAL_AGENT_WEBHOOK_TOKEN}
    assert stack.post("/unpod/calls", b"{oops", good)[0] == 400
    assert stack.post("/unpod/calls", task, good) == (200, {"result": "unknown_task", "task_id": "T" + "9" * 32})
