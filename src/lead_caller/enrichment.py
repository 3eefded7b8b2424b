"""Fetching the CRM record of a thin event in the dispatch path (never in the webhook's request path).

HubSpot's Webhooks API and Pipedrive's lead/deal events carry only ids. The
webhook queues them with an `enrichment` spec ({"kind": ..., ids...}); the
dispatcher asks the enricher of that kind for the records, in one batch where
the CRM allows it, then maps and validates them like any full payload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FetchOutcome = Literal["ok", "gone", "permanent", "transient"]


@dataclass(frozen=True)
class Fetched:
    """The result for one requested record.

    ok: `record` holds it; gone: deleted in the CRM (the lead is rejected);
    permanent: the CRM refused for good, e.g. a revoked token (the lead fails);
    transient: 429/5xx/network, retried through SQS.
    """

    outcome: FetchOutcome
    record: Mapping[str, Any] | None = None
    message: str = ""


class Enricher(Protocol):
    """Fetches CRM records for one enrichment kind."""

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """One Fetched per request, in order. Never raises for HTTP or network trouble."""
        ...


def crm_object_of(enrichment: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The CRM object a thin event was about, for the write-back: {"type", "id"} or None.

    Pipedrive lead/deal events carry the lead or deal beside the person to call; Zoho
    notifications name the module (Leads, Contacts) and the record id.
    """
    if not enrichment:
        return None
    for entity in ("deal", "lead"):
        detail = enrichment.get(entity)
        if isinstance(detail, Mapping) and detail.get("id") not in (None, ""):
            return {"type": entity, "id": str(detail["id"])}
    module, record_id = enrichment.get("module"), enrichment.get("id")
    if isinstance(module, str) and module and record_id not in (None, ""):
        return {"type": module, "id": str(record_id)}
    return None
