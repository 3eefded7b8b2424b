"""Retry schedule, horizon, outcome_unknown, Retry-After, the shared circuit breaker, pacing and
the handler's requeue step, with moto and the Unpod sandbox over HTTP (time injected, never measured)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lead_caller.circuit import Circuit
from lead_caller.dispatcher import BatchResult, Dispatcher, QueuedRecord
from lead_caller.pacing import Pacer
from lead_caller.requeue import settle
from lead_caller.retry_schedule import RetrySchedule, parse_steps, visibility_seconds
from lead_caller.unpod import UnpodLookupError
from tests.conftest import fast_client
from tests.unit.test_dispatcher import created_documents, lead, record


class Clock:
    """A settable clock shared by the dispatcher, the circuit and the pacer."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resilient(settings, store, client, credentials, clock) -> Dispatcher:
    """A dispatcher with a short schedule (1 s, 2 s), a 100 s horizon and a fake clock."""
    settings = dataclasses.replace(settings, max_receive_count=1000, circuit_failure_threshold=3)
    schedule = RetrySchedule(steps=(1, 2), horizon_seconds=100, random=lambda: 0.5)
    circuit = Circuit(store.client, store.table_name, threshold=3, base_open_seconds=30, clock=clock)
    pacer = Pacer(store.client, store.table_name, 0, clock=clock)
    return Dispatcher(
        settings, store, client, lambda: credentials, schedule=schedule, circuit=circuit, pacer=pacer, clock=clock
    )


def again(first: QueuedRecord, receive_count: int) -> QueuedRecord:
    return dataclasses.replace(first, receive_count=receive_count)


# ---- the schedule ------------------------------------------------------------------------
def test_the_schedule_grows_then_repeats_its_last_step_with_bounded_jitter():
    low = RetrySchedule(random=lambda: 0.0)
    high = RetrySchedule(random=lambda: 1.0)
    assert [round(low.delay(n)) for n in range(1, 8)] == [24, 96, 480, 1440, 2880, 2880, 2880]
    assert [round(high.delay(n)) for n in range(1, 8)] == [36, 144, 720, 2160, 4320, 4320, 4320]
    assert RetrySchedule(time_scale=1 / 3600, random=lambda: 0.5).delay(5) == pytest.approx(1.0)
    assert visibility_seconds(0.01) == 1
    assert visibility_seconds(10**9) == 43_200
    assert parse_steps("30, 120,600") == (30.0, 120.0, 600.0)
    with pytest.raises(ValueError, match="positive"):
        parse_steps("30,-1")


def test_a_lead_is_given_up_only_after_the_horizon_and_the_schedules_length():
    schedule = RetrySchedule(steps=(1, 2, 3), horizon_seconds=100)
    assert not schedule.gives_up(first_try_at=0, now=1000, lead_failures=2)  # horizon passed, too few failures
    assert not schedule.gives_up(first_try_at=0, now=50, lead_failures=9)  # many failures, horizon not passed
    assert schedule.gives_up(first_try_at=0, now=100, lead_failures=3)


# ---- per-lead failures: schedule, horizon, failed -------------------------------------------
def test_per_lead_failures_follow_the_schedule_then_fail_after_the_horizon(resilient, sandbox, store, clock):
    message = lead("flaky-lead")
    first = record(message)
    for _ in range(3):
        sandbox.enqueue_fault("status", status=502)

    result = resilient.dispatch([first])

    assert result.delays[first.message_id] == pytest.approx(1.0)  # the first step
    item = store.get(message.lead_id)
    assert (item["status"], item["lead_failures"], item["call_state"]) == ("dispatching", 1, "not_sent")
    assert item["last_error"].startswith("http_502")
    first_try_at = item["first_try_at"]

    clock.advance(150)  # past the horizon
    for _ in range(3):
        sandbox.enqueue_fault("status", status=502)
    result = resilient.dispatch([again(first, 2)])

    assert first.message_id in result.dead_letter
    item = store.get(message.lead_id)
    assert item["status"] == "failed"
    assert item["first_try_at"] == first_try_at
    assert "gave up after 2 failed attempts" in item["reason"]
    assert sandbox.created_tasks == []


