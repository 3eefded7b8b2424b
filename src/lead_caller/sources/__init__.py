"""CRM sources, one module each, registered by the name used in `/webhooks/{source}`."""

from __future__ import annotations

from lead_caller.sources.base import Source
from lead_caller.sources.generic import GenericSource

SOURCES: dict[str, Source] = {source.name: source for source in (GenericSource(),)}


def get_source(name: str) -> Source | None:
    """The source registered under `name`, or None."""
    return SOURCES.get(name)
