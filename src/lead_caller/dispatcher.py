"""Dispatch: claim queued leads, call Unpod in batches, record every outcome.

For one SQS batch:
1. each message is claimed in DynamoDB (`LeadStore.claim`): duplicates are
   dropped, our own redeliveries after a crash/timeout are reconciled with
   Unpod (`UnpodClient.find_task`) before anything is sent again;
2. the claimed leads are grouped by (space, pilot, context, schedule) and sent
   as Create Task requests of at most `max_documents_per_request` documents;
3. a permanent validation refusal of a multi-contact request is split in
   halves and retried, so one bad contact cannot sink the others;
4. failures that are not final go back to SQS with a per-message delay from the
   retry schedule (`retry_schedule.py`, applied by the handler with
   ChangeMessageVisibility); systemic ones (Unpod down, credentials rejected) feed
   the shared circuit breaker (`circuit.py`) and never use up a lead's attempts;
   429 and the pacing ceiling (`pacing.py`) only delay. A lead is given up after the
   horizon (and the schedule's length in per-lead failures): `failed`, or
   `outcome_unknown` when its last attempt's answer is unknown, and its message is
   moved to the dead-letter queue (docs/resilience.md).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from lead_caller.circuit import CIRCUIT_KEY, CREDENTIALS, UNAVAILABLE, Circuit, Decision
from lead_caller.config import ConfigError, Settings
from lead_caller.contacts import build_document
from lead_caller.enrichment import Enricher, Fetched, crm_object_of
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.observability import logger, metrics, redact
from lead_caller.pacing import Pacer
from lead_caller.policy import Planner, read_facts
from lead_caller.retry_schedule import RetrySchedule
from lead_caller.secrets import SecretError
from lead_caller.sources import compile_mappings
from lead_caller.store import CallRequested, Claim, LeadStore
from lead_caller.suppression import SuppressionUnavailableError
from lead_caller.unpod import CreateTaskOutcome, UnpodClient, UnpodCredentials, UnpodLookupError

#: Create Task requests of one batch in flight at once (each holds other leads)
MAX_PARALLEL_SENDS = 4
#: seconds a 429 hold read with the circuit state stands in for reading it before a send
HOLD_READ_MAX_AGE = 1.0


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
    reconciled: bool = False  # Unpod confirmed that no earlier attempt created the task
    #: the calling policy's fields, written with the call-requested outcome (policy.Planner)
    plan: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteKey:
    """Leads sharing a RouteKey can go in one Create Task request."""

    space_token: str
    pilot: str
    context: str
    schedule_json: str


@dataclass
class BatchResult:
    """message_id -> reason to retry; messages absent from `retry` and `dead_letter` are done."""

    retry: dict[str, str] = field(default_factory=dict)
    #: message_id -> seconds before SQS may deliver a retried message again (the retry schedule)
    delays: dict[str, float] = field(default_factory=dict)
    #: message_id -> reason: given up, the handler moves the message to the dead-letter queue
    dead_letter: dict[str, str] = field(default_factory=dict)
    # per-batch circuit state: probing (half-open), reset needed on success, open for how long
    probing: bool = field(default=False, repr=False)
    circuit_dirty: bool = field(default=False, repr=False)
    circuit_open_for: float = field(default=0.0, repr=False)
    circuit_reason: str = field(default="", repr=False)
    #: space token -> epoch before which no request goes to it (a 429's Retry-After)
    held: dict[str, float] = field(default_factory=dict, repr=False)
    #: space token -> (the shared 429 hold's epoch, when it was read), read with the circuit
    hold_read: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def later(self, message_id: str, reason: str, delay: float) -> None:
        """Retry this message in `delay` seconds."""
        self.retry[message_id] = reason
        self.delays[message_id] = delay


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
        *,
        refresh_credentials: Callable[[], UnpodCredentials] | None = None,
        schedule: RetrySchedule | None = None,
        circuit: Circuit | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.credentials = credentials
        #: re-reads the secret past its cache (after a 401/403 and before a half-open probe)
        self.refresh_credentials = refresh_credentials or credentials
        self.enrichers = dict(enrichers or {})
        self.crm_credentials = crm_credentials or dict
        self.mappings = dict(mappings) if mappings else compile_mappings(settings)
        self.clock = clock
        self.schedule = schedule or RetrySchedule(
            steps=settings.retry_schedule_seconds,
            horizon_seconds=settings.retry_horizon_seconds,
            time_scale=settings.retry_time_scale,
        )
        self.circuit = circuit or Circuit(
            store.client,
            store.table_name,
            threshold=settings.circuit_failure_threshold,
            base_open_seconds=settings.circuit_open_seconds,
            max_open_seconds=settings.circuit_max_open_seconds,
            time_scale=settings.retry_time_scale,
            clock=clock,
        )
        self.pacer = pacer or Pacer(
            store.client,
            store.table_name,
            settings.unpod_requests_per_second,
            max_wait_seconds=settings.pacing_max_wait_seconds,
            clock=clock,
        )

    def dispatch(self, records: Sequence[QueuedRecord]) -> BatchResult:
        """Process one SQS batch; returns which messages must be retried."""
        result = BatchResult()
        try:
            credentials = self.credentials()
        except (SecretError, ConfigError) as error:
            logger.error("Unpod credentials unavailable", extra={"error": str(error)})
            metrics.add_metric(name="UnpodCredentialsRejected", unit=MetricUnit.Count, value=1)
            for record in records:
                result.later(record.message_id, "credentials unavailable", self.schedule.delay(record.receive_count))
            return result

        leads = self._claim_all(records, result)
        if not leads:
            return result

        decision = self._decide(credentials.space_token, result)
        if decision.kind == "wait":
            self._circuit_metric(decision.reason)
            for lead in leads:
                self._defer(
                    lead, f"circuit open: Unpod {decision.reason}", "circuit_open", decision.wait_seconds, result
                )
            return result
        result.circuit_dirty = decision.failures > 0 or decision.kind == "probe"
        if decision.kind == "probe":
            result.probing = True
            logger.info("circuit half-open: probing Unpod", extra={"reason": decision.reason})
            credentials = self._fresh_credentials(credentials)

        unsettled: list[_Lead] = []
        lookups: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        for lead in leads:
            if lead.claim.needs_reconcile and self._reconcile(lead, credentials, lookups, result):
                continue
            unsettled.append(lead)
        to_send = self._apply_policy(self._enrich(unsettled, result), result)

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
        # Half-open circuit: one request at a time probes Unpod (the first failure defers the rest).
        if len(requests) <= 1 or MAX_PARALLEL_SENDS <= 1 or result.probing:
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
                result.dead_letter[record.message_id] = "unreadable message"
        claims = self.store.claim_many(
            [(message, record.message_id, record.receive_count) for record, message in readable]
        )
        leads: list[_Lead] = []
        for (record, message), claim in zip(readable, claims, strict=True):
            if isinstance(claim, Exception):
                logger.warning("claim failed", extra={"lead_id": message.lead_id, "error": type(claim).__name__})
                result.later(record.message_id, "claim failed", self.schedule.scaled(5.0) + 1.0)
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
        previous = lead.claim.previous
        # back to the first attempt (the earliest one that may have created the task)
        first = _epoch(previous.get("first_try_at")) or _epoch(previous.get("claimed_at"))
        since = datetime.fromtimestamp(first or lead.message.received_at, UTC) - timedelta(minutes=5)
        if result.circuit_open_for > 0:
            self._defer(lead, f"circuit open: Unpod {result.circuit_reason}", "circuit_open", 0.0, result)
            return True
        try:
            if document_id not in lookups:
                space = self._route(lead.message, credentials).space_token
                lookups[document_id] = self.client.find_task(credentials, document_id, since, space)
        except UnpodLookupError as error:
            detail = redact(str(error))
            logger.warning("reconcile failed", extra={"lead_id": lead.message.lead_id, "error": detail})
            open_for = self._circuit_failure(UNAVAILABLE, result)
            message = f"outcome unknown and Unpod unreachable: {detail}"
            self._give_up_or_retry(lead, "unknown", message, result, systemic=open_for > 0, wait=open_for)
            return True
        found = lookups[document_id]
        if found is None:
            logger.info("reconciled: no task found, sending again", extra={"lead_id": lead.message.lead_id})
            lead.reconciled = True
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
        routing = {**self.settings.routing_for(source).for_record(fetched.record), **lead.message.routing}
        facts = read_facts(self.settings, source, fetched.record, routing)
        document, rejection, _ = build_document(source, raw, facts["phone_region"], facts["phone_region_rule"])
        if document is None:
            self._reject(lead, str(rejection), "invalid_contact")
            return None
        lead.message = dataclasses.replace(lead.message, document=document, routing=routing, facts=facts)
        return lead

    def _apply_policy(self, leads: list[_Lead], result: BatchResult) -> list[_Lead]:
        """Calling policy (policy.py): record suppressed/rejected leads; the others get their schedule."""
        if not leads:
            return []
        try:
            plans = Planner(self.settings, self.store).plan_many(
                [(lead.message, lead.record.message_id) for lead in leads]
            )
        except (ClientError, BotoCoreError, SuppressionUnavailableError) as error:
            for lead in leads:
                self._give_up_or_retry(lead, "transient", f"calling policy: {type(error).__name__}", result)
            return []
        ready: list[_Lead] = []
        for lead, plan in zip(leads, plans, strict=True):
            logger.info("calling policy", extra={"lead_id": lead.message.lead_id, "action": plan.action})
            if plan.message is not None:
                lead.message = plan.message
                lead.plan = dict(plan.fields or {})
                ready.append(lead)
        return ready

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
        if self._held(route, leads, result):
            return
        outcome = self.client.create_task(
            credentials,
            [lead.message.document.to_unpod() for lead in leads if lead.message.document],
            context=route.context,
            schedule=json.loads(route.schedule_json),
            pilot=route.pilot,
            space_token=route.space_token,
        )
        if outcome.kind == "accepted":
            self._circuit_success(result)
            self._record_accepted(leads, outcome)
            return
        if outcome.http_status in (401, 403):
            fresh = self._fresh_credentials(credentials)
            if fresh != credentials:  # the secret was fixed or rotated since it was cached
                logger.info("Unpod refused the cached credentials; retrying with the secret re-read")
                self._send(route, leads, fresh, result)
                return
        known_secrets = (credentials.api_token, credentials.space_token, credentials.org_handle or "")
        outcome = dataclasses.replace(outcome, message=redact(outcome.message, known_secrets))
        metrics.add_metric(name=f"UnpodFailures_{outcome.failure_kind}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="UnpodFailures", unit=MetricUnit.Count, value=1)  # all kinds: the rate alarm
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
        if outcome.http_status == 429:
            # Unpod is up and throttling: wait Retry-After (never call before it); not a failure
            wait = outcome.retry_after if outcome.retry_after is not None else self.schedule.delay(1)
            result.held[route.space_token] = self.clock() + wait
            try:
                self.pacer.hold(route.space_token, wait)  # shared: no dispatcher calls before Retry-After
            except (ClientError, BotoCoreError) as error:
                logger.warning("429 hold not shared", extra={"error": type(error).__name__})
            for lead in leads:
                self._defer(lead, "throttled by Unpod (HTTP 429)", "http_429", wait, result)
            return
        if outcome.kind in ("transient", "unknown") or outcome.http_status in (401, 403):
            reason = CREDENTIALS if outcome.http_status in (401, 403) else UNAVAILABLE
            open_for = self._circuit_failure(reason, result)
            wait = max(open_for, outcome.retry_after or 0.0)
            for lead in leads:
                self._give_up_or_retry(
                    lead,
                    outcome.kind,
                    outcome.message,
                    result,
                    outcome,
                    systemic=reason == CREDENTIALS or open_for > 0,
                    wait=wait,
                )
            return
        for lead in leads:
            self._record_failure(lead, outcome, result)

    # ---- circuit breaker, pacing, credentials ------------------------------------------
    def _decide(self, space_token: str, result: BatchResult) -> Decision:
        """The circuit's decision. Its state and the default space's shared 429 hold are read
        together (one consistent BatchGetItem), so `_held` need not read the hold again."""
        try:
            items = None
            shared = self.circuit.table_name == self.pacer.table_name == self.store.table_name
            if shared:
                hold_key = self.pacer.hold_key(space_token)
                items = self.store.read_many([CIRCUIT_KEY, hold_key])
            if items is not None:
                until = float(items.get(hold_key, {}).get("until", 0))
                result.hold_read[space_token] = (until, self.clock())
                return self.circuit.decide(items.get(CIRCUIT_KEY, {}))
            return self.circuit.decide()
        except (ClientError, BotoCoreError) as error:  # the table is unreachable: the claims failed too
            logger.warning("circuit state unavailable", extra={"error": type(error).__name__})
            return Decision("send")

    def _circuit_success(self, result: BatchResult) -> None:
        if not result.circuit_dirty:
            return
        result.circuit_dirty = result.probing = False
        try:
            self.circuit.record_success()
        except (ClientError, BotoCoreError) as error:
            logger.warning("circuit reset failed", extra={"error": type(error).__name__})
            return
        logger.info("circuit closed: Unpod answers again")

    def _circuit_failure(self, reason: str, result: BatchResult) -> float:
        """Count a systemic failure; returns how long the circuit is open (0 = closed)."""
        if reason == CREDENTIALS:
            metrics.add_metric(name="UnpodCredentialsRejected", unit=MetricUnit.Count, value=1)
        result.circuit_dirty = True
        try:
            open_for = self.circuit.record_failure(reason, probing=result.probing)
        except (ClientError, BotoCoreError) as error:
            logger.warning("circuit update failed", extra={"error": type(error).__name__})
            return 0.0
        result.probing = False
        if open_for > 0:
            if result.circuit_open_for == 0:
                logger.warning("circuit open: Unpod " + reason, extra={"open_seconds": round(open_for, 3)})
                self._circuit_metric(reason)
            result.circuit_open_for = open_for
            result.circuit_reason = reason
        return open_for

    @staticmethod
    def _circuit_metric(reason: str) -> None:
        name = "UnpodCredentialsRejected" if reason == CREDENTIALS else "UnpodUnavailable"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def _fresh_credentials(self, credentials: UnpodCredentials) -> UnpodCredentials:
        try:
            return self.refresh_credentials()
        except (SecretError, ConfigError) as error:
            logger.warning("Unpod secret re-read failed", extra={"error": str(error)})
            return credentials

    def _held(self, route: RouteKey, leads: list[_Lead], result: BatchResult) -> bool:
        """True (and the leads deferred) when this request must not go now: circuit, 429, pace."""
        if result.circuit_open_for > 0:
            for lead in leads:
                self._defer(lead, f"circuit open: Unpod {result.circuit_reason}", "circuit_open", 0.0, result)
            return True
        held_until = result.held.get(route.space_token, 0.0)
        if held_until > self.clock():
            for lead in leads:
                self._defer(lead, "throttled by Unpod (HTTP 429)", "http_429", held_until - self.clock(), result)
            return True
        until, read_at = result.hold_read.get(route.space_token, (0.0, float("-inf")))
        fresh = self.clock() - read_at <= HOLD_READ_MAX_AGE  # else read again: another dispatcher may hold it now
        try:
            wait = self.pacer.acquire(route.space_token, hold_until=until if fresh else None)
        except (ClientError, BotoCoreError) as error:
            logger.warning("pacing counter unavailable", extra={"error": type(error).__name__})
            wait = 0.0
        if wait > 0:
            metrics.add_metric(name="DispatchPaced", unit=MetricUnit.Count, value=len(leads))
            for lead in leads:
                self._defer(lead, "paced: the per-second ceiling or a 429 hold", "paced", wait, result)
            return True
        return False

    def _defer(self, lead: _Lead, message: str, error_kind: str, wait: float, result: BatchResult) -> None:
        """Send the lead back to the queue for `wait` seconds (or the circuit's time); not a failure."""
        wait = max(wait, result.circuit_open_for if error_kind == "circuit_open" else 0.0)
        self._give_up_or_retry(lead, "deferred", message, result, systemic=True, wait=wait, error_kind=error_kind)

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
                    lead.message.lead_id,
                    lead.record.message_id,
                    outcome.run_id,
                    task_ids,
                    previous_run,
                    document,
                    crm_object_of(lead.message.enrichment),
                    lead.plan,
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
        if outcome.kind == "permanent" and outcome.http_status not in (401, 403):
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
        *,
        systemic: bool = False,
        wait: float = 0.0,
        error_kind: str | None = None,
    ) -> None:
        """Schedule the next try of a lead, or give it up (horizon passed, or the last receive).

        Systemic failures (and deferrals) never count towards `lead_failures` and never give a
        lead up; the horizon applies once the lead itself failed the schedule's length of times.
        """
        lead_id, claim_id = lead.message.lead_id, lead.record.message_id
        error_kind = error_kind or (outcome.failure_kind if outcome else kind)
        now = self.clock()
        previous = lead.claim.previous
        own = lead.claim.kind == "redelivered"
        first = (_epoch(previous.get("first_try_at")) if own else None) or now
        failures = (int(previous.get("lead_failures") or 0) if own else 0) + (0 if systemic else 1)
        uncertain = kind == "unknown" or (lead.claim.needs_reconcile and not lead.reconciled)
        last_receive = lead.record.receive_count >= self.settings.max_receive_count
        if last_receive or (not systemic and self.schedule.gives_up(first, now, failures)):
            if last_receive:
                reason = f"gave up after {lead.record.receive_count} attempts ({kind}): {message}"
            else:
                hours = (now - first) / 3600
                reason = f"gave up after {failures} failed attempts over {hours:.1f} h ({kind}): {message}"
            if uncertain:
                self.store.mark_outcome_unknown(lead_id, claim_id, reason, error_kind, message)
                metrics.add_metric(name="LeadsOutcomeUnknown", unit=MetricUnit.Count, value=1)
            else:
                self.store.mark_failed(
                    lead_id,
                    claim_id,
                    reason=reason,
                    error_kind=error_kind,
                    http_status=outcome.http_status if outcome else None,
                    message=message,
                )
                metrics.add_metric(name="LeadsFailed", unit=MetricUnit.Count, value=1)
            result.dead_letter[claim_id] = reason[:256]
            return
        index = failures if not systemic else lead.record.receive_count
        delay = self.schedule.delay(index)
        if wait > 0:  # circuit, Retry-After or pace: that long at least, plus a little jitter to spread
            delay = wait * (1.0 + 0.2 * random.random())  # noqa: S311 - jitter, not security
        self.store.mark_retry(
            lead_id,
            claim_id,
            error_kind=error_kind,
            message=message,
            uncertain=uncertain,
            lead_failures=failures,
            first_try_at=first,
            next_try_at=now + delay,
        )
        result.later(claim_id, f"{kind}: {error_kind}", delay)


def _epoch(value: Any) -> float | None:
    """Epoch seconds of a stored ISO-8601 time (None when absent or malformed)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
