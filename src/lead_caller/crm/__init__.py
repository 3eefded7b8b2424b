"""CRM API clients the dispatcher uses to fetch records of thin events (one module per CRM)."""

from __future__ import annotations

from lead_caller.config import Settings
from lead_caller.crm.hubspot import HubSpotContacts
from lead_caller.crm.pipedrive import PipedrivePersons
from lead_caller.crm.zoho import ZohoRecords
from lead_caller.enrichment import Enricher


def build_enrichers(settings: Settings) -> dict[str, Enricher]:
    """Enricher per enrichment kind, with the configured API base URLs."""
    return {
        HubSpotContacts.kind: HubSpotContacts(settings.hubspot_api_base_url),
        PipedrivePersons.kind: PipedrivePersons(settings.pipedrive_api_base_url),
        ZohoRecords.kind: ZohoRecords(settings.zoho_accounts_base_url, settings.zoho_api_base_url),
    }