def test_an_unknown_last_attempt_becomes_outcome_unknown_and_is_reconciled_before_any_new_call(
    resilient, sandbox, store, clock, monkeypatch
):
    resilient.client = fast_client(sandbox.base_url, read_timeout=0.3)
    sandbox.enqueue_fault("delay", seconds=1.0)  # Unpod creates the task, the answer comes too late
    message = lead("uncertain")
    first = record(message)
    assert first.message_id in resilient.dispatch([first]).retry
    assert len(sandbox.created_tasks) == 1

    def unreachable(*_args, **_kwargs):
        raise UnpodLookupError("Unpod could not be reached: ReadTimeoutError")

    monkeypatch.setattr(resilient.client, "find_task", unreachable)
    clock.advance(150)
    result = resilient.dispatch([again(first, 2)])  # cannot reconcile, horizon passed: given up

    assert first.message_id in result.dead_letter
    item = store.get(message.lead_id)
    assert item["status"] == "outcome_unknown"  # never "failed": a call may have happened
    assert item["call_state"] == "sending"
    assert len(sandbox.requests) == 1  # no second Create Task

    monkeypatch.undo()
    redriven = record(message)  # a redrive or the sender's new delivery: a new message id
    result = resilient.dispatch([redriven])

    assert result.retry == {}
    assert result.dead_letter == {}
    assert len(sandbox.created_tasks) == 1  # reconciled: still one call
    item = store.get(message.lead_id)
    assert item["status"] == "call_requested"
    assert item["reconciled"] is True


def test_the_webhook_lets_an_outcome_unknown_lead_come_back(store):
    item = {"pk": {"S": "generic#back"}, "status": {"S": "outcome_unknown"}, "dedupe_until": {"N": "9999999999"}}
    store.client.put_item(TableName=store.table_name, Item=item)
    assert store.recently_called(["generic#back"]) == {}


# ---- Retry-After ---------------------------------------------------------------------------
def test_429_with_a_long_retry_after_is_not_retried_early_and_delays_the_message(resilient, sandbox, store):
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "15"})
    message = lead("throttled")
    first = record(message)

    result = resilient.dispatch([first])

    assert len(sandbox.requests) == 1  # not called again within the invocation
    assert result.delays[first.message_id] >= 15  # never before Retry-After
    assert visibility_seconds(result.delays[first.message_id]) >= 15
    item = store.get(message.lead_id)
    assert (item["status"], item["error_kind"], item["lead_failures"]) == ("dispatching", "http_429", 0)


def test_a_short_retry_after_is_waited_in_request(client, credentials, sandbox):
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "0.1"})
    outcome = client.create_task(credentials, [{"name": "A", "contact_number": "+15125550101"}], "hi", {"type": "now"})
    assert outcome.kind == "accepted"
    assert [request["status"] for request in sandbox.requests] == [429, 200]


def test_an_http_date_retry_after_is_understood(client, credentials, sandbox):
    when = datetime.now(UTC) + timedelta(seconds=120)
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": when.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    outcome = client.create_task(credentials, [{"name": "A", "contact_number": "+15125550101"}], "hi", {"type": "now"})
    assert outcome.kind == "transient"
    assert outcome.retry_after is not None
    assert 100 < outcome.retry_after <= 120
    assert len(sandbox.requests) == 1


# ---- the circuit breaker ---------------------------------------------------------------------
def test_the_circuit_opens_after_a_run_of_systemic_failures_then_probes_and_closes(
    resilient, sandbox, store, clock, settings, client, credentials
):
    for _ in range(3 * 3):
        sandbox.enqueue_fault("status", status=503)
    failing = [record(lead(f"down{i}", f"+1512555020{i}")) for i in range(3)]
    for message in failing:
        result = resilient.dispatch([message])
        assert message.message_id in result.retry
    assert store.get("generic#down2")["lead_failures"] == 0  # the failure that opened it is systemic
    assert len(sandbox.requests) == 9
    circuit = store.get("circuit#unpod")
    assert circuit["state"] == "open"

    # a second dispatcher (another Lambda container) sees the shared state and sends nothing
    other = Dispatcher(
        dataclasses.replace(settings, max_receive_count=1000),
        store,
        client,
        lambda: credentials,
        circuit=resilient.circuit,
        pacer=resilient.pacer,
        schedule=resilient.schedule,
        clock=clock,
    )
    waiting = record(lead("arrived-during-outage"))
    result = other.dispatch([waiting])
    assert len(sandbox.requests) == 9
    assert 30 <= result.delays[waiting.message_id] <= 36  # the rest of the open time, plus jitter
    assert store.get("generic#arrived-during-outage")["lead_failures"] == 0

    clock.advance(31)  # half-open: one probe, which succeeds and closes the circuit
    result = other.dispatch([again(waiting, 2)] + [again(m, 2) for m in failing])
    assert result.retry == {}
    assert store.get("circuit#unpod")["state"] == "closed"
    assert sorted(created_documents(sandbox)) == sorted(
        ["generic-arrived-during-outage"] + [f"generic-down{i}" for i in range(3)]
    )


