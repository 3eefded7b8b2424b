"""Least privilege and failure destinations, checked on what CloudFormation receives.

template.yaml goes through SAM's own transform (samtranslator, from the SAM CLI's
environment in .tools/sam that `make test` installs), so the statements SAM adds
itself (event-source policies, managed policies) are checked too, not only ours.

Figures: IAM statements that allow a data-plane action on `Resource: "*"` -> 0;
asynchronously invoked functions without a dead-letter queue or on-failure
destination -> 0.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"

#: Actions IAM cannot scope to a resource (no resource-level permissions): allowed on "*".
UNSCOPABLE_ACTIONS = frozenset(
    {
        "xray:PutTraceSegments",  # X-Ray (Tracing: Active) has no resource-level permissions
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
        "cloudwatch:PutMetricData",  # scoped by the cloudwatch:namespace condition key only
    }
)
#: SAM attaches AWSLambdaBasicExecutionRole to every function role it creates, and it cannot be
#: left out without hand-written roles. Its logs actions are the one accepted exception: each
#: function writes only to its own /aws/lambda/<function> group (the *LogGroup resources).
ACCEPTED_EXCEPTIONS = frozenset({"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"})

#: The AWS managed policies SAM may attach, as AWS publishes them (their statements count too).
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": "*",
        },
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
    ],
}
#: event types after which Lambda runs the function asynchronously (so failures need a destination)
ASYNC_EVENTS = frozenset({"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "SNS", "S3", "IoTRule"})

_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open(sys.argv[1]).read())
template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/code.zip"
class NoManagedPolicies:
    def load(self):
        return {}
json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout)
"""


def translated(template: Path) -> dict[str, Any]:
    """template.yaml as SAM's transform turns it into CloudFormation."""
    if not SAM_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SAM_PYTHON} is missing: `make tools` installs the SAM CLI (and its transform)")
        pytest.skip("the SAM CLI environment (.tools/sam) is not installed: run `make tools`")
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSFORM, str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _listed(value: Any) -> list[Any]:
    """A value as a list, with both branches of a conditional (Fn::If) taken: every branch may deploy."""
    items = value if isinstance(value, list) else [value]
    found: list[Any] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            found.extend(branch for branch in _listed(item["Fn::If"][1:]) if branch != {"Ref": "AWS::NoValue"})
        else:
            found.append(item)
    return found


def statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) of every inline and managed policy of every role and policy resource."""
    for name, resource in resources.items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::IAM::Role":
            for policy in _listed(properties.get("Policies") or []):
                for statement in _listed(policy["PolicyDocument"]["Statement"]):
                    yield f"{name}/{policy.get('PolicyName')}", statement
            for arn in properties.get("ManagedPolicyArns") or []:
                policy_name = json.dumps(arn).rsplit("/", 1)[-1].strip('"]} ')
                assert policy_name in MANAGED_POLICIES, f"{name}: unknown managed policy {arn}; list its statements"
                for statement in MANAGED_POLICIES[policy_name]:
                    yield f"{name}/{policy_name}", statement
        elif resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in _listed(properties["PolicyDocument"]["Statement"]):
                yield name, statement


def wildcard_findings(resources: dict[str, Any]) -> list[str]:
    """Data-plane actions allowed on Resource "*" (beyond the listed unscopable ones and exceptions)."""
    findings: list[str] = []
    for where, statement in statements(resources):
        if statement.get("Effect") != "Allow" or "*" not in _listed(statement.get("Resource")):
            continue
        for action in _listed(statement.get("Action")):
            if action not in UNSCOPABLE_ACTIONS and action not in ACCEPTED_EXCEPTIONS:
                findings.append(f"{where}: {action} on *")
    return findings


def functions_without_failure_destination(resources: dict[str, Any], source: dict[str, Any]) -> list[str]:
    """Functions invoked asynchronously (per template.yaml's events) with neither a DLQ nor OnFailure."""
    missing: list[str] = []
    for name, resource in source["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        events = properties.get("Events") or {}
        targeted = any(
            json.dumps(target.get("Arn")).find(name) >= 0
            for other in source["Resources"].values()
            if other.get("Type") == "AWS::Events::Rule"
            for target in (other.get("Properties") or {}).get("Targets") or []
        )
        if not targeted and not any(event.get("Type") in ASYNC_EVENTS for event in events.values()):
            continue
        invoke = properties.get("EventInvokeConfig") or {}
        on_failure = ((invoke.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if not on_failure and not properties.get("DeadLetterQueue"):
            missing.append(name)
    # the translated template must carry the configuration, not only the SAM source
    configured = {
        str((r.get("Properties") or {}).get("FunctionName", {}).get("Ref"))
        for r in resources.values()
        if r.get("Type") == "AWS::Lambda::EventInvokeConfig"
        and ((r.get("Properties") or {}).get("DestinationConfig") or {}).get("OnFailure")
    }
    return [name for name in missing if name not in configured]


def test_no_data_plane_action_on_a_wildcard_resource(record_figure):
    from local.resources import load_template

    cloudformation = translated(ROOT / "template.yaml")
    findings = wildcard_findings(cloudformation["Resources"])
    figure = record_figure("IAM", 'data-plane actions on Resource "*"', len(findings), "0", not findings)
    assert figure.on_target, findings
    # every poller (leads queue, write-back queue, table stream) is an explicit mapping with
    # partial batch failures, and no function declares a SAM SQS/DynamoDB event (which adds "*")
    mappings = {
        json.dumps(r["Properties"]["FunctionName"]): r["Properties"]
        for r in cloudformation["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert sorted(mappings) == sorted(
        json.dumps({"Ref": name}) for name in ("DispatchFunction", "WritebackFunction", "CallEventsFunction")
    )
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())
    for resource in load_template()["Resources"].values():
        events = (resource.get("Properties") or {}).get("Events") or {}
        assert not [e for e in events.values() if e.get("Type") in ("SQS", "DynamoDB", "Kinesis")]


def test_every_asynchronously_invoked_function_has_a_failure_destination(record_figure):
    from local.resources import load_template

    cloudformation = translated(ROOT / "template.yaml")
    missing = functions_without_failure_destination(cloudformation["Resources"], load_template())
    figure = record_figure("async invocations", "functions without DLQ/on-failure", len(missing), "0", not missing)
    assert figure.on_target, missing


def test_the_checks_find_what_sam_would_add_for_an_sqs_event(tmp_path):
    """The check itself: a SAM SQS event brings AWSLambdaSQSQueueExecutionRole, which is reported."""
    source = (ROOT / "template.yaml").read_text()
    marker = "  DispatchEventSource:\n"
    event = (
        "      Events:\n        Leads:\n          Type: SQS\n          Properties:\n"
        "            Queue: !GetAtt LeadsQueue.Arn\n\n"
    )
    variant = tmp_path / "template.yaml"
    variant.write_text(source.replace(marker, event + marker.replace("DispatchEventSource", "UnusedMapping"), 1))
    findings = wildcard_findings(translated(variant)["Resources"])
    assert any("sqs:ReceiveMessage on *" in finding for finding in findings), findings
