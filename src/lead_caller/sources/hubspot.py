"""HubSpot source (placeholder: being written)."""

from __future__ import annotations

from lead_caller.sources.base import Source


class HubSpotSource(Source):
    """HubSpot Webhooks API and workflow "Send a webhook"."""

    name = "hubspot"
