"""Call outcomes with moto (DynamoDB, S3, SQS) and the Unpod sandbox over HTTP: Unpod's agent
webhook, the reconciliation poller, forward-only writes, transcripts in S3 and re-call attempts."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import boto3
import pytest

from lead_caller.contacts import ContactDocument
from lead_caller.dispatcher import QueuedRecord
from lead_caller.leads import LeadMessage
from lead_caller.outcomes import AgentWebhook, OutcomeRecorder, Poller, TaskReport, TranscriptStore, lifecycle_status
from lead_caller.queue import LeadQueue
from local.unpod_sandbox import CallSimulation

TOKEN = "agt_unit_7f3a9c1e5b2d4f6a8c0e"
HEADER = "x-lead-caller-token"
PHONE = "+15125550142"
EMAIL = "grace.hopper@example.com"
SECRET_WORDS = "the secret launch codes are in the drawer"
BUCKET = "transcripts-test"


@pytest.fixture
def settings(settings):  # the conftest settings, with short outcome timings
    return dataclasses.replace(
        settings,
        transcript_bucket=BUCKET,
        outcome_poll_backoff_seconds=60,
        outcome_poll_max_seconds=600,
        outcome_horizon_seconds=3_600,
        max_call_attempts=3,
        recall_delays_seconds=(100, 1_000),
    )


@pytest.fixture
def recorder(settings, store) -> OutcomeRecorder:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return OutcomeRecorder(settings, store, TranscriptStore(s3, BUCKET))


@pytest.fixture
def webhook(settings, recorder) -> AgentWebhook:
    return AgentWebhook(settings, recorder, lambda: {"agent_webhook_token": TOKEN})


def make_poller(settings, store, recorder, client, credentials, clock=time.time) -> Poller:
    queue = LeadQueue(boto3.client("sqs"), settings.queue_url)
    return Poller(settings, store, recorder, client, lambda: credentials, queue, clock=clock)


@pytest.fixture
def poller(settings, store, recorder, client, credentials) -> Poller:
    return make_poller(settings, store, recorder, client, credentials)


def called_lead(dispatcher, sandbox, record_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """A lead dispatched to the sandbox; returns (lead_id, its task)."""
    record_id = record_id or f"r{uuid.uuid4().hex[:10]}"
    document = ContactDocument(
        name="Grace Hopper", contact_number=PHONE, email=EMAIL, document_id=f"generic-{record_id}"
    )
    message = LeadMessage("generic", record_id, time.time(), document)
    result = dispatcher.dispatch([QueuedRecord(str(uuid.uuid4()), message.to_json(), 1)])
    assert result.retry == {}
    task = next(t for t in sandbox.created_tasks if t["ref_id"] == f"generic-{record_id}")
    return message.lead_id, task


def finished(task: dict[str, Any], call_status: str = "completed", transcript: Any = None, status="completed"):
    output: dict[str, Any] = {
        "call_status": call_status,
        "duration": 61.5,
        "start_time": "2026-02-07T05:57:45Z",
        "end_time": "2026-02-07T05:58:46Z",
        "recording_url": "https://cdn.unpod.example/r.mp3",
        "post_call_data": {"summary": "Wants a demo.", "outcome": "interested", "sentiment": "positive"},
        "call_end_reason": "caller_hangup",
    }
    if transcript is not None:
        output["transcript"] = transcript
    return {**task, "status": status, "output": output}


def post(webhook: AgentWebhook, body: Any, token: str | None = TOKEN):
    headers = {HEADER: token} if token is not None else {}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = webhook.handle(headers, raw)
    return reply.status, json.loads(reply.body)


# ---- mapping ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task_status", "call_status", "expected"),
    [
        ("pending", "", None),
        ("scheduled", "", None),
        ("in_progress", "", "in_progress"),
        ("completed", "completed", "completed"),
        ("completed", "", "completed"),
        ("completed", "no-answer", "no_answer"),
        ("completed", "busy", "busy"),
        ("completed", "Voicemail", "voicemail"),
        ("failed", "", "call_failed"),
        ("failed", "no_answer", "no_answer"),
        ("failed", "completed", "call_failed"),
    ],
)
def test_unpod_task_and_call_status_map_to_the_lifecycle(task_status, call_status, expected):
    assert lifecycle_status(task_status, call_status) == expected


# ---- the agent webhook -----------------------------------------------------------------------
def test_the_agent_webhook_records_the_outcome_and_keeps_the_raw_values(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)

    status, answer = post(webhook, finished(task))

    assert (status, answer["result"], answer["status"]) == (200, "recorded", "completed")
    item = store.get(lead_id)
    assert item is not None
    assert (item["status"], item["status_rank"], item["call_attempt"]) == ("completed", 40, 1)
    assert (item["call_status"], item["task_status"]) == ("completed", "completed")
    assert item["summary"] == "Wants a demo."
    assert item["sentiment"] == "positive"
    assert str(item["duration"]) == "61.5"
    assert item["call_end_reason"] == "caller_hangup"
    assert item["outcome_source"] == "agent_webhook"
    assert [entry["outcome"] for entry in item["attempts_log"]] == ["completed"]


def test_a_wrapped_body_is_accepted(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)

    status, _ = post(webhook, {"event": "task.completed", "data": finished(task)})

    assert status == 200
    assert store.get(lead_id)["status"] == "completed"


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
def test_a_bad_or_missing_token_is_401_and_nothing_is_written(dispatcher, sandbox, store, webhook, token):
    lead_id, task = called_lead(dispatcher, sandbox)

    status, answer = post(webhook, finished(task), token=token)

    assert status == 401
    assert answer["error"] == "unauthorized"
    assert store.get(lead_id)["status"] == "call_requested"


def test_no_token_configured_refuses_every_request(settings, recorder):
    webhook = AgentWebhook(settings, recorder, dict)
    assert post(webhook, {"task_id": "T1"}, token="")[0] == 401


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[1,2]",
        b'{"status": "completed"}',
        b'"text"',
        json.dumps({"task_id": "T" * 5000, "status": "completed"}).encode(),
        json.dumps({"task_id": "T1", "ref_id": "generic-" + "x" * 3000, "status": "completed"}).encode(),
    ],
)
def test_bad_bodies_are_4xx_never_5xx(webhook, body):
    status, answer = post(webhook, body)
    assert 400 <= status < 500
    assert answer["error"] == "bad_request"


def test_a_task_of_no_lead_is_acknowledged_and_ignored(webhook, captured_logs):
    from lead_caller.observability import metrics

    metrics.clear_metrics()
    body = {
        "task_id": "T" + "0" * 32,
        "run_id": "R" + "1" * 32,
        "status": "completed",
        "input": {"document_id": "generic-nobody", "contact_number": PHONE, "email": EMAIL},
        "output": {"call_status": "completed"},
    }

    status, answer = post(webhook, body)

    assert (status, answer["result"]) == (200, "unknown_task")
    assert "UnknownTaskReports" in metrics.metric_set
    metrics.clear_metrics()
    logs = captured_logs()
    assert PHONE not in logs
    assert EMAIL not in logs


def test_the_same_report_twice_is_one_update(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task))
    first = store.get(lead_id)

    status, answer = post(webhook, finished(task))

    assert (status, answer["result"]) == (200, "unchanged")
    assert store.get(lead_id) == first


def test_an_out_of_order_report_never_moves_a_lead_back(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task))

    status, answer = post(webhook, {**task, "status": "in_progress", "output": {}})

    assert (status, answer["result"]) == (200, "unchanged")
    assert store.get(lead_id)["status"] == "completed"


def test_in_progress_then_final_moves_forward(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)

    post(webhook, {**task, "status": "in_progress", "output": {}})
    assert store.get(lead_id)["status"] == "in_progress"
    post(webhook, finished(task, "busy"))

    assert store.get(lead_id)["status"] == "recall_pending"


def test_a_real_outcome_supersedes_outcome_unknown(
    dispatcher, sandbox, store, webhook, settings, recorder, client, credentials
):
    lead_id, task = called_lead(dispatcher, sandbox)
    later = time.time() + settings.outcome_horizon_seconds + 60
    make_poller(settings, store, recorder, client, credentials, clock=lambda: later).run()
    assert store.get(lead_id)["status"] == "outcome_unknown"

    post(webhook, finished(task))

    item = store.get(lead_id)
    assert item["status"] == "completed"
    assert [entry["outcome"] for entry in item["attempts_log"]] == ["outcome_unknown", "completed"]


def test_a_transcript_over_400_kb_goes_to_s3_and_only_its_key_to_the_item(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)
    transcript = [{"role": "user", "content": SECRET_WORDS}] + [
        {"role": "agent", "content": "x" * 1000} for _ in range(500)
    ]

    status, _ = post(webhook, finished(task, transcript=transcript))

    assert status == 200
    item = store.get(lead_id)
    key = item["transcript_key"]
    stored = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentLength"] > 400_000
    assert json.loads(stored["Body"].read())[0]["content"] == SECRET_WORDS
    assert SECRET_WORDS not in json.dumps(item, default=str)


def test_nothing_personal_or_secret_reaches_the_logs(dispatcher, sandbox, webhook, captured_logs):
    _, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task, transcript=[{"role": "user", "content": SECRET_WORDS}]), token="wrong")
    post(webhook, finished(task, transcript=[{"role": "user", "content": SECRET_WORDS}]))
    post(webhook, b"{broken " + PHONE.encode())

    logs = captured_logs()
    assert "call outcome recorded" in logs
    for secret in (PHONE, EMAIL, SECRET_WORDS, TOKEN, "wrong"):
        assert secret not in logs


# ---- the poller ------------------------------------------------------------------------------
def test_the_poller_records_the_outcome_when_the_webhook_never_came(
    dispatcher, sandbox, store, settings, recorder, client, credentials
):
    lead_id, task = called_lead(dispatcher, sandbox)
    sandbox.update_task(task["task_id"], status="completed", output=finished(task)["output"])
    later = time.time() + settings.outcome_poll_backoff_seconds + 1

    summary = make_poller(settings, store, recorder, client, credentials, clock=lambda: later).run()

    assert (summary.open_leads, summary.polled, summary.recorded) == (1, 1, 1)
    item = store.get(lead_id)
    assert (item["status"], item["outcome_source"]) == ("completed", "poller")


def test_the_poller_waits_for_fresh_calls_then_backs_off_per_lead(
    dispatcher, sandbox, store, settings, recorder, client, credentials
):
    lead_id, _ = called_lead(dispatcher, sandbox)
    now = time.time()

    fresh = make_poller(settings, store, recorder, client, credentials, clock=lambda: now).run()
    assert (fresh.open_leads, fresh.polled) == (1, 0)

    first = now + settings.outcome_poll_backoff_seconds + 1
    make_poller(settings, store, recorder, client, credentials, clock=lambda: first).run()
    item = store.get(lead_id)
    assert item["status"] == "call_requested"
    assert (item["poll_count"], int(item["next_poll_at"])) == (1, int(first + 60))

    again = make_poller(settings, store, recorder, client, credentials, clock=lambda: first + 30).run()
    assert again.polled == 0  # not due yet
    second = first + 61
    make_poller(settings, store, recorder, client, credentials, clock=lambda: second).run()
    item = store.get(lead_id)
    assert (item["poll_count"], int(item["next_poll_at"])) == (2, int(second + 120))


def test_the_poller_queries_the_status_index_and_never_scans(
    dispatcher, sandbox, store, settings, recorder, client, credentials
):
    called_lead(dispatcher, sandbox)
    calls: list[str] = []
    real = store.client

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    store.client = Spy()
    make_poller(settings, store, recorder, client, credentials, clock=lambda: time.time() + 100).run()

    assert "query" in calls
    assert "scan" not in calls


def test_the_poller_gives_up_after_the_horizon(dispatcher, sandbox, store, settings, recorder, client, credentials):
    lead_id, _ = called_lead(dispatcher, sandbox)
    later = time.time() + settings.outcome_horizon_seconds + 1

    summary = make_poller(settings, store, recorder, client, credentials, clock=lambda: later).run()

    assert summary.gave_up == 1
    item = store.get(lead_id)
    assert (item["status"], item["status_rank"]) == ("outcome_unknown", 35)


def test_an_unreachable_unpod_only_backs_off(dispatcher, sandbox, store, settings, recorder, credentials):
    from tests.conftest import fast_client

    lead_id, _ = called_lead(dispatcher, sandbox)
    dead = fast_client("http://127.0.0.1:9/api/v2/platform", max_retries=0)  # nothing listens there
    later = time.time() + settings.outcome_poll_backoff_seconds + 1

    summary = make_poller(settings, store, recorder, dead, credentials, clock=lambda: later).run()

    assert summary.lookup_failures == 1
    item = store.get(lead_id)
    assert (item["status"], item["poll_count"]) == ("call_requested", 1)


# ---- re-call attempts ------------------------------------------------------------------------
def drain(settings) -> list[QueuedRecord]:
    sqs = boto3.client("sqs")
    records = []
    for message in sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        records.append(QueuedRecord(message["MessageId"], message["Body"], 1))
        sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return records


def recall_round(dispatcher, sandbox, store, webhook, poller_for, settings, lead_id, call_status):
    """The current attempt ends with call_status; when a re-call is due the poller queues it and it is dispatched."""
    item = store.get(lead_id)
    task = next(t for t in sandbox.created_tasks if t["task_id"] == item["task_ids"][0])
    post(webhook, finished(task, call_status))
    item = store.get(lead_id)
    if item["status"] == "recall_pending":
        poller_for(float(item["recall_at"]) + 1).run()
        records = drain(settings)
        assert [LeadMessage.from_json(r.body).attempt for r in records] == [item["call_attempt"] + 1]
        assert dispatcher.dispatch(records).retry == {}
    return store.get(lead_id)


def test_no_answer_is_called_again_up_to_the_limit(
    dispatcher, sandbox, store, webhook, settings, recorder, client, credentials
):
    def poller_for(at):
        return make_poller(settings, store, recorder, client, credentials, clock=lambda: at)

    lead_id, _ = called_lead(dispatcher, sandbox)
    item = store.get(lead_id)
    post_first = recall_round(dispatcher, sandbox, store, webhook, poller_for, settings, lead_id, "no_answer")
    assert (post_first["status"], post_first["call_attempt"]) == ("call_requested", 2)
    assert post_first["run_id"] != item["run_id"]
    assert post_first["previous_run_ids"] == [item["run_id"]]
    after_second = recall_round(dispatcher, sandbox, store, webhook, poller_for, settings, lead_id, "busy")
    assert after_second["call_attempt"] == 3
    final = recall_round(dispatcher, sandbox, store, webhook, poller_for, settings, lead_id, "voicemail")

    assert (final["status"], final["call_attempt"]) == ("voicemail", 3)
    assert [(e["attempt"], e["outcome"]) for e in final["attempts_log"]] == [
        (1, "no_answer"),
        (2, "busy"),
        (3, "voicemail"),
    ]
    assert len([t for t in sandbox.created_tasks if t["ref_id"] == lead_id.replace("#", "-")]) == 3
    poller_for(time.time() + 10**6).run()
    assert drain(settings) == []


def test_the_recall_waits_for_its_delay(dispatcher, sandbox, store, webhook, settings, recorder, client, credentials):
    lead_id, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task, "no_answer"))
    item = store.get(lead_id)
    assert item["attempt_status"] == "no_answer"
    assert float(item["recall_at"]) == pytest.approx(time.time() + 100, abs=30)

    make_poller(settings, store, recorder, client, credentials, clock=lambda: float(item["recall_at"]) - 5).run()

    assert drain(settings) == []


def test_never_recalled_after_completed(dispatcher, sandbox, store, webhook, settings, recorder, client, credentials):
    lead_id, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task, "no_answer"))
    due = float(store.get(lead_id)["recall_at"]) + 1
    make_poller(settings, store, recorder, client, credentials, clock=lambda: due).run()
    records = drain(settings)
    assert len(records) == 1
    # a late report says the first attempt was answered after all, before the re-call is claimed
    post(webhook, finished(task, "completed"))

    result = dispatcher.dispatch(records)

    assert result.retry == {}
    item = store.get(lead_id)
    assert (item["status"], item["call_attempt"]) == ("completed", 1)
    assert len([t for t in sandbox.created_tasks if t["ref_id"] == lead_id.replace("#", "-")]) == 1


def test_a_recall_message_is_claimed_once_and_a_first_call_cannot_take_a_recall(dispatcher, sandbox, store, webhook):
    lead_id, task = called_lead(dispatcher, sandbox)
    post(webhook, finished(task, "busy"))
    item = store.get(lead_id)
    document = ContactDocument.from_unpod(item["document"])
    first_call = LeadMessage("generic", item["record_id"], time.time() - 10**6, document)
    recall = dataclasses.replace(first_call, received_at=time.time(), attempt=2)
    wrong_attempt = dataclasses.replace(recall, attempt=3)

    assert store.claim(first_call, "m-first").kind == "duplicate"
    assert store.claim(wrong_attempt, "m-wrong").kind == "duplicate"
    assert store.claim(recall, "m-recall").kind == "claimed"
    assert store.claim(recall, "m-recall-again").kind == "duplicate"
    assert store.get(lead_id)["call_attempt"] == 2


def test_a_late_report_of_an_earlier_attempt_is_ignored(
    dispatcher, sandbox, store, webhook, settings, recorder, client, credentials
):
    def poller_for(at):
        return make_poller(settings, store, recorder, client, credentials, clock=lambda: at)

    lead_id, first_task = called_lead(dispatcher, sandbox)
    recall_round(dispatcher, sandbox, store, webhook, poller_for, settings, lead_id, "no_answer")

    status, answer = post(webhook, finished(first_task, "completed"))

    assert (status, answer["result"]) == (200, "unchanged")
    item = store.get(lead_id)
    assert (item["status"], item["call_attempt"]) == ("call_requested", 2)


def test_max_attempts_one_never_recalls(dispatcher, sandbox, store, settings, recorder):
    single = OutcomeRecorder(dataclasses.replace(settings, max_call_attempts=1), store, None)
    lead_id, task = called_lead(dispatcher, sandbox)

    report = TaskReport.from_task(finished(task, "no_answer"))
    assert report is not None
    result = single.record(report, "agent_webhook")

    assert result.status == "no_answer"
    assert store.get(lead_id)["status"] == "no_answer"


# ---- messages and the sandbox -----------------------------------------------------------------
def test_lead_messages_without_an_attempt_are_first_calls():
    body = json.dumps({"v": 1, "source": "generic", "record_id": "x", "received_at": 1.0, "document": None})
    assert LeadMessage.from_json(body).attempt == 1
    again = LeadMessage.from_json(dataclasses.replace(LeadMessage.from_json(body), attempt=2).to_json())
    assert again.attempt == 2


def test_the_sandbox_call_simulation_refuses_unknown_outcomes_and_faults():
    sim = CallSimulation()
    with pytest.raises(ValueError, match="unknown outcomes"):
        sim.configure(mix=["teleported"])
    with pytest.raises(ValueError, match="unknown delivery faults"):
        sim.configure(faults=["lost-in-space"])
    sim.configure(mix=["busy", "answered"], by_document={"d": ["failed"]})
    assert [sim.next_outcome("d"), sim.next_outcome("d"), sim.next_outcome("x")] == ["failed", "busy", "answered"]
