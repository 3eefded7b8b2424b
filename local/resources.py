"""Creates the stack's table, queues and secrets in an embedded AWS (moto) from template.yaml.

The table's keys and indexes, the queue's visibility timeout and redrive
policy, and the function environment are read from the same `template.yaml`
that `sam deploy` uses, so the local stack cannot drift from the deployed one.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import urllib3
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
LOCAL_NAMES = {
    "table": "lead-caller-leads",
    "queue": "lead-caller-leads",
    "dlq": "lead-caller-leads-dlq",
    "unpod_secret": "lead-caller/unpod",
    "webhook_secret": "lead-caller/webhooks",
    "crm_secret": "lead-caller/crm",
}


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !Sub...) as {"Tag": value}.

    libyaml's loader when PyYAML has it: ten times faster, and every test that builds the
    local resources reads the template.
    """


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as plain data (intrinsic functions left unresolved); a fresh copy each call."""
    stat = path.stat()
    return copy.deepcopy(_parsed_template(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _parsed_template(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parsed once per version of the file (the key changes when it is edited)."""
    del mtime_ns, size  # cache key only
    with path.open() as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader
    assert isinstance(data, dict)
    return data


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Default value of every template parameter, as strings."""
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


@dataclass(frozen=True)
class LocalResources:
    """Names and URLs of what `create_resources` made."""

    endpoint_url: str | None
    table_name: str
    queue_url: str
    dlq_url: str
    unpod_secret_id: str
    webhook_secret_id: str
    crm_secret_id: str


@functools.lru_cache(maxsize=32)
def embedded_aws_client(service: str, endpoint_url: str | None) -> Any:
    """A client for the embedded AWS (or, with endpoint_url None, for moto's in-process mock_aws).

    One per service and endpoint for the process: its region and credentials are fixed, and
    moto's in-process mock intercepts every client's requests while a `mock_aws` is active
    (the tests create the resources once per test: a new client each time was ~40% of that).
    """
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed dummy credentials
    )


def reset_embedded_aws(endpoint_url: str) -> None:
    """Empty a moto server. moto keeps its state per process, shared by every server in it."""
    urllib3.request("POST", f"{endpoint_url}/moto-api/reset", retries=False)


def create_resources(
    endpoint_url: str | None,
    unpod_secret: Mapping[str, Any],
    webhook_secret: Mapping[str, Any],
    template: Mapping[str, Any] | None = None,
    max_receive_count: int | None = None,
    crm_secret: Mapping[str, Any] | None = None,
) -> LocalResources:
    """Create table, queue + DLQ and secrets as template.yaml defines them.

    `max_receive_count` overrides the MaxReceiveCount parameter's default (as
    `sam deploy --parameter-overrides` would, for both the queue and the functions).
    """
    template = template or load_template()
    resources = template["Resources"]
    defaults = parameter_defaults(template)

    table = resources["LeadsTable"]["Properties"]
    dynamodb = embedded_aws_client("dynamodb", endpoint_url)
    dynamodb.create_table(
        TableName=LOCAL_NAMES["table"],
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table.get("GlobalSecondaryIndexes", []),
        BillingMode=table["BillingMode"],
        **_stream_specification(table),
    )
    ttl = table.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=LOCAL_NAMES["table"], TimeToLiveSpecification=ttl)

    sqs = embedded_aws_client("sqs", endpoint_url)
    dlq_url = sqs.create_queue(QueueName=LOCAL_NAMES["dlq"])["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = resources["LeadsQueue"]["Properties"]
    max_receive = queue["RedrivePolicy"]["maxReceiveCount"]
    if isinstance(max_receive, dict):  # {"Ref": "MaxReceiveCount"}
        max_receive = defaults[max_receive["Ref"]]
    if max_receive_count is not None:
        max_receive = max_receive_count
    queue_url = sqs.create_queue(
        QueueName=LOCAL_NAMES["queue"],
        Attributes={
            "VisibilityTimeout": str(queue.get("VisibilityTimeout", 30)),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}),
        },
    )["QueueUrl"]

    secrets = embedded_aws_client("secretsmanager", endpoint_url)
    secrets.create_secret(Name=LOCAL_NAMES["unpod_secret"], SecretString=json.dumps(dict(unpod_secret)))
    secrets.create_secret(Name=LOCAL_NAMES["webhook_secret"], SecretString=json.dumps(dict(webhook_secret)))
    secrets.create_secret(Name=LOCAL_NAMES["crm_secret"], SecretString=json.dumps(dict(crm_secret or {})))
    return LocalResources(
        endpoint_url=endpoint_url,
        table_name=LOCAL_NAMES["table"],
        queue_url=queue_url,
        dlq_url=dlq_url,
        unpod_secret_id=LOCAL_NAMES["unpod_secret"],
        webhook_secret_id=LOCAL_NAMES["webhook_secret"],
        crm_secret_id=LOCAL_NAMES["crm_secret"],
    )


def function_environment(
    resources: LocalResources, overrides: Mapping[str, str] | None = None, template: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The functions' environment as the template sets it, pointed at the local resources.

    Template parameters are resolved to their defaults; resource references to
    the local names; `overrides` win.
    """
    template = template or load_template()
    defaults = parameter_defaults(template)
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    refs = {
        "LeadsTable": resources.table_name,
        "LeadsQueue": resources.queue_url,
    }
    environment: dict[str, str] = {}
    for name, value in variables.items():
        environment[name] = _resolve(value, defaults, refs)
    environment.update(
        {
            "LEADS_TABLE_NAME": resources.table_name,
            "LEADS_QUEUE_URL": resources.queue_url,
            "DEAD_LETTER_QUEUE_URL": resources.dlq_url,
            "UNPOD_SECRET_ID": resources.unpod_secret_id,
            "WEBHOOK_SECRET_ID": resources.webhook_secret_id,
            "CRM_SECRET_ID": resources.crm_secret_id,
            "AWS_ENDPOINT_URL": resources.endpoint_url or "",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    environment.update(overrides or {})
    return environment


def _stream_specification(table: Mapping[str, Any]) -> dict[str, Any]:
    """The table's stream (the Call Completed outbox) as create_table takes it, if the template has one."""
    stream = table.get("StreamSpecification")
    if not stream:
        return {}
    return {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}}


def _resolve(value: Any, defaults: Mapping[str, str], refs: Mapping[str, str]) -> str:
    """Resolve {"Ref": param} to the parameter default; anything else unresolvable becomes ""."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        return refs.get(name, defaults.get(name, ""))
    if isinstance(value, dict):
        return ""
    return str(value)
