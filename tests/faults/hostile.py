"""Shared helpers of the in-process fault tests: an intake on moto with every source's local credentials."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from lead_caller.config import Settings
from lead_caller.intake import Intake
from lead_caller.queue import LeadQueue
from lead_caller.sources.base import Reply, WebhookRequest
from lead_caller.store import LeadStore
from local.signing import LOCAL_WEBHOOK_SECRETS, basic_authorization

BASE_URL = "https://hooks.example.test"
ZOHO = LOCAL_WEBHOOK_SECRETS["zoho"]
SALESFORCE_ORG = LOCAL_WEBHOOK_SECRETS["salesforce"]["organization_ids"][0]


def credentials_of(name: str) -> Mapping[str, Any]:
    """The local stack's webhook credentials of a source."""
    return LOCAL_WEBHOOK_SECRETS.get(name, {})


def build_intake(settings: Settings) -> Intake:
    """An intake on moto whose sources all have credentials."""
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=credentials_of,
    )


def auth_headers(source: str) -> dict[str, str]:
    """Headers that authenticate any body of `source` (body-independent schemes)."""
    if source == "generic":
        return {"authorization": f"Bearer {LOCAL_WEBHOOK_SECRETS['generic']['bearer_token']}"}
    if source == "hubspot":
        return {"x-api-key": str(LOCAL_WEBHOOK_SECRETS["hubspot"]["api_key"])}
    if source == "pipedrive":
        creds = LOCAL_WEBHOOK_SECRETS["pipedrive"]
        return basic_authorization(creds["basic_username"], creds["basic_password"])
    if source == "zoho":
        return {"x-zoho-token": str(ZOHO["token"])}
    return {}  # salesforce: the OrganizationId in the body


def request(source: str, body: bytes, content_type: str = "application/json", **headers: str) -> WebhookRequest:
    """An authenticated request (unless `headers` override the authentication)."""
    merged = {"content-type": content_type, **auth_headers(source), **headers}
    return WebhookRequest(
        source=source,
        method="POST",
        path=f"/webhooks/{source}",
        query="",
        headers=merged,
        body=body,
        public_url=f"{BASE_URL}/webhooks/{source}",
        received_at=time.time(),
    )


def dumps(payload: Any) -> bytes:
    """JSON bytes of any payload (NaN and lone surrogates kept, as a hostile sender may send)."""
    return json.dumps(payload).encode("utf-8", "surrogatepass")


@dataclass
class Tally:
    """What hostile requests did: answers by status, exceptions, queued messages."""

    requests: int = 0
    server_errors: int = 0
    exceptions: int = 0
    first_failure: str = ""
    failures: dict[str, str] = field(default_factory=dict)

    def run(self, intake: Intake, request: WebhookRequest) -> Reply | None:
        """Handle one request, counting 5xx answers and exceptions instead of raising."""
        self.requests += 1
        try:
            reply = intake.handle(request)
        except Exception as error:
            self.exceptions += 1
            where = traceback.extract_tb(error.__traceback__)[-1]
            kind = f"{type(error).__name__} at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}"
            self.failures.setdefault(kind, f"{error!s:.120} <- {request.body[:160]!r}")
            self.first_failure = self.first_failure or f"{kind}: {error!s:.200} <- {request.body[:200]!r}"
            return None
        if reply.status >= 500:
            self.server_errors += 1
            self.first_failure = self.first_failure or f"{reply.status} {reply.body[:200]} <- {request.body[:200]!r}"
        return reply


def queued_count(settings: Settings) -> int:
    """Messages waiting in the leads queue (visible and in flight)."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=settings.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def drain(settings: Settings) -> Iterator[str]:
    """Receive and delete every message of the leads queue; yields the bodies."""
    sqs = boto3.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        for message in messages:
            yield message["Body"]
            sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
