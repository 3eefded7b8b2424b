"""What the performance work changed, asserted as behaviour (never as timings): tracing off the
cold path, lazy clients, the webhook's own routing, the partial batch response, the opt-in
duplicate check, key folding once per object, and the local servers' socket options."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from lead_caller.config import ConfigError, Settings
from lead_caller.intake import Intake
from lead_caller.mapping import FoldIndex, fold, lookup
from lead_caller.queue import LeadQueue
from lead_caller.secrets import webhook_credentials
from lead_caller.sources.base import WebhookRequest
from lead_caller.store import LeadStore
from lead_caller.wiring import LazyClient
from local.signing import LOCAL_BEARER_TOKEN
from local.stack import LambdaContextStub, api_gateway_event
from tests.lambda_like import lambda_like_environment


def imported_modules(module: str, **env: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module` in a Lambda-like environment."""
    environment = lambda_like_environment(**env)
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(output.strip().splitlines()[-1]))


def test_with_tracing_off_as_deployed_no_function_imports_the_xray_sdk_or_the_router():
    for module in ("lead_caller.handlers.webhook", "lead_caller.handlers.dispatch", "lead_caller.handlers.events"):
        loaded = imported_modules(module, POWERTOOLS_TRACE_DISABLED="true")
        assert "aws_xray_sdk" not in loaded, module
        assert "aws_lambda_powertools.event_handler" not in loaded, module
        assert "aws_lambda_powertools.utilities.batch" not in loaded, module


def test_with_the_xray_sdk_asked_for_the_handlers_are_traced():
    loaded = imported_modules("lead_caller.handlers.webhook", POWERTOOLS_TRACE_DISABLED="false")
    assert "aws_xray_sdk.core" in loaded


def test_lazy_clients_are_created_once_on_first_use():
    client = LazyClient("sqs")
    before: Any = client._client

    first = client.meta
    after: Any = client._client
    assert before is None
    assert after is not None
    assert client.meta is first
    assert first.service_model.service_name == "sqs"


def test_the_webhook_routes_only_post_webhooks_source():
    from lead_caller.handlers.webhook import route

    def event(method: str, path: str) -> dict[str, Any]:
        return api_gateway_event(method, path, "", {}, b"", "api.example.com")

    assert route(event("POST", "/webhooks/generic")) == "generic"
    assert route(event("POST", "/webhooks/hubspot/")) == "hubspot"
    assert route(event("GET", "/webhooks/generic")) is None
    assert route(event("POST", "/webhooks")) is None
    assert route(event("POST", "/webhooks/a/b")) is None
    assert route(event("POST", "/other/generic")) is None


def test_the_webhook_answers_through_the_intake_with_api_gateway_headers(settings, monkeypatch):
    import importlib

    for name, value in {
        "LEADS_TABLE_NAME": settings.table_name,
        "LEADS_QUEUE_URL": settings.queue_url,
        "WEBHOOK_SECRET_ID": settings.webhook_secret_id,
        "INTAKE_DUPLICATE_CHECK": "false",
    }.items():
        monkeypatch.setenv(name, value)
    webhook = importlib.reload(importlib.import_module("lead_caller.handlers.webhook"))
    body = json.dumps({"id": "route-1", "name": "Ada", "phone": "+1 512 555 0142"}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}

    response = webhook.handler(
        api_gateway_event("POST", "/webhooks/generic", "", headers, body, "api.example.com"),
        LambdaContextStub("WebhookFunction"),
    )

    assert response["statusCode"] == 202
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["isBase64Encoded"] is False
    assert json.loads(response["body"])["results"][0]["status"] == "queued"


def test_the_dispatch_report_lists_exactly_the_messages_to_retry():
    from lead_caller.dispatcher import BatchResult
    from lead_caller.handlers.dispatch import report

    event = {"Records": [{"messageId": "a"}, {"messageId": "b"}, {"messageId": "c"}]}

    assert report(BatchResult({"b": "transient"}), event, None) == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert report(BatchResult(), event, None) == {"batchItemFailures": []}


def test_intake_duplicate_check_is_read_from_the_environment():
    assert Settings.from_env({}).intake_duplicate_check is True  # the code's default: the old behaviour
    assert Settings.from_env({"INTAKE_DUPLICATE_CHECK": "false"}).intake_duplicate_check is False
    assert Settings.from_env({"INTAKE_DUPLICATE_CHECK": "TRUE"}).intake_duplicate_check is True
    with pytest.raises(ConfigError, match="INTAKE_DUPLICATE_CHECK"):
        Settings.from_env({"INTAKE_DUPLICATE_CHECK": "maybe"})


class NoReads(LeadStore):
    def recently_called(self, lead_ids: Any) -> dict[str, str]:  # pragma: no cover - must not run
        raise AssertionError("the duplicate check is off: no read")


