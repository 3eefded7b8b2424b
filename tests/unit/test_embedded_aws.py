"""The embedded AWS (`local/embedded_aws.py`): moto's app under waitress, kept-alive connections,
a stop that leaves nothing running; and the demo's wait for open leads (`local.stack.open_leads`)."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.config
import moto.backends
import pytest
import urllib3

from local.embedded_aws import EmbeddedAwsServer, OneRequestAtATime, cache_moto_module_list
from local.resources import LocalResources
from local.stack import OPEN_STATUSES, open_leads


@pytest.fixture
def server() -> Any:
    running = EmbeddedAwsServer("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def _client(service: str, endpoint: str, **options: Any) -> Any:
    """A boto3 client of its own (own connection pool) for the server at `endpoint`."""
    session: Any = boto3.session.Session()  # any service by name (boto3's stubs list each one)
    return session.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **options,
    )


def _sqs(endpoint: str) -> Any:
    return _client("sqs", endpoint)


def test_aws_requests_reuse_one_connection(server: EmbeddedAwsServer) -> None:
    """werkzeug's server closed the connection after every response; this one keeps it."""
    host, port = server.get_host_and_port()
    pool = urllib3.HTTPConnectionPool(host, port, maxsize=1, block=True)
    body = "Action=ListQueues&Version=2012-11-05"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    for _ in range(5):
        response = pool.request("POST", "/", body=body, headers=headers, retries=False)
        assert response.status == 200
        assert response.headers.get("Connection", "").lower() != "close"
    assert pool.num_connections == 1


def test_boto3_works_against_it_and_stop_ends_everything(server: EmbeddedAwsServer) -> None:
    host, port = server.get_host_and_port()
    sqs = _sqs(f"http://{host}:{port}")
    queue_url = sqs.create_queue(QueueName="embedded-aws-test")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    assert sqs.receive_message(QueueUrl=queue_url)["Messages"][0]["Body"] == "hello"
    answers: list[Any] = []
    busy = threading.Thread(
        target=lambda: answers.append(sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)), daemon=True
    )
    busy.start()
    time.sleep(0.3)  # a long poll in flight while it stops: it is answered first

    server.stop()

    busy.join(timeout=5)
    assert answers
    assert "Messages" not in answers[0]

    assert not any(thread.name == "embedded-aws" and thread.is_alive() for thread in threading.enumerate())
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, port), timeout=1):
        pass
    server.stop()  # twice is harmless


def test_the_module_list_is_read_once_and_stays_the_same() -> None:
    cache_moto_module_list()
    first = list(moto.backends.list_of_moto_modules())
    assert "sqs" in first
    assert "dynamodb" in first
    cache_moto_module_list()  # idempotent
    assert list(moto.backends.list_of_moto_modules()) == first


def test_open_leads_finds_every_open_status_in_one_scan_and_skips_calls_planned_later(aws: LocalResources) -> None:
    dynamodb = boto3.client("dynamodb")
    items = {f"generic#{status}": {"status": {"S": status}} for status in OPEN_STATUSES}
    items["generic#later"] = {"status": {"S": "call_requested"}, "planned_at": {"S": "2999-01-01T09:00:00Z"}}
    items["generic#soon"] = {"status": {"S": "call_requested"}, "planned_at": {"S": "2000-01-01T09:00:00Z"}}
    items["generic#done"] = {"status": {"S": "completed"}}
    for key, fields in items.items():
        dynamodb.put_item(TableName=aws.table_name, Item={"pk": {"S": key}, **fields})
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda event_name, **_: calls.append(event_name))
    stack = SimpleNamespace(resources=aws, client=lambda service: dynamodb)

    found = open_leads(stack)  # type: ignore[arg-type]

    assert found == sorted([f"generic#{status}" for status in OPEN_STATUSES] + ["generic#soon"])
    assert calls == ["before-call.dynamodb.Scan"]


def _dynamodb(endpoint: str) -> Any:
    # one attempt: an error shows, is not retried away
    return _client("dynamodb", endpoint, config=botocore.config.Config(retries={"max_attempts": 1}))


def _run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except BaseException as error:  # collected and asserted on below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_requests_at_the_same_time_apply_one_after_the_other_as_in_aws(server: EmbeddedAwsServer) -> None:
    """moto's backends hold no locks: a Scan copying an item an UpdateItem grows failed with
    "dictionary changed size during iteration" (a make run in CI), and two conditional claims
    of one item could both pass. The server answers one request at a time."""
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = _dynamodb(endpoint)
    setup.create_table(
        TableName="together",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for index in range(20):
        setup.put_item(TableName="together", Item={"pk": {"S": f"lead-{index}"}})
    claims: list[str] = []

    def grow_items(worker: int) -> Callable[[], None]:
        def work() -> None:
            client = _dynamodb(endpoint)
            for round_ in range(40):
                client.update_item(
                    TableName="together",
                    Key={"pk": {"S": f"lead-{round_ % 20}"}},
                    UpdateExpression=f"SET w{worker}r{round_} = :v",
                    ExpressionAttributeValues={":v": {"S": "x" * 50}},
                )

        return work

    def scan() -> None:
        client = _dynamodb(endpoint)
        for _ in range(40):
            client.scan(TableName="together")

    def claim(worker: int) -> Callable[[], None]:
        def work() -> None:
            client = _dynamodb(endpoint)
            for round_ in range(20):
                try:
                    client.update_item(
                        TableName="together",
                        Key={"pk": {"S": f"lead-{round_}"}},
                        UpdateExpression="SET claimed_by = :me",
                        ConditionExpression="attribute_not_exists(claimed_by)",
                        ExpressionAttributeValues={":me": {"S": str(worker)}},
                    )
                    claims.append(f"lead-{round_}")
                except client.exceptions.ConditionalCheckFailedException:
                    pass

        return work

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: interleavings that AWS never shows come quickly
    try:
        errors = _run_together(
            [grow_items(worker) for worker in range(2)] + [scan] + [claim(worker) for worker in range(4)]
        )
    finally:
        sys.setswitchinterval(switch_interval)

    assert errors == []
    assert sorted(claims) == sorted(f"lead-{index}" for index in range(20))  # each claimed exactly once


def test_a_long_poll_waits_beside_other_requests(server: EmbeddedAwsServer) -> None:
    """A ReceiveMessage waiting for a message must not hold up the SendMessage that brings it."""
    host, port = server.get_host_and_port()
    sqs = _sqs(f"http://{host}:{port}")
    queue_url = sqs.create_queue(QueueName="long-poll-test")["QueueUrl"]
    answers: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answers.append(sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=20)), daemon=True
    )
    waiting.start()
    time.sleep(0.3)  # the poll is waiting

    _sqs(f"http://{host}:{port}").send_message(QueueUrl=queue_url, MessageBody="wake up")

    waiting.join(timeout=30)
    assert [message["Body"] for message in answers[0].get("Messages", [])] == ["wake up"]


def test_a_query_protocol_long_poll_is_recognised_and_its_body_still_reaches_the_app() -> None:
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    middleware = OneRequestAtATime(app)
    body = b"Action=ReceiveMessage&QueueUrl=q&WaitTimeSeconds=20"
    environ = {
        "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    assert OneRequestAtATime._may_wait(dict(environ, **{"wsgi.input": io.BytesIO(body)}))
    assert not OneRequestAtATime._may_wait({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Scan"})
    assert list(middleware(environ, lambda *_: None)) == [b"ok"]
    assert seen == [body]
