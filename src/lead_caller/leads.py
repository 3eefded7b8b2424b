"""The lead as it travels from the webhook to the dispatcher (the SQS message body)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lead_caller.contacts import ContactDocument, stable_document_id

MESSAGE_VERSION = 1
#: characters SQS refuses in a message body (outside XML 1.0's Char range) or UTF-8 cannot carry
#: (lone surrogates): kept as JSON escapes. JSON escapes control characters below U+0020 itself.
_SQS_UNSAFE = re.compile("[\ud800-\udfff\ufffe\uffff]")


def lead_id_of(source: str, record_id: str) -> str:
    """The DynamoDB key of a CRM record: one item per source + record id."""
    return f"{source}#{record_id}"


@dataclass(frozen=True)
class LeadMessage:
    """One accepted lead on the queue.

    `routing` carries per-lead overrides (pilot, space_token, context, schedule)
    that a source derived from the payload; empty means the source's routing.
    """

    source: str
    record_id: str
    received_at: float
    document: ContactDocument | None
    routing: Mapping[str, Any] = field(default_factory=dict)
    #: how to fetch the CRM record when the webhook carried only its id (document is None then)
    enrichment: Mapping[str, Any] | None = None
    #: which call attempt this message asks for: 1 = first call, k+1 = a re-call sent by the poller
    attempt: int = 1
    #: what the calling policy read from the CRM record (policy.read_facts): country, state, ...
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def document_id(self) -> str:
        """Unpod's ref_id for this lead: stable per CRM record, known before enrichment."""
        return stable_document_id(self.source, self.record_id)

    @property
    def lead_id(self) -> str:
        """The DynamoDB key of this lead."""
        return lead_id_of(self.source, self.record_id)

    def to_json(self) -> str:
        """Serialise for the queue: compact UTF-8 JSON that SQS accepts.

        Computed once per message (the intake sizes it, then the queue sends it): a message is
        immutable, its mappings included (nothing changes them once it is built).
        """
        return self._json

    @cached_property
    def _json(self) -> str:
        body = json.dumps(
            {
                "v": MESSAGE_VERSION,
                "source": self.source,
                "record_id": self.record_id,
                "received_at": self.received_at,
                "document": self.document.to_unpod() if self.document else None,
                "routing": dict(self.routing),
                "enrichment": dict(self.enrichment) if self.enrichment else None,
                "attempt": self.attempt,
                "facts": dict(self.facts),
            },
            separators=(",", ":"),
            ensure_ascii=False,  # UTF-8 as is: an emoji is 4 bytes, not a 12-byte escape pair
        )
        if body.isascii():  # most leads: nothing to escape, and no scan
            return body
        # such characters only occur inside JSON strings, where a \uXXXX escape means the same
        return _SQS_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", body)

    @classmethod
    def from_json(cls, body: str) -> LeadMessage:
        """Parse a queue message body; raises ValueError when it is not a lead message."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
            raise ValueError("not a lead-caller message (missing or unknown version)")
        try:
            return cls(
                source=str(data["source"]),
                record_id=str(data["record_id"]),
                received_at=float(data["received_at"]),
                document=ContactDocument.from_unpod(data["document"]) if data.get("document") else None,
                routing=dict(data.get("routing") or {}),
                enrichment=dict(data["enrichment"]) if data.get("enrichment") else None,
                attempt=max(1, int(data.get("attempt") or 1)),
                facts=dict(data.get("facts") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"lead message is incomplete: {error}") from None
