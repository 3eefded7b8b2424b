"""The `sam build` artifacts, run under the real Lambda runtime protocol (RIE, no Docker).

Invokes .aws-sam/build/WebhookFunction and .aws-sam/build/DispatchFunction
through the AWS Lambda Runtime Interface Emulator shipped with the SAM CLI,
against moto (DynamoDB, SQS, Secrets Manager) and the Unpod sandbox.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.resources import REGION, LocalResources, create_resources, function_environment, reset_embedded_aws
from local.rie import RieFunction, default_python, rie_binary, run_built_function
from local.unpod_sandbox import UnpodSandbox

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
WEBHOOK_DIR = BUILD / "WebhookFunction"
DISPATCH_DIR = BUILD / "DispatchFunction"
WEBHOOK_HANDLER = "lead_caller.handlers.webhook.handler"
DISPATCH_HANDLER = "lead_caller.handlers.dispatch.handler"

BEARER_TOKEN = "artifact-test-bearer-token"
SIGNING_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_TOKEN = "sandbox-api-token"
SPACE_TOKEN = "SANDBOXSPACE0000000000001"
ORG_HANDLE = "sandbox-org"
PILOT = "sandbox-agent"
RECORD_ID = "artifact-lead-1"

pytestmark = [
    pytest.mark.artifact,
    pytest.mark.skipif(
        not WEBHOOK_DIR.is_dir() or not DISPATCH_DIR.is_dir(),
        reason="no `sam build` output in .aws-sam/build (run `make sam-build`; it is skipped without python3.13)",
    ),
    pytest.mark.skipif(
        rie_binary() is None,
        reason="no aws-lambda-rie binary for this machine under .tools/sam (run `make tools`)",
    ),
]


@dataclass
class Stack:
    """The local stand-ins the functions talk to."""

    resources: LocalResources
    sandbox: UnpodSandbox
    env: dict[str, str]

    def sqs(self) -> SQSClient:
        """A boto3 SQS client on moto."""
        return boto3.client(
            "sqs",
            endpoint_url=self.resources.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def dynamodb(self) -> DynamoDBClient:
        """A boto3 DynamoDB client on moto."""
        return boto3.client(
            "dynamodb",
            endpoint_url=self.resources.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def queue_depth(self) -> int:
        """Visible + in-flight messages on the leads queue."""
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="module")
def runtime_python() -> str:
    """The interpreter standing in for the Lambda runtime: Python 3.13 with awslambdaric and boto3."""
    python = default_python()
    probe = subprocess.run(
        [python, "-c", "import sys, awslambdaric, boto3; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "3.13":
        pytest.skip(f"{python} is not a Python 3.13 with awslambdaric and boto3: {probe.stdout}{probe.stderr}")
    return python


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """moto on 127.0.0.1 with the template's resources, and the Unpod sandbox."""
    werkzeug = logging.getLogger("werkzeug")  # moto's per-request access log
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    sandbox = UnpodSandbox(api_token=API_TOKEN, space_token=SPACE_TOKEN, org_handle=ORG_HANDLE, pilots=(PILOT,))
    try:
        sandbox.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        reset_embedded_aws(endpoint)  # moto's state is per process: start from an empty account
        resources = create_resources(
            endpoint,
            unpod_secret={"api_token": API_TOKEN, "space_token": SPACE_TOKEN, "org_handle": ORG_HANDLE, "pilot": PILOT},
            webhook_secret={"generic": {"bearer_token": BEARER_TOKEN, "signing_secret": SIGNING_SECRET}},
        )
        # several records share one number here: one call per phone number is tested in test_policy.py
        overrides = {"UNPOD_BASE_URL": sandbox.base_url, "CALLING_POLICY": '{"dedupe_by_phone": false}'}
        env = function_environment(resources, overrides)
        yield Stack(resources, sandbox, env)
    finally:
        sandbox.stop()
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def webhook(stack: Stack, runtime_python: str) -> Iterator[RieFunction]:
    """The built WebhookFunction under the emulator."""
    with run_built_function(
        WEBHOOK_DIR, WEBHOOK_HANDLER, stack.env, runtime_python, function_name="WebhookFunction", timeout=10
    ) as function:
        yield function


@pytest.fixture(scope="module")
def dispatch(stack: Stack, runtime_python: str) -> Iterator[RieFunction]:
    """The built DispatchFunction under the emulator."""
    with run_built_function(
        DISPATCH_DIR, DISPATCH_HANDLER, stack.env, runtime_python, function_name="DispatchFunction", timeout=60
    ) as function:
        yield function


@pytest.fixture(scope="module")
def event_function(stack: Stack, runtime_python: str) -> Iterator[RieFunction]:
    """The built EventFunction under the emulator."""
    build = BUILD / "EventFunction"
    if not build.is_dir():
        pytest.skip("no EventFunction in .aws-sam/build")
    with run_built_function(
        build,
        "lead_caller.handlers.events.handler",
        stack.env,
        runtime_python,
        function_name="EventFunction",
        timeout=30,
    ) as function:
        yield function


def test_the_built_event_function_queues_a_lead_created_event(stack: Stack, event_function: RieFunction) -> None:
    """A "Lead Created" EventBridge event, through the built EventFunction, lands on the leads queue."""
    sample = json.loads((ROOT / "events" / "eventbridge-lead-created.json").read_text())
    sample["detail"]["id"] = "artifact-event-1"

    result = event_function.invoke(sample)

    assert result["source"] == "eventbridge", (result, event_function.output)
    assert [r["status"] for r in result["results"]] == ["queued"]
    received = stack.sqs().receive_message(QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10)
    bodies = [json.loads(message["Body"]) for message in received.get("Messages", [])]
    assert any(body["record_id"] == "artifact-event-1" for body in bodies)
    print(f"\nEventFunction init duration: {event_function.init_duration_ms()} ms")