def test_without_the_duplicate_check_a_called_lead_is_queued_and_the_claim_skips_it(settings, dispatcher, sandbox):
    settings = dataclasses.replace(settings, intake_duplicate_check=False)
    store = NoReads(boto3.client("dynamodb"), settings.table_name)
    intake = Intake(
        settings, store, LeadQueue(boto3.client("sqs"), settings.queue_url), partial(webhook_credentials, settings)
    )
    body = json.dumps({"id": "twice", "name": "Ada", "phone": "+1 512 555 0142"}).encode()
    request = WebhookRequest(
        "generic",
        "POST",
        "/webhooks/generic",
        "",
        {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"},
        body,
        "https://x/webhooks/generic",
        time.time(),
    )
    from lead_caller.dispatcher import QueuedRecord

    sqs = boto3.client("sqs")
    for _ in range(2):  # delivered, called, delivered again
        reply = intake.handle(request)
        assert json.loads(reply.body)["results"][0]["status"] == "queued"
        messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        dispatcher.dispatch([QueuedRecord(m["MessageId"], m["Body"], 1) for m in messages])

    assert [task["input"]["document_id"] for task in sandbox.created_tasks] == ["generic-twice"]


def test_folding_once_per_object_finds_what_folding_each_lookup_finds():
    record = {
        "First_Name": "Ada",
        "firstname": "shadowed",  # folds alike: the first key wins, as before
        "Contact": {"Phone-Number": "+1 512 555 0142", "emails": [{"Value": "a@example.com"}]},
        "plain": "x",
    }
    index = FoldIndex()
    for path in ("first name", "firstName", "contact.phone_number", "contact.emails.0.value", "plain", "missing.x"):
        assert lookup(record, path, index) == lookup(record, path), path
    assert lookup(record, "first_name", index) == "Ada"
    assert fold("First-Name") == "firstname"


def test_local_servers_disable_nagle_and_take_a_burst_of_connections():
    from local import stack, standin

    assert standin._Handler.disable_nagle_algorithm is True
    assert standin._HTTPServer.request_queue_size >= 64
    source = Path(stack.__file__).read_text()
    assert "disable_nagle_algorithm = True" in source
    assert "request_queue_size = LISTEN_BACKLOG" in source


class RecordingSQS:
    """An SQS client double that records which API each send used."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("SendMessage", 1))
        return {"MessageId": "m"}

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("SendMessageBatch", len(kwargs["Entries"])))
        return {"Successful": [], "Failed": []}


def test_a_lone_lead_is_sent_with_send_message_and_more_in_batches_of_ten():
    from lead_caller.contacts import ContactDocument
    from lead_caller.leads import LeadMessage

    def message(index: int) -> LeadMessage:
        document = ContactDocument(f"Lead {index}", f"+1512555{index:04d}", document_id=f"generic-q{index}")
        return LeadMessage("generic", f"q{index}", time.time(), document)

    client = RecordingSQS()
    queue = LeadQueue(client, "https://sqs.invalid/q")

    queue.send([message(0)])
    assert client.calls == [("SendMessage", 1)]

    client.calls.clear()
    queue.send([message(i) for i in range(21)])
    assert sorted(client.calls) == [("SendMessage", 1), ("SendMessageBatch", 10), ("SendMessageBatch", 10)]


def test_a_failed_lone_send_is_a_queue_error():
    from lead_caller.contacts import ContactDocument
    from lead_caller.leads import LeadMessage
    from lead_caller.queue import QueueError

    class Broken(RecordingSQS):
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            raise boto3.client("sqs").exceptions.ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessage")

    document = ContactDocument("Ada", "+15125550142", document_id="generic-x")
    with pytest.raises(QueueError, match="SendMessage failed"):
        LeadQueue(Broken(), "https://sqs.invalid/q").send([LeadMessage("generic", "x", time.time(), document)])


def test_when_the_callers_own_batch_fails_the_other_batches_settle_before_the_queue_error():
    """The calling thread sends the first batch itself: its failure must not answer the sender
    while the pool's batches are still in flight (a retry would race them)."""
    import threading

    from lead_caller.leads import LeadMessage
    from lead_caller.queue import QueueError

    caller = threading.get_ident()

    class FirstBatchFails(RecordingSQS):
        def __init__(self) -> None:
            super().__init__()
            self.settled: list[str] = []

        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            if threading.get_ident() == caller:
                raise boto3.client("sqs").exceptions.ClientError({"Error": {"Code": "Throttling"}}, "SendMessageBatch")
            time.sleep(0.05)  # still in flight when the caller's batch has failed
            self.settled.append(kwargs["Entries"][0]["Id"])
            return {"Successful": [], "Failed": []}

    client = FirstBatchFails()
    messages = [LeadMessage("generic", f"q{index}", time.time(), None, {}, {"id": index}) for index in range(30)]

    with pytest.raises(QueueError, match="SendMessageBatch failed"):
        LeadQueue(client, "https://sqs.invalid/q").send(messages)
    assert len(client.settled) == 2  # both pool batches had finished when the error was raised


def test_no_more_batches_are_in_flight_than_the_clients_connection_pool_holds():
    """25 batches (a delivery of large messages): the calling thread and the pool together never
    send more than MAX_PARALLEL_BATCHES at once, botocore's default connection pool."""
    import threading

    from lead_caller.leads import LeadMessage
    from lead_caller.queue import MAX_PARALLEL_BATCHES

    class Concurrency(RecordingSQS):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()
            self.in_flight = 0
            self.most = 0

        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            with self.lock:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            time.sleep(0.05)  # long enough for every sender to be in flight together
            with self.lock:
                self.in_flight -= 1
            return super().send_message_batch(**kwargs)

    client = Concurrency()
    messages = [LeadMessage("generic", f"q{index}", time.time(), None, {}, {"id": index}) for index in range(250)]

    LeadQueue(client, "https://sqs.invalid/q").send(messages)

    assert len(client.calls) == 25
    assert 2 <= client.most <= MAX_PARALLEL_BATCHES  # concurrent, and within the connection pool