def test_a_failed_probe_opens_the_circuit_again_for_longer(store, clock):
    circuit = Circuit(store.client, store.table_name, threshold=1, base_open_seconds=10, clock=clock)
    assert circuit.record_failure("unavailable") == pytest.approx(10)
    assert circuit.decide().kind == "wait"
    clock.advance(11)
    assert circuit.decide().kind == "probe"
    assert circuit.decide().kind == "wait"  # only one prober at a time
    assert circuit.record_failure("unavailable", probing=True) == pytest.approx(20)
    clock.advance(21)
    assert circuit.decide().kind == "probe"
    circuit.record_success()
    assert circuit.decide().kind == "send"


# ---- pacing --------------------------------------------------------------------------------
def test_the_pacer_shares_a_per_second_budget_and_waits_or_defers(store, clock):
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    clock.now = float(int(clock.now)) + 0.25
    first = Pacer(store.client, store.table_name, 2, max_wait_seconds=2, clock=clock, sleep=sleep)
    second = Pacer(store.client, store.table_name, 2, max_wait_seconds=0, clock=clock, sleep=sleep)
    assert first.acquire("space") == 0
    assert second.acquire("space") == 0
    assert second.acquire("space") == pytest.approx(1.0)  # full, and not allowed to wait: defer
    assert first.acquire("space") == 0  # waited for the next second
    assert slept == [pytest.approx(0.75)]
    assert first.acquire("other-space") == 0  # each space has its own budget


class SlowWrites:
    """A DynamoDB client whose writes end `seconds` after they start (throttled, retried or a
    busy container), on the test's clock."""

    def __init__(self, client, clock, seconds: float) -> None:
        self._client, self._clock, self.seconds = client, clock, seconds

    def update_item(self, **kwargs):
        answer = self._client.update_item(**kwargs)
        self._clock.advance(self.seconds)
        return answer

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_slot_granted_after_its_second_is_over_is_never_used(store, clock):
    """Issue 8: the clock was read before the conditional write only. A slot of second s taken
    at s + 0.7 by a write that ended at s + 1.05 let a request reach Unpod in s + 1, counted
    there on top of that second's own budget (6 requests in a second at 5/s)."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    base = float(int(clock.now))
    clock.now = base + 0.7
    slow = SlowWrites(store.client, clock, 0.35)
    pacer = Pacer(slow, store.table_name, 5, max_wait_seconds=2, clock=clock, sleep=sleep)
    sent_in: list[int] = []
    for _ in range(12):
        assert pacer.acquire("space") == 0
        sent_in.append(int(clock()))  # the request goes now: the second Unpod counts it in
        slow.seconds = 0.05
    per_second = {second: sent_in.count(second) for second in set(sent_in)}
    assert max(per_second.values()) <= 5, per_second  # was 6 in base + 1
    taken = {
        int(item["pk"]["S"].rsplit("#", 1)[1]): int(item["n"]["N"])
        for item in store.client.scan(TableName=store.table_name)["Items"]
        if item["pk"]["S"].startswith("rate#")
    }
    assert all(per_second[second] <= taken[second] for second in per_second)  # each request had its second's slot
    assert pacer.stale_slots == 1  # second base's slot came back at base + 1.05: dropped, unused
    assert taken[int(base)] == 1


def test_a_pacer_whose_writes_always_outlast_the_second_defers_instead_of_spinning(store, clock):
    clock.now = float(int(clock.now)) + 0.1
    slow = SlowWrites(store.client, clock, 1.0)
    pacer = Pacer(slow, store.table_name, 5, max_wait_seconds=2, clock=clock, sleep=clock.advance)
    assert pacer.acquire("space") >= 1.0  # deferred to the queue after its max wait
    assert pacer.stale_slots >= 1


# ---- the handler's requeue step ------------------------------------------------------------
def test_settle_moves_given_up_messages_and_applies_retry_delays(aws):
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=aws.queue_url, MessageBody="retry-me")
    sqs.send_message(QueueUrl=aws.queue_url, MessageBody="give-up")
    messages = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]} for m in messages]
    by_body = {r["body"]: r["messageId"] for r in records}
    result = BatchResult()
    result.later(by_body["retry-me"], "transient", 0.2)
    result.dead_letter[by_body["give-up"]] = "gave up after 5 failed attempts"

    settle(sqs, aws.queue_url, aws.dlq_url, records, result)

    dead = sqs.receive_message(QueueUrl=aws.dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dead] == ["give-up"]
    assert dead[0]["MessageAttributes"]["lead_caller_reason"]["StringValue"] == "gave up after 5 failed attempts"
    assert by_body["give-up"] not in result.retry  # acknowledged: the handler reports it done
    back = sqs.receive_message(QueueUrl=aws.queue_url, WaitTimeSeconds=3)["Messages"]
    assert [m["Body"] for m in back] == ["retry-me"]  # visible again after its delay (1 s), not 360 s


# ---- reconciliation pages back through many newer runs ---------------------------------------
def test_find_task_pages_back_through_many_newer_runs(client, credentials, sandbox):
    since = datetime.now(UTC) - timedelta(minutes=1)
    document = {"name": "Early", "contact_number": "+15125550100", "document_id": "generic-early"}
    client.create_task(credentials, [document], "hi", {"type": "now"})
    for index in range(25):
        other = {"name": f"N{index}", "contact_number": f"+151255503{index:02d}", "document_id": f"generic-n{index}"}
        client.create_task(credentials, [other], "hi", {"type": "now"})

    found = client.find_task(credentials, "generic-early", since, page_size=10)

    assert found is not None
    assert found[0] == sandbox.created_tasks[0]["run_id"]
    assert client.find_task(credentials, "generic-never", since, page_size=10) is None
    with pytest.raises(UnpodLookupError):
        client.find_task(credentials, "generic-never", since, page_size=5, max_pages=2)


def test_a_429_holds_the_space_for_every_dispatcher_until_retry_after(resilient, sandbox, settings, client, clock):
    sandbox.enqueue_fault("status", status=429, headers={"Retry-After": "20"})
    first = record(lead("told-to-wait"))
    assert first.message_id in resilient.dispatch([first]).retry
    other = Dispatcher(settings, resilient.store, client, resilient.credentials, pacer=resilient.pacer, clock=clock)

    later = record(lead("another-lead", "+15125550177"))
    result = other.dispatch([later])

    assert len(sandbox.requests) == 1  # the other dispatcher did not call before Retry-After
    assert result.delays[later.message_id] >= 19
    clock.advance(21)
    assert other.dispatch([again(later, 2)]).retry == {}
    assert len(sandbox.created_tasks) == 1


def test_a_hold_set_after_the_batch_read_it_is_honoured_once_that_read_is_stale(
    resilient, sandbox, credentials, clock, monkeypatch
):
    """The hold is read with the circuit state at the start of a batch; a send more than
    HOLD_READ_MAX_AGE later reads it again, so another dispatcher's 429 in between still holds."""
    apply_policy = resilient._apply_policy

    def slow_policy(leads: Any, result: Any) -> Any:
        ready = apply_policy(leads, result)
        resilient.pacer.hold(credentials.space_token, 30)  # another dispatcher was told 429
        clock.advance(2)  # e.g. a slow CRM fetch
        return ready

    monkeypatch.setattr(resilient, "_apply_policy", slow_policy)
    late = record(lead("late-hold"))

    result = resilient.dispatch([late])

    assert sandbox.requests == []
    assert result.delays[late.message_id] >= 27


