"""The embedded AWS (`local/embedded_aws.py`): moto's app under waitress, kept-alive connections,
a stop that leaves nothing running; and the demo's wait for open leads (`local.stack.open_leads`)."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

import boto3
import moto.backends
import pytest
import urllib3

from local.embedded_aws import EmbeddedAwsServer, cache_moto_module_list
from local.resources import LocalResources
from local.stack import OPEN_STATUSES, open_leads


@pytest.fixture
def server() -> Any:
    running = EmbeddedAwsServer("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def _sqs(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


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
