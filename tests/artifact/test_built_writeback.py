"""The built WritebackFunction under the Lambda runtime emulator: a Call Completed event from the
write-back queue, against moto, delivered to the catch-hook stand-in with a verifiable signature."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import boto3
import pytest

from lead_caller.store import dynamo_item, dynamo_values
from local.catch_hook import CatchHookStandIn
from local.resources import REGION
from local.rie import RieFunction, run_built_function
from local.stack import sqs_event
from tests.artifact.test_built_functions import (  # noqa: F401 - fixtures
    BUILD,
    ROOT,
    Stack,
    pytestmark,
    runtime_python,
    stack,
)


@pytest.fixture(scope="module")
def writeback_function(stack: Stack, runtime_python: str) -> Iterator[tuple[RieFunction, CatchHookStandIn]]:  # noqa: F811
    """The built WritebackFunction, with the catch hook configured in the CRM secret."""
    build = BUILD / "WritebackFunction"
    if not build.is_dir():
        pytest.skip("no WritebackFunction in .aws-sam/build")
    with CatchHookStandIn() as hook:
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=stack.resources.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        secret = {"outbound_webhook": {"url": hook.hook_url, "signing_secret": hook.signing_secret}}
        secrets.put_secret_value(SecretId=stack.resources.crm_secret_id, SecretString=json.dumps(secret))
        with run_built_function(
            build,
            "lead_caller.handlers.writeback.handler",
            {**stack.env, "WRITEBACK": "{}"},
            runtime_python,
            function_name="WritebackFunction",
            timeout=60,
        ) as function:
            yield function, hook


def test_the_built_writeback_function_delivers_the_signed_webhook(
    stack: Stack,  # noqa: F811
    writeback_function: tuple[RieFunction, CatchHookStandIn],
) -> None:
    function, hook = writeback_function
    lead = {"pk": "generic#artifact-wb-1", "source": "generic", "record_id": "artifact-wb-1", "status": "completed"}
    stack.dynamodb().put_item(TableName=stack.resources.table_name, Item=dynamo_values(lead))
    event = json.loads((ROOT / "events" / "call-completed.json").read_text())
    detail = copy.deepcopy(event["detail"])
    detail.update(lead_id=lead["pk"], source="generic", record_id="artifact-wb-1", task_id="T-artifact")
    event["detail"] = detail
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps(event), "Attributes": {}}

    result = function.invoke(sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:writeback"))

    assert result == {"batchItemFailures": []}, (result, function.output)
    item = dynamo_item(
        stack.dynamodb().get_item(TableName=stack.resources.table_name, Key={"pk": {"S": lead["pk"]}})["Item"]
    )
    assert item["writeback"] == "skipped"
    assert item["webhook_delivery"] == "done"
    (delivery,) = hook.deliveries
    assert delivery["verified"] is True
    assert delivery["json"]["data"]["task_id"] == "T-artifact"
    print(f"\nWritebackFunction init duration: {function.init_duration_ms()} ms")
