"""Webhook intake: authenticate, parse, validate, queue. Decides the answer to the sender.

The order matters for "nothing lost": a 2xx is only returned after every
callable lead is in SQS (durable) and every rejected one is recorded; any
failure on that path answers the source's retryable status (5xx/503) so the
CRM delivers again. Redeliveries are harmless: the dispatcher calls a record
at most once within the dedupe window.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from lead_caller.config import Settings
from lead_caller.contacts import build_document
from lead_caller.leads import LeadMessage, lead_id_of
from lead_caller.mapping import FieldMapping
from lead_caller.observability import annotate_metrics_line, logger, metrics
from lead_caller.policy import consent_rejection, policy_for, read_facts
from lead_caller.queue import LeadQueue, QueueError, oversize_problem
from lead_caller.secrets import SecretError
from lead_caller.sources import compile_mappings, get_source
from lead_caller.sources.base import (
    AuthenticationError,
    LeadResult,
    ParsedLead,
    PayloadError,
    Reply,
    Source,
    WebhookRequest,
    record_id_problem,
)

#: a delivery carrying this header (value "1") is authenticated as usual, then answered 200 without
#: parsing or queueing anything: how `lead-caller doctor` proves the webhook URL and credentials
TEST_DELIVERY_HEADER = "x-lead-caller-test"
TEST_DELIVERY_ANSWER = "test delivery authenticated; nothing was queued or called"


def rejection_kind(reason: str) -> str:
    """A metric-name-safe label of a rejection reason: the field it names ("contact_number: missing")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", reason.split(":", 1)[0].strip())[:40] or "other"


