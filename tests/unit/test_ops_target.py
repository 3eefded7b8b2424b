"""`ops.target`: a deployed stack found by its CloudFormation outputs (moto), the local one by its state file."""

from __future__ import annotations

import argparse
import json

import boto3
import pytest
from moto import mock_aws

from ops.target import TargetError, add_target_arguments, names_from_outputs, resolve_target

OUTPUTS = {
    "LeadsTableName": "stack-LeadsTable-1",
    "LeadsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/stack-LeadsQueue",
    "DeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/stack-LeadsDlq",
    "EventsDeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/stack-EventsDlq",
    "UnpodSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/unpod",
    "WebhookSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/webhooks",
    "CrmSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/crm",
    "WebhookBaseUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks",
}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_target_arguments(parser)
    return parser.parse_args(list(argv))


def test_names_come_from_the_outputs():
    names = names_from_outputs("s", OUTPUTS)

    assert names["table_name"] == "stack-LeadsTable-1"
    assert names["api_url"] == "https://abc123.execute-api.us-east-1.amazonaws.com"
    assert names["events_dlq_url"].endswith("EventsDlq")


def test_a_stack_without_our_outputs_is_named_in_one_line():
    with pytest.raises(TargetError, match="lacks the outputs LeadsTableName"):
        names_from_outputs("other", {k: v for k, v in OUTPUTS.items() if k != "LeadsTableName"})


@mock_aws
def test_a_deployed_stack_is_resolved_by_name(tmp_path):
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Parameters": {"UnpodBaseUrl": {"Type": "String", "Default": "https://unpod.example/api/v2/platform"}},
        "Outputs": {key: {"Value": value} for key, value in OUTPUTS.items()},
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="lead-caller-prod", TemplateBody=json.dumps(template)
    )

    target = resolve_target(
        _args("--stack", "lead-caller-prod", "--region", "us-east-1", "--state-file", str(tmp_path))
    )

    assert target.name == "lead-caller-prod"
    assert target.table_name == "stack-LeadsTable-1"
    assert target.webhook_url("generic") == "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/generic"
    assert target.unpod_base_url == "https://unpod.example/api/v2/platform"
    assert target.dynamodb.meta.service_model.service_name == "dynamodb"


@mock_aws
def test_an_unknown_stack_is_one_line():
    with pytest.raises(TargetError, match="stack nope:"):
        resolve_target(_args("--stack", "nope", "--region", "us-east-1"))


def test_the_local_stack_needs_make_run(tmp_path):
    with pytest.raises(TargetError, match=r"no local stack: .* \(start one with `make run`\)"):
        resolve_target(_args("--local", "--state-file", str(tmp_path / "stack.json")))
