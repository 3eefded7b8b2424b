"""Pipedrive source (placeholder: being written)."""

from __future__ import annotations

from lead_caller.sources.base import Source


class PipedriveSource(Source):
    """Pipedrive webhooks v1 and v2."""

    name = "pipedrive"
