"""CRM sources, one module each, registered by the name used in `/webhooks/{source}`."""

from __future__ import annotations

from lead_caller.config import ConfigError, Settings
from lead_caller.crms.hubspot.webhook import HubSpotSource
from lead_caller.crms.pipedrive.webhook import PipedriveSource
from lead_caller.crms.salesforce.webhook import SalesforceSource
from lead_caller.crms.zoho.webhook import ZohoSource
from lead_caller.mapping import FieldMapping
from lead_caller.sources.base import Source
from lead_caller.sources.generic import EventBridgeSource, GenericSource

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        GenericSource(),
        HubSpotSource(),
        PipedriveSource(),
        EventBridgeSource(),
        SalesforceSource(),
        ZohoSource(),
    )
}


def get_source(name: str) -> Source | None:
    """The source registered under `name`, or None."""
    return SOURCES.get(name)


def compile_mappings(settings: Settings) -> dict[str, FieldMapping]:
    """Each source's built-in mapping with the user's FIELD_MAPPINGS applied; ConfigError if invalid."""
    unknown = sorted(set(settings.field_mappings) - set(SOURCES))
    if unknown:
        raise ConfigError(f"FIELD_MAPPINGS names unknown source(s): {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    return {
        name: FieldMapping.compile(source.default_mapping, settings.field_mappings.get(name), f"FIELD_MAPPINGS.{name}")
        for name, source in SOURCES.items()
    }