# ---- the template wires it ------------------------------------------------------------------
def test_the_template_wires_the_schedule_the_circuit_alarms_and_pacing():
    from lead_caller.config import Settings
    from local.resources import load_template, parameter_defaults

    template = load_template()
    resources, defaults = template["Resources"], parameter_defaults(template)
    dispatch = resources["DispatchFunction"]["Properties"]
    variables = dispatch["Environment"]["Variables"]
    for name in (
        "DEAD_LETTER_QUEUE_URL",
        "RETRY_SCHEDULE_SECONDS",
        "RETRY_HORIZON_SECONDS",
        "UNPOD_REQUESTS_PER_SECOND",
    ):
        assert name in variables
    parsed = Settings.from_env(
        {name: defaults[ref["Ref"]] for name, ref in variables.items() if ref["Ref"] in defaults}
    )
    assert parsed.retry_schedule_seconds == Settings().retry_schedule_seconds
    assert resources["DispatchEventSource"]["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "DispatchMaxConcurrency"}
    }
    assert int(defaults["MaxReceiveCount"]) >= 100  # a safety net that cannot cut the schedule short
    assert resources["LeadsQueue"]["Properties"]["MessageRetentionPeriod"] == 1_209_600
    alarms = {r["Properties"].get("MetricName") for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"UnpodUnavailable", "UnpodCredentialsRejected"} <= alarms
    throttling = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert set(throttling) == {"ThrottlingBurstLimit", "ThrottlingRateLimit"}


def test_our_own_message_is_claimed_again_only_with_a_higher_receive_count(store):
    message = lead("receive-count")
    assert store.claim(message, "message-1", 1).kind == "claimed"
    assert store.claim(message, "message-1", 1).kind == "duplicate"  # a concurrent copy of the same receive
    assert store.claim(message, "message-1", 2).kind == "redelivered"
    assert store.claim(message, "message-1").kind == "redelivered"  # receive count unknown: no check
