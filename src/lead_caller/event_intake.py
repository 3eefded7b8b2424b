"""Leads from Amazon EventBridge: the documented `Lead Created` event, and Salesforce change events.

Any AWS service or app can trigger calls without HTTP by putting a
`Lead Created` event on the stack's bus (`<stack>-leads`):

    {"Source": "lead-caller", "DetailType": "Lead Created",
     "Detail": "<the generic source's JSON contract: one lead, an array, or an envelope>"}

Authentication is IAM (who may `events:PutEvents` on the bus), so no signature.
Salesforce Change Data Capture events (Lead/ContactChangeEvent, through Event
Relay or AppFlow) arrive from the partner event bus when that rule is enabled.

The leads enter the same intake as webhooks (mapping, validation, dedupe, SQS).
Errors raise, so that Lambda's asynchronous retries and then the on-failure
destination (the events dead-letter queue) keep the event: a durability
failure is retried, a malformed event ends in the dead-letter queue for a person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lead_caller.intake import Intake
from lead_caller.observability import logger
from lead_caller.sources import get_source
from lead_caller.sources.base import LeadResult, ParsedLead, PayloadError
from lead_caller.sources.generic import leads_of, unflatten

LEAD_CREATED = "Lead Created"


class EventRejectedError(Exception):
    """The event cannot become leads (malformed): it goes to the dead-letter queue."""


@dataclass(frozen=True)
class EventOutcome:
    """What became of one EventBridge event."""

    source: str | None
    results: tuple[LeadResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A summary for the invocation's result and logs."""
        return {"source": self.source, "results": [result.to_json() for result in self.results]}


def lead_created_leads(detail: Any) -> list[ParsedLead]:
    """The leads of a `Lead Created` event's detail (the generic JSON contract)."""
    if isinstance(detail, str):  # a Detail put as a JSON string inside JSON
        try:
            detail = json.loads(detail)
        except json.JSONDecodeError as error:
            raise PayloadError(f"detail is not JSON: {error.msg}") from None
    return [ParsedLead(record=unflatten(item)) for item in leads_of(detail)]


@dataclass
class EventIntake:
    """Turns EventBridge events into queued leads through the webhook intake."""

    intake: Intake
    lead_created_source: str = "lead-caller"
    salesforce_parser: Callable[[Mapping[str, Any]], list[ParsedLead]] | None = None

    def handle(self, event: Mapping[str, Any]) -> EventOutcome:
        """Accept the leads of one event; raises EventRejectedError or IntakeUnavailableError."""
        origin = str(event.get("source") or "")
        detail_type = str(event.get("detail-type") or "")
        try:
            if origin == self.lead_created_source and detail_type == LEAD_CREATED:
                source_name, leads = "eventbridge", lead_created_leads(event.get("detail"))
            elif self._is_salesforce(origin) and self.salesforce_parser is not None:
                source_name, leads = "salesforce", self.salesforce_parser(event)
            else:
                logger.info("event ignored", extra={"event_source": origin, "detail_type": detail_type})
                return EventOutcome(None)
        except PayloadError as error:
            logger.warning("event refused", extra={"event_source": origin, "reason": str(error)})
            raise EventRejectedError(str(error)) from None
        source = get_source(source_name)
        assert source is not None, source_name
        if not leads:
            return EventOutcome(source_name)
        raw = json.dumps(event.get("detail"), sort_keys=True, default=str).encode()
        results = self.intake.accept(source, leads, time.time(), raw)  # arrival, like a webhook's
        return EventOutcome(source_name, tuple(results))

    @staticmethod
    def _is_salesforce(origin: str) -> bool:
        return origin.startswith(("aws.partner/salesforce.com", "aws.partner/appflow"))
