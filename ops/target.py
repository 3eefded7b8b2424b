"""Which lead-caller to operate on: a deployed stack (`--stack NAME`) or `make run`'s (`--local`).

A deployed stack is found through its CloudFormation outputs (table, queues, secrets, webhook
URL) and parameters (Unpod base URL); the local stack through the state file `make run`
writes (local/.state/stack.json: endpoint, ports, resource names).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ROOT / "local" / ".state" / "stack.json"
DEFAULT_UNPOD_BASE_URL = "https://unpod.ai/api/v2/platform"
#: the CloudFormation outputs a deployed stack must have, by Target field
OUTPUTS = {
    "table_name": "LeadsTableName",
    "queue_url": "LeadsQueueUrl",
    "dlq_url": "DeadLetterQueueUrl",
    "events_dlq_url": "EventsDeadLetterQueueUrl",
    "unpod_secret_id": "UnpodSecretArn",
    "webhook_secret_id": "WebhookSecretArn",
    "crm_secret_id": "CrmSecretArn",
    "webhook_base_url": "WebhookBaseUrl",
}


class TargetError(Exception):
    """The target cannot be found; the message says how to fix it."""


@dataclass
class Target:
    """Clients and resource names of one lead-caller stack."""

    name: str
    dynamodb: Any
    sqs: Any
    secretsmanager: Any
    cloudformation: Any
    table_name: str
    queue_url: str
    dlq_url: str
    events_dlq_url: str | None
    unpod_secret_id: str
    webhook_secret_id: str
    crm_secret_id: str
    #: base URL of the HTTP API (the webhooks are under /webhooks/{source})
    api_url: str
    unpod_base_url: str
    local: bool = False
    #: the function that takes EventBridge events (replays of the events DLQ), when known
    event_function_name: str | None = None
    lambda_client: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def webhook_url(self, source: str) -> str:
        """The URL a CRM posts `source` webhooks to."""
        return f"{self.api_url.rstrip('/')}/webhooks/{source}"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack NAME | --local, plus --region / --profile / --state-file."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--stack", help="a deployed stack's name (default $LEAD_CALLER_STACK)")
    group.add_argument("--local", action="store_true", help="the stack `make run` is running")
    parser.add_argument("--region", help="AWS region of the deployed stack (default: your AWS config)")
    parser.add_argument("--profile", help="AWS profile for the deployed stack")
    parser.add_argument("--state-file", type=Path, default=STATE_FILE, help=argparse.SUPPRESS)


def resolve_target(args: argparse.Namespace) -> Target:
    """The Target the arguments name; TargetError (one line, with the fix) when it cannot be found."""
    stack = getattr(args, "stack", None) or (
        None if getattr(args, "local", False) else os.environ.get("LEAD_CALLER_STACK")
    )
    state_file = Path(getattr(args, "state_file", None) or STATE_FILE)
    if stack:
        return deployed_target(stack, getattr(args, "region", None), getattr(args, "profile", None))
    if getattr(args, "local", False) or state_file.exists():
        return local_target(state_file)
    raise TargetError("which stack? give --stack NAME (a deployed stack) or --local (start it with `make run`)")


def local_target(state_file: Path = STATE_FILE) -> Target:
    """The local stack described by `make run`'s state file."""
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise TargetError(f"no local stack: {state_file} does not exist (start one with `make run`)") from None
    except ValueError:
        raise TargetError(f"{state_file} is not valid JSON (restart `make run`)") from None
    pid = state.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        raise TargetError(f"the local stack of {state_file} is not running any more (start it with `make run`)")
    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the embedded AWS's dummy credentials
        region_name=state.get("region", "us-east-1"),
    )
    endpoint = state["aws_endpoint"]

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    return Target(
        name="local",
        dynamodb=client("dynamodb"),
        sqs=client("sqs"),
        secretsmanager=client("secretsmanager"),
        cloudformation=client("cloudformation"),
        table_name=state["table_name"],
        queue_url=state["queue_url"],
        dlq_url=state["dlq_url"],
        events_dlq_url=state.get("events_dlq_url"),
        unpod_secret_id=state["unpod_secret_id"],
        webhook_secret_id=state["webhook_secret_id"],
        crm_secret_id=state["crm_secret_id"],
        api_url=state["api_url"],
        unpod_base_url=state.get("unpod_base_url") or DEFAULT_UNPOD_BASE_URL,
        local=True,
        extra={key: state[key] for key in ("sandbox_admin_url", "public_url", "real_calls") if key in state},
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def deployed_target(stack: str, region: str | None = None, profile: str | None = None) -> Target:
    """A deployed stack, from its CloudFormation outputs and parameters."""
    session = boto3.Session(region_name=region, profile_name=profile)
    cloudformation = session.client("cloudformation")
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as error:  # botocore's ClientError / NoCredentialsError / NoRegionError
        raise TargetError(f"stack {stack}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    names = names_from_outputs(stack, outputs)
    function = None
    try:
        resource = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId="EventFunction")
        function = resource["StackResourceDetail"]["PhysicalResourceId"]
    except Exception:  # an older template without the event function
        function = None
    return Target(
        name=stack,
        dynamodb=session.client("dynamodb"),
        sqs=session.client("sqs"),
        secretsmanager=session.client("secretsmanager"),
        cloudformation=cloudformation,
        lambda_client=session.client("lambda"),
        event_function_name=function,
        unpod_base_url=parameters.get("UnpodBaseUrl") or DEFAULT_UNPOD_BASE_URL,
        **names,
    )


def names_from_outputs(stack: str, outputs: dict[str, str]) -> dict[str, Any]:
    """Target fields from a stack's outputs; TargetError naming the missing outputs."""
    missing = [key for field_name, key in OUTPUTS.items() if key not in outputs and field_name != "events_dlq_url"]
    if missing:
        raise TargetError(f"stack {stack} lacks the outputs {', '.join(missing)}: is it a lead-caller stack?")
    names: dict[str, Any] = {
        field_name: outputs.get(key) for field_name, key in OUTPUTS.items() if field_name != "webhook_base_url"
    }
    base = outputs["WebhookBaseUrl"].rstrip("/")
    names["api_url"] = base.removesuffix("/webhooks")
    return names
