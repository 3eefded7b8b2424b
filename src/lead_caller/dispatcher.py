"""Dispatch: claim queued leads, call Unpod in batches, record every outcome.

For one SQS batch:
1. each message is claimed in DynamoDB (`LeadStore.claim`): duplicates are
   dropped, our own redeliveries after a crash/timeout are reconciled with
   Unpod (`UnpodClient.find_task`) before anything is sent again;
2. the claimed leads are grouped by (space, pilot, context, schedule) and sent
   as Create Task requests of at most `max_documents_per_request` documents;
3. a permanent validation refusal of a multi-contact request is split in
   halves and retried, so one bad contact cannot sink the others;
4. transient failures leave the message for SQS to redeliver; on its last
   receive (MAX_RECEIVE_COUNT) the lead is marked failed before SQS moves it
   to the dead-letter queue.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lead_caller.config import ConfigError, Settings
from lead_caller.contacts import build_document
from lead_caller.enrichment import Enricher, Fetched
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.observability import logger, metrics, redact
from lead_caller.secrets import SecretError
from lead_caller.sources import compile_mappings
from lead_caller.store import CallRequested, Claim, LeadStore
from lead_caller.unpod import CreateTaskOutcome, UnpodClient, UnpodCredentials, UnpodLookupError

#: Create Task requests of one batch in flight at once (each holds other leads)
MAX_PARALLEL_SENDS = 4


@dataclass(frozen=True)
class QueuedRecord:
    """The parts of an SQS record the dispatcher uses."""

    message_id: str
    body: str
    receive_count: int


@dataclass
class _Lead:
    record: QueuedRecord
    message: LeadMessage  # replaced by the enriched message once the CRM record is fetched
    claim: Claim


@dataclass(frozen=True)
class RouteKey:
    """Leads sharing a RouteKey can go in one Create Task request."""

    space_token: str
    pilot: str
    context: str
    schedule_json: str


@dataclass
class BatchResult:
    """message_id -> reason to retry; messages absent from `retry` are done."""

    retry: dict[str, str] = field(default_factory=dict)


class Dispatcher:
    """Calls Unpod for queued leads."""

    def __init__(
        self,
        settings: Settings,
        store: LeadStore,
        client: UnpodClient,
        credentials: Callable[[], UnpodCredentials],
        enrichers: Mapping[str, Enricher] | None = None,
        crm_credentials: Callable[[], Mapping[str, Any]] | None = None,
        mappings: Mapping[str, FieldMapping] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.credentials = credentials
        self.enrichers = dict(enrichers or {})
        self.crm_credentials = crm_credentials or dict
        self.mappings = dict(mappings) if mappings else compile_mappings(settings)

    def dispatch(self, records: Sequence[QueuedRecord]) -> BatchResult:
        """Process one SQS batch; returns which messages must be retried."""
        result = BatchResult()
        try:
            credentials = self.credentials()
        except (SecretError, ConfigError) as error:
            logger.error("Unpod credentials unavailable", extra={"error": str(error)})
            for record in records:
                result.retry[record.message_id] = "credentials unavailable"
            return result

        leads = self._claim_all(records, result)

        unsettled: list[_Lead] = []
        lookups: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        for lead in leads:
            if lead.claim.needs_reconcile and self._reconcile(lead, credentials, lookups, result):
                continue
            unsettled.append(lead)
        to_send = self._enrich(unsettled, result)

        groups: dict[RouteKey, list[_Lead]] = {}
        for lead in to_send:
            groups.setdefault(self._route(lead.message, credentials), []).append(lead)
        size = self.settings.max_documents_per_request
        requests = [
            (route, members[start : start + size])
            for route, members in groups.items()
            for start in range(0, len(members), size)
        ]
        self._send_all(requests, credentials, result)
        return result

    def _send_all(
        self, requests: list[tuple[RouteKey, list[_Lead]]], credentials: UnpodCredentials, result: BatchResult
    ) -> None:
        """Send the Create Task requests of a batch, up to MAX_PARALLEL_SENDS at a time.

        Each request concerns other leads, so their order does not matter; every one settles
        (and records its leads) before the batch is reported, and an exception still fails the
        invocation, as when they ran one after another.
        """
        if len(requests) <= 1 or MAX_PARALLEL_SENDS <= 1:
            for route, members in requests:
                self._send(route, members, credentials, result)
            return
        with ThreadPoolExecutor(max_workers=min(len(requests), MAX_PARALLEL_SENDS)) as pool:
            futures = [pool.submit(self._send, route, members, credentials, result) for route, members in requests]
        for future in futures:
            future.result()

    def _claim_all(self, records: Sequence[QueuedRecord], result: BatchResult) -> list[_Lead]:
        """Claim the batch's leads (`LeadStore.claim_many`: one transaction for new leads)."""
        readable: list[tuple[QueuedRecord, LeadMessage]] = []
        for record in records:
            try:
                readable.append((record, LeadMessage.from_json(record.body)))
            except ValueError as error:
                # Not ours or corrupted: keep it for the dead-letter queue, where a person can look.
                logger.error("unreadable queue message", extra={"message_id": record.message_id, "error": str(error)})
                result.retry[record.message_id] = "unreadable message"
        claims = self.store.claim_many([(message, record.message_id) for record, message in readable])
        leads: list[_Lead] = []
        for (record, message), claim in zip(readable, claims, strict=True):
            if isinstance(claim, Exception):
                logger.warning("claim failed", extra={"lead_id": message.lead_id, "error": type(claim).__name__})
                result.retry[record.message_id] = "claim failed"
            elif claim.kind == "duplicate":
                logger.info(
                    "duplicate lead skipped",
                    extra={"lead_id": message.lead_id, "status": claim.previous.get("status")},
                )
                metrics.add_metric(name="DuplicatesSkipped", unit=MetricUnit.Count, value=1)
            else:
                leads.append(_Lead(record, message, claim))
        return leads

    def _reconcile(
        self,
        lead: _Lead,
        credentials: UnpodCredentials,
        lookups: dict[str, tuple[str, tuple[str, ...]] | None],
        result: BatchResult,
    ) -> bool:
        """Ask Unpod whether an earlier, unanswered attempt created the task. True when handled."""
        document_id = lead.message.document_id
        claimed_at = str(lead.claim.previous.get("claimed_at") or "")
        try:
            since = datetime.fromisoformat(claimed_at.replace("Z", "+00:00")) - timedelta(minutes=5)
        except ValueError:
            since = datetime.fromtimestamp(lead.message.received_at, UTC) - timedelta(minutes=5)
        try:
            if document_id not in lookups:
                space = self._route(lead.message, credentials).space_token
                lookups[document_id] = self.client.find_task(credentials, document_id, since, space)
        except UnpodLookupError as error:
            logger.warning("reconcile failed", extra={"lead_id": lead.message.lead_id, "error": str(error)})
            self._give_up_or_retry(lead, "unknown", f"outcome unknown and Unpod unreachable: {error}", result)
            return True
        found = lookups[document_id]
        if found is None:
            logger.info("reconciled: no task found, sending again", extra={"lead_id": lead.message.lead_id})
            return False
        run_id, task_ids = found
        logger.info("reconciled: task already created", extra={"lead_id": lead.message.lead_id, "run_id": run_id})
        metrics.add_metric(name="CallsReconciled", unit=MetricUnit.Count, value=1)
        self.store.mark_call_requested(lead.message.lead_id, lead.record.message_id, run_id, task_ids, reconciled=True)
        return True

    def _enrich(self, leads: list[_Lead], result: BatchResult) -> list[_Lead]:
        """Fetch, map and validate the records of thin events; returns the leads ready to call."""
        ready = [lead for lead in leads if lead.message.document is not None]
        groups: dict[str, list[_Lead]] = {}
        for lead in leads:
            if lead.message.document is None:
                kind = str((lead.message.enrichment or {}).get("kind", ""))
                groups.setdefault(kind, []).append(lead)
        if not groups:
            return ready
        try:
            secret = self.crm_credentials()
        except (SecretError, ConfigError) as error:
            logger.error("CRM credentials unavailable", extra={"error": str(error)})
            for lead in (lead for group in groups.values() for lead in group):
                self._give_up_or_retry(lead, "transient", "CRM credentials unavailable", result)
            return ready
        for kind, group in groups.items():
            enricher = self.enrichers.get(kind)
            if enricher is None:
                for lead in group:
                    self._reject(lead, f"no enricher for {kind!r}", "enrichment_unknown", rejected=False)
                continue
            requests = [lead.message.enrichment or {} for lead in group]
            source_credentials = secret.get(group[0].message.source) or {}
            fetched = enricher.fetch(source_credentials, requests)
            for lead, outcome in zip(group, fetched, strict=True):
                enriched = self._settle(lead, outcome, result)
                if enriched is not None:
                    ready.append(enriched)
        return ready

    def _settle(self, lead: _Lead, fetched: Fetched, result: BatchResult) -> _Lead | None:
        """Turn one fetched record into a callable lead, or record why it is not one."""
        source = lead.message.source
        if fetched.outcome == "transient":
            metrics.add_metric(name="EnrichmentFailures", unit=MetricUnit.Count, value=1)
            self._give_up_or_retry(lead, "transient", f"{source} API: {redact(fetched.message)}", result)
            return None
        if fetched.outcome == "permanent":
            metrics.add_metric(name="EnrichmentFailures", unit=MetricUnit.Count, value=1)
            self._reject(lead, f"{source} API refused: {redact(fetched.message)}", "crm_refused", rejected=False)
            return None
        if fetched.outcome == "gone" or fetched.record is None:
            self._reject(lead, f"the {source} record no longer exists: {redact(fetched.message)}", "crm_gone")
            return None
        raw = self.mappings[source].apply(fetched.record)
        raw.record_id = lead.message.record_id
        document, rejection, _ = build_document(source, raw, self.settings.default_phone_region)
        if document is None:
            self._reject(lead, str(rejection), "invalid_contact")
            return None
        routing = {**self.settings.routing_for(source).for_record(fetched.record), **lead.message.routing}
        lead.message = dataclasses.replace(lead.message, document=document, routing=routing)
        return lead

    def _reject(self, lead: _Lead, reason: str, error_kind: str, rejected: bool = True) -> None:
        logger.info("lead not callable", extra={"lead_id": lead.message.lead_id, "error_kind": error_kind})
        self.store.mark_failed(
            lead.message.lead_id, lead.record.message_id, reason=reason, error_kind=error_kind, rejected=rejected
        )

    def _route(self, message: LeadMessage, credentials: UnpodCredentials) -> RouteKey:
        routing = self.settings.routing_for(message.source)
        override = message.routing
        schedule = override.get("schedule") or routing.schedule or {"type": "now"}
        return RouteKey(
            space_token=str(override.get("space_token") or routing.space_token or credentials.space_token),
            pilot=str(override.get("pilot") or routing.pilot or credentials.pilot),
            context=str(override.get("context") or routing.context or self.settings.default_context),
            schedule_json=json.dumps(schedule, sort_keys=True),
        )

    def _send(self, route: RouteKey, leads: list[_Lead], credentials: UnpodCredentials, result: BatchResult) -> None:
        outcome = self.client.create_task(
            credentials,
            [lead.message.document.to_unpod() for lead in leads if lead.message.document],
            context=route.context,
            schedule=json.loads(route.schedule_json),
            pilot=route.pilot,
            space_token=route.space_token,
        )
        if outcome.kind == "accepted":
            self._record_accepted(leads, outcome)
            return
        known_secrets = (credentials.api_token, credentials.space_token, credentials.org_handle or "")
        outcome = dataclasses.replace(outcome, message=redact(outcome.message, known_secrets))
        metrics.add_metric(name=f"UnpodFailures_{outcome.failure_kind}", unit=MetricUnit.Count, value=1)
        logger.warning(
            "Create Task failed",
            extra={
                "kind": outcome.kind,
                "error_kind": outcome.failure_kind,
                "http_status": outcome.http_status,
                "unpod_message": outcome.message,
                "lead_ids": [lead.message.lead_id for lead in leads],
            },
        )
        if outcome.kind == "permanent" and outcome.is_validation_error and len(leads) > 1:
            middle = len(leads) // 2
            self._send(route, leads[:middle], credentials, result)
            self._send(route, leads[middle:], credentials, result)
            return
        for lead in leads:
            self._record_failure(lead, outcome, result)

    def _record_accepted(self, leads: list[_Lead], outcome: CreateTaskOutcome) -> None:
        assert outcome.run_id is not None
        per_lead = len(outcome.task_ids) == len(leads)
        metrics.add_metric(name="CallsRequested", unit=MetricUnit.Count, value=len(leads))
        calls: list[CallRequested] = []
        for index, lead in enumerate(leads):
            task_ids = (outcome.task_ids[index],) if per_lead else outcome.task_ids
            previous = lead.claim.previous
            previous_run = str(previous["run_id"]) if previous.get("run_id") else None
            document = lead.message.document.to_unpod() if lead.message.enrichment and lead.message.document else None
            calls.append(
                CallRequested(
                    lead.message.lead_id, lead.record.message_id, outcome.run_id, task_ids, previous_run, document
                )
            )
        for lead, stored in zip(leads, self.store.mark_many_call_requested(calls), strict=True):
            logger.info(
                "call requested",
                extra={"lead_id": lead.message.lead_id, "run_id": outcome.run_id, "stored": stored},
            )

    def _record_failure(self, lead: _Lead, outcome: CreateTaskOutcome, result: BatchResult) -> None:
        lead_id, claim_id = lead.message.lead_id, lead.record.message_id
        message = redact(outcome.message)
        if outcome.kind == "permanent":
            detail = f"Unpod refused the task (HTTP {outcome.http_status}): {message}"
            self.store.mark_failed(
                lead_id,
                claim_id,
                reason=detail,
                error_kind=outcome.failure_kind,
                http_status=outcome.http_status,
                message=message,
                rejected=outcome.is_validation_error,
            )
            return
        self._give_up_or_retry(lead, outcome.kind, message, result, outcome)

    def _give_up_or_retry(
        self,
        lead: _Lead,
        kind: str,
        message: str,
        result: BatchResult,
        outcome: CreateTaskOutcome | None = None,
    ) -> None:
        lead_id, claim_id = lead.message.lead_id, lead.record.message_id
        error_kind = outcome.failure_kind if outcome else kind
        if lead.record.receive_count >= self.settings.max_receive_count:
            self.store.mark_failed(
                lead_id,
                claim_id,
                reason=f"gave up after {lead.record.receive_count} attempts ({kind}): {message}",
                error_kind=error_kind,
                http_status=outcome.http_status if outcome else None,
                message=message,
            )
            metrics.add_metric(name="LeadsFailed", unit=MetricUnit.Count, value=1)
            result.retry[claim_id] = "final attempt failed: to the dead-letter queue"
            return
        if kind == "unknown":
            self.store.mark_uncertain(lead_id, claim_id, error_kind, message)
        else:
            self.store.mark_unsent(lead_id, claim_id, error_kind, message)
        result.retry[claim_id] = f"{kind}: {error_kind}"


def queued_records(records: Sequence[Mapping[str, Any]]) -> list[QueuedRecord]:
    """QueuedRecords from the raw SQS event records."""
    return [
        QueuedRecord(
            message_id=str(record["messageId"]),
            body=str(record.get("body") or ""),
            receive_count=int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)),
        )
        for record in records
    ]