@dataclass
class Intake:
    """Everything the webhook needs, wired once per container."""

    settings: Settings
    store: Any  # LeadStore (duck-typed so tests can inject failures)
    queue: LeadQueue
    credentials: Callable[[str], Mapping[str, Any]]
    mappings: Mapping[str, FieldMapping] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.mappings:
            self.mappings = compile_mappings(self.settings)  # fails at start on a bad FIELD_MAPPINGS

    def handle(self, request: WebhookRequest) -> Reply:
        """Turn one webhook request into queued leads and the sender's answer."""
        source = get_source(request.source)
        if source is None or not source.http:
            return Source().reply_error(404, "unknown_source", f"no source named {request.source!r}; see the README")
        if len(request.body) > self.settings.max_body_bytes:
            return source.reply_error(
                413, "body_too_large", f"the body is larger than {self.settings.max_body_bytes} bytes"
            )
        if request.content_type not in source.content_types:
            return source.reply_error(
                415,
                "unsupported_media_type",
                f"Content-Type must be one of {', '.join(source.content_types)}, got {request.content_type or 'none'}",
            )
        try:
            credentials = self.credentials(source.name)
        except SecretError as error:
            logger.error("webhook credentials unavailable", extra={"source": source.name, "error": str(error)})
            return source.reply_unavailable("credentials are not available, try again later")
        try:
            source.authenticate(request, credentials)
        except AuthenticationError as error:
            logger.warning("authentication failed", extra={"source": source.name, "reason": str(error)})
            metrics.add_metric(name="AuthenticationFailures", unit=MetricUnit.Count, value=1)
            return source.reply_error(401, "unauthorized", "the request could not be authenticated")
        if request.headers.get(TEST_DELIVERY_HEADER) == "1":  # `lead-caller doctor`: authenticated, never queued
            logger.info("test delivery authenticated", extra={"source": source.name})
            return Reply.json(200, {"test": True, "source": source.name, "message": TEST_DELIVERY_ANSWER})
        try:
            leads = source.parse(request, credentials)
        except PayloadError as error:
            logger.info("payload refused", extra={"source": source.name, "reason": str(error)})
            return source.reply_error(error.status, "invalid_payload", str(error))
        return self._accept(source, request, leads)

    def _message(
        self, source: Source, received_at: float, lead: ParsedLead
    ) -> tuple[LeadMessage | None, str | None, str | None]:
        """(message, rejection reason, record id) of one parsed lead."""
        if lead.record is None:  # a thin event: the dispatcher fetches the record
            problem = record_id_problem(lead.record_id) if lead.enrichment else "the event names no record"
            if problem is not None:
                return None, f"id: {problem}", None
            assert lead.record_id is not None
            assert lead.enrichment is not None
            message = LeadMessage(source.name, lead.record_id, received_at, None, {}, lead.enrichment)
            return self._sized(message)
        raw = self.mappings[source.name].apply(lead.record)
        if lead.record_id and not raw.record_id:
            raw.record_id = lead.record_id
        routing = self.settings.routing_for(source.name).for_record(lead.record)
        policy = policy_for(self.settings, source.name, routing)  # once per lead: facts and consent read it
        facts = read_facts(self.settings, source.name, lead.record, routing, policy)  # country, opt-out...
        region, region_rule = facts["phone_region"], facts["phone_region_rule"]
        document, rejection, record_id = build_document(source.name, raw, region, region_rule)
        if document is None or rejection is not None:
            return None, str(rejection), record_id
        no_consent = consent_rejection(self.settings, source.name, facts, routing, policy)
        if no_consent:
            return None, no_consent, record_id
        assert record_id is not None
        if lead.enrichment is not None:  # valid, but completed in the dispatch path (e.g. a company name)
            return self._sized(LeadMessage(source.name, record_id, received_at, None, {}, lead.enrichment))
        return self._sized(LeadMessage(source.name, record_id, received_at, document, routing, facts=facts))

    @staticmethod
    def _sized(message: LeadMessage) -> tuple[LeadMessage | None, str | None, str | None]:
        """The message, or its rejection when it cannot be queued as one SQS message (queue.py)."""
        problem = oversize_problem(message)
        if problem is not None:
            return None, problem, message.record_id
        return message, None, message.record_id

    def _accept(self, source: Source, request: WebhookRequest, leads: list[ParsedLead]) -> Reply:
        try:
            results = self.accept(source, leads, request.received_at, request.body)
        except IntakeUnavailableError:
            return source.reply_unavailable("the leads could not be stored, retry later")
        return source.reply_accepted(results)

    def accept(self, source: Source, leads: list[ParsedLead], received_at: float, raw: bytes) -> list[LeadResult]:
        """Map, validate, queue and record the leads of one delivery (HTTP or event); one result per lead.

        Raises IntakeUnavailableError when they could not be stored durably: the sender must retry.
        `raw` (the delivery's bytes) keys rejected leads that carry no record id.
        """
        results: list[LeadResult] = []
        to_queue: dict[str, tuple[int, LeadMessage]] = {}
        rejected: list[tuple[int, str, str, str, dict[str, Any]]] = []
        body_digest: str | None = None
        for index, lead in enumerate(leads):
            message, reason, record_id = self._message(source, received_at, lead)
            if message is None:
                if record_id is None and body_digest is None:  # once, and only for a lead with no id
                    body_digest = hashlib.sha256(raw).hexdigest()[:16]
                key = record_id or f"unkeyed-{body_digest}-{index}"
                lead_id = lead_id_of(source.name, key)
                rejected.append((index, lead_id, key, str(reason), {}))
                results.append(LeadResult(index, "rejected", lead_id, str(reason)))
                continue
            if message.lead_id in to_queue:  # the same record twice in one body: call once
                results.append(LeadResult(index, "duplicate", message.lead_id))
                continue
            to_queue[message.lead_id] = (index, message)

        try:
            # The claim guarantees one call; this read only lets the answer say "duplicate" (opt-in).
            check = to_queue and self.settings.intake_duplicate_check
            already = self.store.recently_called(to_queue) if check else {}
            for lead_id in already:
                index, _ = to_queue.pop(lead_id)
                results.append(LeadResult(index, "duplicate", lead_id))
            self.queue.send([message for _, message in to_queue.values()])
            for _, lead_id, key, reason, fields in rejected:
                self.store.record_rejected(lead_id, source.name, key, reason, received_at, fields)
        except (QueueError, ClientError, BotoCoreError) as error:
            logger.error("could not store leads durably", extra={"source": source.name, "error": type(error).__name__})
            metrics.add_metric(name="IntakeFailures", unit=MetricUnit.Count, value=1)
            raise IntakeUnavailableError(type(error).__name__) from error

        results.extend(LeadResult(index, "queued", lead_id) for lead_id, (index, _) in to_queue.items())
        results.sort(key=lambda result: result.index)
        statuses = ("queued", "duplicate", "rejected")
        counts = {status: sum(1 for r in results if r.status == status) for status in statuses}
        metrics.add_metric(name="LeadsReceived", unit=MetricUnit.Count, value=len(results))
        metrics.add_metric(name="LeadsAccepted", unit=MetricUnit.Count, value=counts["queued"])
        metrics.add_metric(name="LeadsDuplicate", unit=MetricUnit.Count, value=counts["duplicate"])
        metrics.add_metric(name="LeadsRejected", unit=MetricUnit.Count, value=counts["rejected"])
        for kind, count in Counter(rejection_kind(reason) for _, _, _, reason, _ in rejected).items():
            metrics.add_metric(name=f"LeadsRejected_{kind}", unit=MetricUnit.Count, value=count)  # the dashboard
        # One JSON line per delivery, not two: what happened to its leads rides in the line that
        # carries its metrics (a "wide event"). A separate INFO line cost ~0.1 ms of a ~2.5 ms
        # request (the formatter and filter at work; docs/performance.md). One delivery per
        # invocation (a webhook request, an EventBridge event), so one line names one delivery.
        context = logger.get_current_keys()
        annotate_metrics_line(
            {
                "message": "webhook accepted",
                "source": source.name,
                **counts,
                "lead_ids": [r.lead_id for r in results][:100],
                "function_request_id": context.get("function_request_id"),
                "correlation_id": context.get("correlation_id"),
            }
        )
        return results


class IntakeUnavailableError(Exception):
    """The leads could not be stored durably; the sender must deliver again."""
