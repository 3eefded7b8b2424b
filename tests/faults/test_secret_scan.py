"""Configured secrets in logs and stored records: 0.

Drives every path that touches a credential with distinctive values in the
secrets (read through secrets.py, as the functions do): a webhook per source,
authenticated and forged; dispatch with Unpod failing (5xx, a timeout after
acceptance, then a reconciliation that cannot reach Unpod until the lead is
given up); HubSpot and Pipedrive enrichment failing. Then every log line of the
run and every DynamoDB item is scanned for every secret value (raw, URL-quoted
and JSON-escaped).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws

from lead_caller.config import Settings
from lead_caller.contacts import ContactDocument
from lead_caller.crms.hubspot.api import HubSpotContacts
from lead_caller.crms.pipedrive.api import PipedrivePersons
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.leads import LeadMessage
from lead_caller.secrets import crm_credentials, unpod_credentials, webhook_credentials
from lead_caller.store import LeadStore
from local.hubspot_api import HubSpotApiStandIn
from local.pipedrive_api import PipedriveApiStandIn
from local.resources import create_resources
from local.signing import basic_authorization, hubspot_v3_headers, standard_webhook_headers
from local.unpod_sandbox import UnpodSandbox
from tests.conftest import fast_client
from tests.faults.hostile import BASE_URL, build_intake, request

SPACE = "SPACEtok9f8e7d6c5b4a3"
EXPIRED = "expired-unpod-token-4e5f6a"
WEBHOOK_SECRETS: dict[str, dict[str, Any]] = {
    "generic": {"signing_secret": "whsec_c2VjcmV0LXNjYW4tc2lnbmluZy1rZXk=", "bearer_token": "gen-bearer-7Q2m9X4v"},
    "hubspot": {"client_secret": "hs-client-secret-5b8e1d", "api_key": "hs-api-key-3c9f0a"},
    "pipedrive": {"basic_username": "pd-user", "basic_password": "pd-pass-W1x2Y3z4"},
    "salesforce": {"organization_ids": ["00D5f000005KcCnEAK"], "url_token": "sf-url-token-6d4c2b"},
    "zoho": {
        "token": "zoho-wf-token-8a7b6c",
        "notification_token": "zoho-nt-token-1f2e3d",
        "channel_id": "1000000068001",
    },
}
PHONE, EMAIL = "+15125550142", "scan.person@example.com"
PERSON = {"name": "Scan Person", "phone": "+1 512 555 0142", "email": EMAIL}


def secret_values(sandbox: UnpodSandbox, crm: dict[str, Any]) -> set[str]:
    """Every configured credential value, as text may quote it."""
    values = {sandbox.api_token, sandbox.space_token, sandbox.org_handle or "", SPACE, EXPIRED}
    values |= {crm["hubspot"]["access_token"], crm["pipedrive"]["api_token"]}
    for credentials in WEBHOOK_SECRETS.values():
        for key, value in credentials.items():
            if key not in ("basic_username", "organization_ids", "channel_id"):
                values.add(str(value))
    return {form for value in values if value for form in (value, quote(value, safe=""), json.dumps(value)[1:-1])}


@pytest.fixture
def standins() -> Iterator[tuple[UnpodSandbox, HubSpotApiStandIn, PipedriveApiStandIn]]:
    with UnpodSandbox() as unpod, HubSpotApiStandIn() as hubspot, PipedriveApiStandIn() as pipedrive:
        yield unpod, hubspot, pipedrive


def webhooks(intake: Any) -> list[int]:
    """One authenticated and one forged request per source; the statuses."""
    statuses: list[int] = []
    generic = json.dumps({"id": "scan-1", **PERSON}).encode()
    statuses.append(intake.handle(request("generic", generic)).status)
    signed = standard_webhook_headers(WEBHOOK_SECRETS["generic"]["signing_secret"], generic)
    statuses.append(intake.handle(request("generic", generic, authorization="", **signed)).status)
    statuses.append(intake.handle(request("generic", generic, authorization="Bearer wrong")).status)
    events = json.dumps([{"subscriptionType": "contact.creation", "objectId": 901, "portalId": 62515}]).encode()
    url = f"{BASE_URL}/webhooks/hubspot"
    v3 = hubspot_v3_headers(WEBHOOK_SECRETS["hubspot"]["client_secret"], "POST", url, events)
    statuses.append(intake.handle(request("hubspot", events, **v3)).status)
    statuses.append(intake.handle(request("hubspot", events, **{"x-api-key": "wrong"})).status)
    person = {
        "meta": {"action": "create", "entity": "person", "company_id": "77", "entity_id": "5"},
        "data": {"id": 5, "name": "Scan Person", "phones": [{"value": PHONE, "primary": True}]},
    }
    creds = WEBHOOK_SECRETS["pipedrive"]
    statuses.append(
        intake.handle(
            request("pipedrive", json.dumps(person).encode(), **basic_authorization("pd-user", creds["basic_password"]))
        ).status
    )
    statuses.append(intake.handle(request("pipedrive", b"{}", **basic_authorization("pd-user", "nope"))).status)
    zoho = json.dumps({"id": "5725767000003000064", "First_Name": "Scan", "Phone": PHONE}).encode()
    statuses.append(intake.handle(request("zoho", zoho, **{"x-zoho-token": WEBHOOK_SECRETS["zoho"]["token"]})).status)
    statuses.append(intake.handle(request("zoho", zoho, **{"x-zoho-token": "wrong"})).status)
    soap = b"<not-soap/>"
    statuses.append(intake.handle(request("salesforce", soap, "text/xml")).status)
    return statuses


def dispatches(settings: Settings, store: LeadStore, unpod: UnpodSandbox, hubspot: Any, pipedrive: Any) -> None:
    """Unpod failing in every way the dispatcher records, and enrichment failing."""
    enrich_options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 1.0,
        "max_retries": 0,
        "backoff_factor": 0.01,
    }
    dispatcher = Dispatcher(
        settings,
        store,
        fast_client(unpod.base_url, read_timeout=0.3, max_retries=0),
        lambda: unpod_credentials(settings),
        enrichers={
            HubSpotContacts.kind: HubSpotContacts(hubspot.base_url, **enrich_options),
            PipedrivePersons.kind: PipedrivePersons(pipedrive.base_url, **enrich_options),
        },
        crm_credentials=lambda: crm_credentials(settings),
    )

    def queued(message: LeadMessage, count: int = 1, message_id: str | None = None) -> QueuedRecord:
        return QueuedRecord(message_id or str(uuid.uuid4()), message.to_json(), count)

    def lead(record_id: str, **routing: Any) -> LeadMessage:
        document = ContactDocument("Scan Person", PHONE, f"generic-{record_id}", email=EMAIL)
        return LeadMessage("generic", record_id, time.time(), document, routing)

    # a 5xx from Create Task, retried until given up
    unpod.enqueue_fault("status", status=503)
    failing = queued(lead("scan-503", space_token=SPACE))
    dispatcher.dispatch([failing])
    unpod.enqueue_fault("status", status=503)
    dispatcher.dispatch([dataclasses.replace(failing, receive_count=settings.max_receive_count)])
    # accepted but answered too late, then the reconciliation cannot reach Unpod until given up
    unpod.enqueue_fault("delay", seconds=1.0)
    slow = queued(lead("scan-slow"))
    dispatcher.dispatch([slow])
    time.sleep(1.2)  # the sandbox finishes the slow request (and creates the task) before the lookups
    # the token was rotated meanwhile: the lookups answer 401 (the sandbox fails only Create Task on demand)
    dispatcher.credentials = lambda: dataclasses.replace(unpod_credentials(settings), api_token=EXPIRED)
    for attempt in (2, settings.max_receive_count):
        dispatcher.dispatch([dataclasses.replace(slow, receive_count=attempt)])
    dispatcher.credentials = lambda: unpod_credentials(settings)
    # enrichment: HubSpot refuses, Pipedrive fails, then both are given up
    hubspot.enqueue_fault("status", status=401)
    thin = LeadMessage("hubspot", "62515:901", time.time(), None, {}, {"kind": "hubspot_contact", "object_id": "901"})
    dispatcher.dispatch([queued(thin)])
    pipedrive.enqueue_fault("status", status=500)
    person = LeadMessage(
        "pipedrive", "77-person-5", time.time(), None, {}, {"kind": "pipedrive_person", "person_id": 5}
    )
    dispatcher.dispatch([queued(person, settings.max_receive_count)])


def test_no_configured_secret_in_any_log_line_or_stored_item(standins, captured_logs, record_figure):
    unpod, hubspot, pipedrive = standins
    crm = {"hubspot": {"access_token": hubspot.access_token}, "pipedrive": {"api_token": pipedrive.api_token}}
    with mock_aws():
        resources = create_resources(
            None,
            unpod_secret={
                "api_token": unpod.api_token,
                "space_token": unpod.space_token,
                "org_handle": unpod.org_handle,
                "pilot": unpod.pilots[0],
            },
            webhook_secret=WEBHOOK_SECRETS,
            crm_secret=crm,
        )
        settings = Settings(
            table_name=resources.table_name,
            queue_url=resources.queue_url,
            unpod_secret_id=resources.unpod_secret_id,
            webhook_secret_id=resources.webhook_secret_id,
            crm_secret_id=resources.crm_secret_id,
            unpod_base_url=unpod.base_url,
            max_receive_count=3,
            # the scan drives many leads with one phone number at any hour: no policy in the way
            calling_policy={"enforce_hours": False, "dedupe_by_phone": False},
            circuit_failure_threshold=1000,  # every failure path runs, none is deferred by an open circuit
        )
        store = LeadStore(boto3.client("dynamodb"), settings.table_name)
        intake = build_intake(settings)
        intake.credentials = lambda name: webhook_credentials(settings, name)
        statuses = webhooks(intake)
        dispatches(settings, store, unpod, hubspot, pipedrive)
        items = boto3.client("dynamodb").scan(TableName=settings.table_name)["Items"]

    logs = captured_logs()
    stored = json.dumps(items)
    leaks = sorted({secret for secret in secret_values(unpod, crm) if secret in logs or secret in stored})
    figure = record_figure("secrets", "secret values in logs and stored items", len(leaks), "0", not leaks)
    assert figure.on_target, leaks
    # the run did exercise the paths: leads accepted and refused, failures recorded with their reasons
    assert 401 in statuses
    assert any(status < 300 for status in statuses)
    reasons = " ".join(str(item.get("reason", {}).get("S", "")) for item in items)
    assert "gave up" in reasons
    assert "Unpod unreachable" in reasons  # the reconciliation path, which quoted the space token before
    assert "hubspot API refused" in reasons
    assert len(logs) > 1000
