"""The dispatcher with moto (DynamoDB) and the Unpod sandbox over HTTP: batching, poisoned
contacts, duplicates, timeouts after acceptance, crashes, retries and the dead-letter path."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from lead_caller.contacts import ContactDocument
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.leads import LeadMessage
from lead_caller.secrets import SecretError
from lead_caller.unpod import UnpodCredentials
from tests.conftest import fast_client


def lead(record_id: str, phone: str = "+15125550142", source: str = "generic", **routing) -> LeadMessage:
    document = ContactDocument(
        name=f"Lead {record_id}",
        contact_number=phone,
        email=f"{record_id}@example.com",
        document_id=f"{source}-{record_id}",
    )
    return LeadMessage(source, record_id, time.time(), document, routing)


def record(message: LeadMessage, message_id: str | None = None, receive_count: int = 1) -> QueuedRecord:
    return QueuedRecord(message_id or str(uuid.uuid4()), message.to_json(), receive_count)


def created_documents(sandbox) -> list[str]:
    return [task["input"]["document_id"] for task in sandbox.created_tasks]


def test_a_batch_of_leads_goes_out_in_one_request_with_a_task_per_lead(dispatcher, sandbox, store):
    messages = [lead("a1", "+15125550101"), lead("a2", "+15125550102"), lead("a3", "+15125550103")]

    result = dispatcher.dispatch([record(m) for m in messages])

    assert result.retry == {}
    assert len(sandbox.requests) == 1
    assert len(sandbox.requests[0]["json"]["documents"]) == 3
    items = [store.get(m.lead_id) for m in messages]
    assert all(item and item["status"] == "call_requested" for item in items)
    assert len({item["run_id"] for item in items if item}) == 1
    assert [item["task_ids"] for item in items if item] == [[task["task_id"]] for task in sandbox.created_tasks]


def test_max_documents_per_request_is_respected(dispatcher, sandbox):
    dispatcher.settings = dataclasses.replace(dispatcher.settings, max_documents_per_request=2)

    dispatcher.dispatch([record(lead(f"m{i}", f"+1512555010{i}")) for i in range(5)])

    # the requests of a batch go out concurrently: their order is not fixed
    assert sorted(len(request["json"]["documents"]) for request in sandbox.requests) == [1, 2, 2]


def test_leads_with_different_context_or_schedule_go_in_separate_requests(dispatcher, sandbox):
    messages = [
        lead("r1", "+15125550101"),
        lead("r2", "+15125550102", context="Renewal call"),
        lead("r3", "+15125550103", context="Renewal call"),
        lead("r4", "+15125550104", schedule={"type": "auto"}),
    ]

    dispatcher.dispatch([record(m) for m in messages])

    bodies = sorted(
        (r["json"]["context"], r["json"]["schedule"]["type"], len(r["json"]["documents"])) for r in sandbox.requests
    )
    default_context = dispatcher.settings.default_context
    assert bodies == sorted([(default_context, "now", 1), ("Renewal call", "now", 2), (default_context, "auto", 1)])


def test_a_poisoned_contact_does_not_sink_the_valid_ones(dispatcher, sandbox, store):
    good = [lead(f"g{i}", f"+1512555011{i}") for i in range(3)]
    poisoned = lead("poison", "12345")  # Unpod refuses this number
    messages = [good[0], poisoned, good[1], good[2]]

    result = dispatcher.dispatch([record(m) for m in messages])

    assert result.retry == {}
    assert sorted(created_documents(sandbox)) == sorted(m.document_id for m in good)
    for message in good:
        assert store.get(message.lead_id)["status"] == "call_requested"
    bad = store.get(poisoned.lead_id)
    assert bad["status"] == "rejected"
    assert bad["unpod_status"] == 206
    assert "validation" in bad["unpod_message"].lower()
    assert sandbox.requests[0]["status"] == 206  # the first, whole-batch attempt was refused


def test_auth_failure_is_systemic_and_never_fails_a_lead(dispatcher, sandbox, store, credentials):
    revoked = dataclasses.replace(credentials, api_token="revoked")
    dispatcher.credentials = dispatcher.refresh_credentials = lambda: revoked
    messages = [lead("u1", "+15125550101"), lead("u2", "+15125550102")]
    records = [record(m) for m in messages]

    result = dispatcher.dispatch(records)

    assert set(result.retry) == {r.message_id for r in records}  # back to the queue, not failed
    assert all(result.delays[r.message_id] > 0 for r in records)
    assert len(sandbox.requests) == 1  # not split: the contacts are not the problem
    for message in messages:
        item = store.get(message.lead_id)
        assert item["status"] == "dispatching"
        assert item["error_kind"] == "http_401"
        assert item["lead_failures"] == 0  # a lead's attempts are not used up
        assert item["next_try_at"] > item["first_try_at"]

    dispatcher.credentials = dispatcher.refresh_credentials = lambda: credentials  # the secret is fixed
    result = dispatcher.dispatch([dataclasses.replace(r, receive_count=2) for r in records])

    assert result.retry == {}
    assert sorted(created_documents(sandbox)) == ["generic-u1", "generic-u2"]


def test_a_401_rereads_the_secret_and_sends_with_the_fixed_token_at_once(dispatcher, sandbox, store, credentials):
    dispatcher.credentials = lambda: dataclasses.replace(credentials, api_token="cached-old-token")
    dispatcher.refresh_credentials = lambda: credentials  # the secret was rotated since it was cached
    message = lead("rotated")

    result = dispatcher.dispatch([record(message)])

    assert result.retry == {}
    assert [request["status"] for request in sandbox.requests] == [401, 200]
    assert store.get(message.lead_id)["status"] == "call_requested"


def test_the_same_lead_twice_in_one_batch_is_called_once(dispatcher, sandbox):
    message = lead("twice")

    result = dispatcher.dispatch([record(message), record(message)])

    assert result.retry == {}
    assert created_documents(sandbox) == ["generic-twice"]


def test_a_duplicate_delivery_after_the_call_is_not_called_again(dispatcher, sandbox, store):
    message = lead("dup")
    first = record(message)
    dispatcher.dispatch([first])

    dispatcher.dispatch([record(message)])  # the CRM delivered again: a new SQS message
    dispatcher.dispatch([first])  # SQS redelivered the first message after the call

    assert created_documents(sandbox) == ["generic-dup"]
    assert store.get(message.lead_id)["attempts"] == 1


def test_timeout_after_unpod_accepted_is_reconciled_instead_of_calling_twice(dispatcher, sandbox, store):
    dispatcher.client = fast_client(sandbox.base_url, read_timeout=0.3)
    sandbox.enqueue_fault("delay", seconds=1.0)  # Unpod creates the task, answers too late
    message = lead("slow")
    first = record(message)

    result = dispatcher.dispatch([first])

    assert first.message_id in result.retry  # left for SQS to redeliver
    item = store.get(message.lead_id)
    assert item["status"] == "dispatching"
    assert item["call_state"] == "sending"
    assert item["error_kind"] == "timeout"

    redelivered = dataclasses.replace(first, receive_count=2)
    result = dispatcher.dispatch([redelivered])

    assert result.retry == {}
    assert len(sandbox.created_tasks) == 1  # one call, not two
    assert len(sandbox.requests) == 1  # Create Task was not sent again
    item = store.get(message.lead_id)
    assert item["status"] == "call_requested"
    assert item["run_id"] == sandbox.created_tasks[0]["run_id"]
    assert item["reconciled"] is True


def test_crash_after_claim_but_before_sending_sends_once_after_checking(dispatcher, sandbox, store):
    message = lead("crash")
    first = record(message)
    store.claim(message, first.message_id)  # the function died right after claiming

    result = dispatcher.dispatch([dataclasses.replace(first, receive_count=2)])

    assert result.retry == {}
    assert created_documents(sandbox) == ["generic-crash"]
    assert store.get(message.lead_id)["status"] == "call_requested"


def test_another_message_does_not_steal_a_lead_in_flight(dispatcher, sandbox, store):
    message = lead("inflight")
    store.claim(message, "owner-message")

    result = dispatcher.dispatch([record(message, "other-message")])

    assert result.retry == {}
    assert sandbox.requests == []
    assert store.get(message.lead_id)["claim_id"] == "owner-message"


def test_transient_failures_are_retried_by_sqs_then_marked_failed_on_the_last_receive(dispatcher, sandbox, store):
    for _ in range(9):
        sandbox.enqueue_fault("status", status=503)
    message = lead("down")
    first = record(message)

    result = dispatcher.dispatch([first])

    assert first.message_id in result.retry
    item = store.get(message.lead_id)
    assert (item["status"], item["call_state"], item["error_kind"]) == ("dispatching", "not_sent", "http_503")
    assert len(sandbox.requests) == 3  # the client's own retries

    final = dataclasses.replace(first, receive_count=dispatcher.settings.max_receive_count)
    result = dispatcher.dispatch([final])

    assert first.message_id in result.dead_letter  # the safety net: moved to the dead-letter queue
    item = store.get(message.lead_id)
    assert item["status"] == "failed"
    assert "gave up after 3 attempts" in item["reason"]
    assert sandbox.created_tasks == []


def test_a_transient_failure_then_success_on_redelivery(dispatcher, sandbox, store):
    for _ in range(3):
        sandbox.enqueue_fault("status", status=500)
    message = lead("flaky")
    first = record(message)
    assert first.message_id in dispatcher.dispatch([first]).retry

    result = dispatcher.dispatch([dataclasses.replace(first, receive_count=2)])

    assert result.retry == {}
    item = store.get(message.lead_id)
    assert item["status"] == "call_requested"
    assert item["attempts"] == 2
    assert created_documents(sandbox) == ["generic-flaky"]


def test_the_same_record_after_the_dedupe_window_is_called_again(dispatcher, sandbox, store):
    store.dedupe_window_seconds = 1
    an_hour_ago = time.time() - 3600
    store.clock = lambda: an_hour_ago  # the first call happened an hour ago
    old = dataclasses.replace(lead("again"), received_at=an_hour_ago)
    dispatcher.dispatch([record(old)])
    first_run = store.get(old.lead_id)["run_id"]
    store.clock = time.time

    dispatcher.dispatch([record(lead("again"))])

    assert created_documents(sandbox) == ["generic-again", "generic-again"]
    item = store.get(old.lead_id)
    assert item["run_id"] != first_run
    assert item["previous_run_ids"] == [first_run]


def test_a_lead_that_failed_before_can_be_called_on_a_new_delivery(dispatcher, sandbox, store, credentials):
    message = lead("retry-later")
    dispatcher.credentials = lambda: dataclasses.replace(credentials, pilot="missing-agent")
    dispatcher.dispatch([record(message)])
    assert store.get(message.lead_id)["status"] == "failed"

    dispatcher.credentials = lambda: credentials  # the user fixed the pilot
    dispatcher.dispatch([record(message)])

    assert store.get(message.lead_id)["status"] == "call_requested"


def test_an_unreadable_message_is_kept_for_the_dead_letter_queue(dispatcher, sandbox):
    broken = QueuedRecord("broken-1", "{not json", 1)
    foreign = QueuedRecord("foreign-1", '{"hello": "world"}', 1)

    result = dispatcher.dispatch([broken, foreign, record(lead("fine"))])

    assert set(result.dead_letter) == {"broken-1", "foreign-1"}
    assert created_documents(sandbox) == ["generic-fine"]


def test_missing_credentials_retry_the_whole_batch(settings, store, client, sandbox):
    def unavailable() -> UnpodCredentials:
        raise SecretError("secret lead-caller/unpod could not be read")

    dispatcher = Dispatcher(settings, store, client, unavailable)
    records = [record(lead("c1")), record(lead("c2", "+15125550102"))]

    result = dispatcher.dispatch(records)

    assert set(result.retry) == {r.message_id for r in records}
    assert sandbox.requests == []


def test_dispatch_logs_carry_no_phone_email_or_token(dispatcher, sandbox, store, captured_logs, credentials):
    leaky = '{"status_code": 500, "message": "sandbox-api-token of private@example.com: +1 512 555 0142 failed"}'
    for _ in range(6):
        sandbox.enqueue_fault("status", status=500, body=leaky)
    message = lead("private", "+15125550142")
    first = record(message)

    dispatcher.dispatch([first])
    dispatcher.dispatch([dataclasses.replace(first, receive_count=2)])

    logs = captured_logs()
    assert "generic#private" in logs  # the logs do say what happened...
    assert "http_500" in logs
    for secret in ("+15125550142", "555 0142", "private@example.com", credentials.api_token, credentials.space_token):
        assert secret not in logs  # ...without personal data or credentials
    item = store.get(message.lead_id)
    assert "sandbox-api-token" not in item["unpod_message"]


@pytest.mark.parametrize("status", ["call_requested", "dispatching"])
def test_webhook_duplicate_check_sees_leads_being_or_already_called(store, status):
    message = lead("seen")
    store.claim(message, "m-1")
    if status == "call_requested":
        store.mark_call_requested(message.lead_id, "m-1", "R" + "0" * 32, ["T" + "0" * 32])

    assert store.recently_called([message.lead_id, "generic#unknown"]) == {message.lead_id: status}


def test_a_replayed_old_delivery_is_still_a_duplicate(dispatcher, sandbox, store):
    """The window runs from when we first saw the lead, not from the (old) time a replay carries."""
    store.dedupe_window_seconds = 3600
    stale = dataclasses.replace(lead("replayed"), received_at=time.time() - 30 * 86400)
    dispatcher.dispatch([record(stale)])  # first seen now, though the event says 30 days ago

    dispatcher.dispatch([record(lead("replayed"))])  # delivered again a moment later

    assert created_documents(sandbox) == ["generic-replayed"]
