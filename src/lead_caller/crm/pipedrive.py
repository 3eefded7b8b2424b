"""Pipedrive API client (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from lead_caller.enrichment import Fetched


class PipedrivePersons:
    """Fetches Pipedrive persons by id."""

    kind: ClassVar[str] = "pipedrive_person"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """One Fetched per request."""
        return [Fetched("permanent", None, "not implemented") for _ in requests]