def http_api_event(body: str, headers: dict[str, str], source: str = "generic") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for POST /webhooks/{source}."""
    now = time.time()
    domain = "abc123defg.execute-api.us-east-1.amazonaws.com"
    path = f"/webhooks/{source}"
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": domain,
            "user-agent": "artifact-test/1.0",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-proto": "https",
            "content-length": str(len(body.encode())),
            **headers,
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": domain,
            "domainPrefix": "abc123defg",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "artifact-test/1.0",
            },
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": "POST /webhooks/{source}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": {"source": source},
        "body": body,
        "isBase64Encoded": False,
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event the event source mapping would deliver for received messages."""
    records = []
    for message in messages:
        attributes = message.get("Attributes") or {}
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                    "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                    "ApproximateFirstReceiveTimestamp": attributes.get(
                        "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                    ),
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def test_webhook_queues_lead_and_dispatch_calls_unpod(
    stack: Stack, webhook: RieFunction, dispatch: RieFunction
) -> None:
    """Webhook -> SQS -> dispatch -> Unpod -> DynamoDB, through the built artifacts."""
    lead = {"id": RECORD_ID, "name": "Ada Lovelace", "phone": "+1 512 555 0142", "email": "ada@example.com"}
    event = http_api_event(json.dumps(lead), {"authorization": f"Bearer {BEARER_TOKEN}"})

    # (1) the webhook answers 202 and queues the lead
    response = webhook.invoke(event)
    assert response["statusCode"] == 202, (response, webhook.output)
    reply = json.loads(response["body"])
    assert [result["status"] for result in reply["results"]] == ["queued"], reply
    lead_id = reply["results"][0]["lead_id"]
    assert lead_id == f"generic#{RECORD_ID}"

    sqs = stack.sqs()
    received = sqs.receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
    ).get("Messages", [])
    assert len(received) == 1, received
    assert json.loads(received[0]["Body"])["record_id"] == RECORD_ID

    # (2) the dispatcher sends it to Unpod and records the run
    queue_arn = sqs.get_queue_attributes(QueueUrl=stack.resources.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    result = dispatch.invoke(sqs_event(received, queue_arn))
    assert result == {"batchItemFailures": []}, (result, dispatch.output)
    # the event source mapping deletes what the batch did not report as failed
    sqs.delete_message(QueueUrl=stack.resources.queue_url, ReceiptHandle=received[0]["ReceiptHandle"])

    requests = stack.sandbox.requests
    assert len(requests) == 1, requests
    sent = requests[0]
    assert sent["status"] == 200, sent
    assert sent["path"] == f"/api/v2/platform/spaces/{SPACE_TOKEN}/tasks/create/"
    assert sent["headers"]["authorization"] == f"Token {API_TOKEN}"
    documents = sent["json"]["documents"]
    assert len(documents) == 1, documents
    assert documents[0]["name"] == "Ada Lovelace"
    assert documents[0]["contact_number"] == "+15125550142"
    assert sent["json"]["pilot"] == PILOT

    item = stack.dynamodb().get_item(
        TableName=stack.resources.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True
    )["Item"]
    assert item["status"]["S"] == "call_requested", item
    assert item["run_id"]["S"].startswith("R"), item
    assert item["run_id"]["S"] == stack.sandbox.runs[0]["run_id"]

    # (4) both cold starts were reported by the emulator
    webhook_init, dispatch_init = webhook.init_duration_ms(), dispatch.init_duration_ms()
    print(f"\nWebhookFunction init duration: {webhook_init} ms; DispatchFunction init duration: {dispatch_init} ms")
    assert isinstance(webhook_init, float), webhook.output
    assert webhook_init > 0
    assert isinstance(dispatch_init, float), dispatch.output
    assert dispatch_init > 0


def test_webhook_refuses_a_bad_bearer_token(stack: Stack, webhook: RieFunction) -> None:
    """(3) A wrong bearer token is 401 and nothing is queued."""
    before = stack.queue_depth()
    body = json.dumps({"id": "artifact-lead-2", "name": "Eve", "phone": "+1 512 555 0143"})
    response = webhook.invoke(http_api_event(body, {"authorization": "Bearer not-the-token"}))
    assert response["statusCode"] == 401, (response, webhook.output)
    assert json.loads(response["body"])["error"] == "unauthorized"
    assert stack.queue_depth() == before


@pytest.mark.parametrize("build_dir", [WEBHOOK_DIR, DISPATCH_DIR], ids=lambda path: path.name)
def test_runtime_dependencies_are_bundled(build_dir: Path) -> None:
    """Every src/requirements.txt package is in the artifact itself.

    The stand-in runtime (the project venv) also has them installed, so a
    package missing from the build folder would go unnoticed by the invokes.
    """

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    bundled = {normal(dist.metadata["Name"]) for dist in importlib.metadata.distributions(path=[str(build_dir)])}
    required = set()
    for line in (ROOT / "src" / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            required.add(normal(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]))
    assert required, "src/requirements.txt lists no package"
    assert required <= bundled, f"missing from {build_dir.name}: {sorted(required - bundled)}"
    assert (build_dir / "lead_caller" / "handlers" / "__init__.py").is_file()
