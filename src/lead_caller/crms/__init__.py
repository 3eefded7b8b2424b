"""One package per CRM: its webhook source, its API client (enrichment and write-back) and the
rest of what it needs (`hubspot/`, `pipedrive/`, `salesforce/`, `zoho/`), plus the call note all
write-backs share (`callnote.py`).

Data flows one way: a CRM package depends on the shared modules (`sources.base`, `mapping`,
`contacts`, `retries`); the registry (`sources/__init__.py`), the dispatcher's enrichers (below)
and the write-back (`writeback.py`) depend on the CRM packages, never the reverse.
"""

from __future__ import annotations

from lead_caller.config import Settings
from lead_caller.enrichment import Enricher


def build_enrichers(settings: Settings) -> dict[str, Enricher]:
    """Enricher per enrichment kind, with the configured API base URLs (imported here, not at
    package import, so a function that never enriches does not load the API clients)."""
    from lead_caller.crms.hubspot.api import HubSpotContacts
    from lead_caller.crms.pipedrive.api import PipedrivePersons
    from lead_caller.crms.zoho.api import ZohoRecords

    return {
        HubSpotContacts.kind: HubSpotContacts(settings.hubspot_api_base_url),
        PipedrivePersons.kind: PipedrivePersons(settings.pipedrive_api_base_url),
        ZohoRecords.kind: ZohoRecords(settings.zoho_accounts_base_url, settings.zoho_api_base_url),
    }
