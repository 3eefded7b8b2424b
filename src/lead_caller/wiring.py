"""Builds the objects the handlers use from settings: boto3 clients, store, queue, Unpod client.

Called once per Lambda container (at import, during the init phase) so that
connections and caches are reused across invocations. The boto3 clients are
created on first use (`LazyClient`): creating one costs tens of ms of botocore
model loading, which a container that never calls that service (the webhook of a
delivery with only rejected leads, the dispatcher's CRM-only paths) never pays,
and which stays out of the cold start's init phase.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from lead_caller.config import Settings
from lead_caller.intake import Intake
from lead_caller.queue import LeadQueue
from lead_caller.secrets import crm_credentials, unpod_credentials, webhook_credentials
from lead_caller.store import LeadStore

# What only some functions build is imported by its builder: each function's INIT loads its own
# modules, not every function's (the webhook never loads the dispatcher, write-back or outcomes).
if TYPE_CHECKING:
    from lead_caller.call_events import CallCompletedPublisher
    from lead_caller.crms.callnote import CrmWriter
    from lead_caller.dispatcher import Dispatcher
    from lead_caller.event_intake import EventIntake
    from lead_caller.outcomes import AgentWebhook, OutcomeRecorder, Poller
    from lead_caller.unpod import UnpodClient
    from lead_caller.writeback import Writeback

# Fail fast inside the sender's timeout rather than hang on a slow AWS endpoint.
AWS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class LazyClient:
    """A boto3 client created on first attribute access (thread-safe: the queue sends from threads)."""

    def __init__(self, service: str, config: Config = AWS_CONFIG) -> None:
        self.service = service
        self.config = config
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = boto3.client(self.service, config=self.config)  # type: ignore[call-overload]
                client = self._client
        return getattr(client, name)


def build_store(settings: Settings) -> LeadStore:
    """The DynamoDB lead store."""
    return LeadStore(
        LazyClient("dynamodb"),
        settings.table_name,
        dedupe_window_seconds=settings.dedupe_window_seconds,
        retention_days=settings.lead_retention_days,
    )


def build_sqs() -> Any:
    """The SQS client (retry delays and the dead-letter queue of the dispatcher), created on the
    first batch that has a message to delay or dead-letter: most batches have none."""
    return LazyClient("sqs")


def build_intake(settings: Settings) -> Intake:
    """Everything the webhook function needs."""
    return Intake(
        settings=settings,
        store=build_store(settings),
        queue=LeadQueue(LazyClient("sqs"), settings.queue_url),
        credentials=partial(webhook_credentials, settings),
    )


def build_event_intake(settings: Settings) -> EventIntake:
    """Everything the event function needs: the webhook intake without HTTP."""
    from lead_caller.crms.salesforce.events import leads_from_event
    from lead_caller.event_intake import EventIntake

    return EventIntake(build_intake(settings), settings.lead_created_source, salesforce_parser=leads_from_event)


def build_unpod_client(settings: Settings) -> UnpodClient:
    """The Unpod client with the configured base URL, path and timeouts."""
    from lead_caller.unpod import UnpodClient

    return UnpodClient(
        settings.unpod_base_url,
        settings.unpod_create_task_path,
        connect_timeout=settings.unpod_connect_timeout,
        read_timeout=settings.unpod_read_timeout,
        max_retries=settings.unpod_max_retries,
        max_retry_after=settings.unpod_max_retry_after,
    )


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Everything the dispatch function needs."""
    from lead_caller.crms import build_enrichers
    from lead_caller.dispatcher import Dispatcher

    return Dispatcher(
        settings=settings,
        store=build_store(settings),
        client=build_unpod_client(settings),
        credentials=partial(unpod_credentials, settings),
        enrichers=build_enrichers(settings),
        crm_credentials=partial(crm_credentials, settings),
        refresh_credentials=partial(unpod_credentials, settings, force=True),
    )


def build_writeback(settings: Settings) -> Writeback:
    """Everything the write-back function needs: lead state, one writer per CRM, the outbound webhook."""
    from lead_caller.crms.hubspot.api import HubSpotWriteback
    from lead_caller.crms.pipedrive.api import PipedriveWriteback
    from lead_caller.crms.salesforce.api import SalesforceWriteback
    from lead_caller.crms.zoho.api import ZohoRecords, ZohoWriteback
    from lead_caller.outbound import OutboundWebhook
    from lead_caller.writeback import Writeback, WritebackState

    writers: dict[str, CrmWriter] = {
        "hubspot": HubSpotWriteback(settings.hubspot_api_base_url),
        "pipedrive": PipedriveWriteback(settings.pipedrive_api_base_url),
        "salesforce": SalesforceWriteback(),
        "zoho": ZohoWriteback(ZohoRecords(settings.zoho_accounts_base_url, settings.zoho_api_base_url)),
    }
    state = WritebackState(
        boto3.client("dynamodb", config=AWS_CONFIG), settings.table_name, lease_seconds=settings.writeback_lease_seconds
    )
    return Writeback(settings, state, writers, OutboundWebhook(), partial(crm_credentials, settings))


def build_outcome_recorder(settings: Settings) -> OutcomeRecorder:
    """The outcome recorder (with the transcript bucket, when one is configured)."""
    from lead_caller.outcomes import OutcomeRecorder, TranscriptStore

    transcripts = None
    if settings.transcript_bucket:
        transcripts = TranscriptStore(boto3.client("s3", config=AWS_CONFIG), settings.transcript_bucket)
    return OutcomeRecorder(settings, build_store(settings), transcripts)


def build_agent_webhook(settings: Settings) -> AgentWebhook:
    """Everything the outcome function needs: Unpod's agent webhook."""
    from lead_caller.outcomes import AgentWebhook

    return AgentWebhook(settings, build_outcome_recorder(settings), partial(webhook_credentials, settings, "unpod"))


def build_poller(settings: Settings) -> Poller:
    """Everything the poller function needs."""
    from lead_caller.outcomes import Poller

    return Poller(
        settings,
        build_store(settings),
        build_outcome_recorder(settings),
        build_unpod_client(settings),
        partial(unpod_credentials, settings),
        LeadQueue(boto3.client("sqs", config=AWS_CONFIG), settings.queue_url),
    )


def build_call_events(settings: Settings) -> CallCompletedPublisher:
    """The `Call Completed` publisher of the stream function."""
    from lead_caller.call_events import CallCompletedPublisher

    return CallCompletedPublisher(boto3.client("events", config=AWS_CONFIG), settings.event_bus_name)
