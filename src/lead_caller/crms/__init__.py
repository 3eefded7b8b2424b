"""One package per CRM: its webhook source, its API client (enrichment and write-back) and the
rest of what it needs (`hubspot/`, `pipedrive/`, `salesforce/`, `zoho/`), plus the call note all
write-backs share (`callnote.py`).

Data flows one way: a CRM package depends on the shared modules (`sources.base`, `mapping`,
`contacts`, `retries`); the registry (`sources/__init__.py`), the dispatcher's enrichers (below)
and the write-back (`writeback.py`) depend on the CRM packages, never the reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lead_caller.config import Settings
from lead_caller.enrichment import Enricher, Fetched


class OnFirstFetch:
    """An enricher built (its CRM API module imported) when it first fetches: most dispatch
    containers only see full records and never need the CRM APIs (~6 ms of INIT)."""

    def __init__(self, build: Callable[[], Enricher]) -> None:
        self._build = build
        self._enricher: Enricher | None = None
        self._lock = threading.Lock()

    @property
    def enricher(self) -> Enricher:
        """The enricher, built on first use (once, whichever thread gets there first)."""
        if self._enricher is None:
            with self._lock:
                if self._enricher is None:
                    self._enricher = self._build()
        return self._enricher

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """The records, as the built enricher fetches them."""
        return self.enricher.fetch(credentials, requests)


def build_enrichers(settings: Settings) -> dict[str, Enricher]:
    """Enricher per enrichment kind (the kinds the webhooks queue), with the configured API base
    URLs; each API client is imported and built on its first fetch (`OnFirstFetch`)."""
    from lead_caller.crms.hubspot import webhook as hubspot
    from lead_caller.crms.pipedrive import webhook as pipedrive
    from lead_caller.crms.zoho import webhook as zoho

    def hubspot_contacts() -> Enricher:
        from lead_caller.crms.hubspot.api import HubSpotContacts

        return HubSpotContacts(settings.hubspot_api_base_url)

    def pipedrive_persons() -> Enricher:
        from lead_caller.crms.pipedrive.api import PipedrivePersons

        return PipedrivePersons(settings.pipedrive_api_base_url)

    def zoho_records() -> Enricher:
        from lead_caller.crms.zoho.api import ZohoRecords

        return ZohoRecords(settings.zoho_accounts_base_url, settings.zoho_api_base_url)

    return {
        hubspot.ENRICHMENT_KIND: OnFirstFetch(hubspot_contacts),
        pipedrive.ENRICHMENT_KIND: OnFirstFetch(pipedrive_persons),
        zoho.ENRICHMENT_KIND: OnFirstFetch(zoho_records),
    }
