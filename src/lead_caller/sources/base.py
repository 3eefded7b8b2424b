"""What every CRM source implements, and the request/answer types they share.

A source decides three things for its sender: is the request authentic
(`authenticate`), which leads does it carry (`parse`), and how to answer
(`reply_*`), because each CRM retries on different status codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound webhook as the source sees it: raw body bytes, lower-case headers."""

    source: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    public_url: str
    received_at: float

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ("" when absent)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers and body text."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply."""
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status=status, body=json.dumps(payload, separators=(",", ":")), headers=merged)


class AuthenticationError(Exception):
    """The request could not be proven to come from the configured sender."""


class PayloadError(Exception):
    """The request is not a payload this source understands. `status` is the HTTP code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: A record id as it may be queued and keyed (`<source>#<record id>` in DynamoDB, whose keys stop at
#: 2,048 bytes): 1-128 ASCII letters, digits and `._:+-`, the same rule as contacts.build_document.
RECORD_ID = re.compile(r"[A-Za-z0-9._:+\-]{1,128}")
MAX_RECORD_ID_LENGTH = 128


def record_id_problem(record_id: str | None) -> str | None:
    """Why a record id cannot be queued (None when it can): every source's ids pass here before queueing."""
    if not record_id:
        return "the event names no record"
    if len(record_id) > MAX_RECORD_ID_LENGTH:
        return f"record id must be at most {MAX_RECORD_ID_LENGTH} characters, got {len(record_id)}"
    if not RECORD_ID.fullmatch(record_id):
        return "record id must be 1-128 letters, digits or ._:+-"
    return None


def text_bytes(text: str) -> bytes:
    """UTF-8 bytes of request text (a header, the URL) for signing and comparing: never raises.

    A lone surrogate cannot come from a real sender; it is kept as its own bytes, so it simply
    does not match (401) instead of failing to encode (500).
    """
    return text.encode("utf-8", "surrogatepass")


def load_json(body: bytes, expected: str) -> Any:
    """Parse a JSON body; PayloadError naming the problem (and what was `expected`) otherwise."""
    if not body.strip():
        raise PayloadError(f"the body is empty; expected {expected}")
    try:
        text = body.decode("utf-8-sig")  # JSON on the wire is UTF-8 (RFC 8259); tolerate a BOM
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PayloadError(f"the body is not valid JSON: {error.msg} (line {error.lineno})") from None
    except RecursionError:
        raise PayloadError("the body is nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits (sys.get_int_max_str_digits)
        raise PayloadError(f"the body holds a value JSON cannot be read as: {str(error)[:80]}") from None


@dataclass
class ParsedLead:
    """One lead found in a payload.

    `record` is the CRM record the source's field mapping reads. Thin events
    (HubSpot's Webhooks API, Pipedrive leads and deals) carry only ids: then
    `record` is None, `record_id` names the record and `enrichment` tells the
    dispatcher how to fetch it from the CRM's API (outside the request path).
    """

    record: Mapping[str, Any] | None
    record_id: str | None = None
    enrichment: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LeadResult:
    """What happened to one lead of a request, as reported back to the sender."""

    index: int
    status: str  # queued | duplicate | rejected
    lead_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result without empty fields."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Source:
    """Base class of a CRM source. Subclasses set `name` and implement the hooks."""

    name: ClassVar[str]
    #: media types the source accepts; others get 415.
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    #: the built-in field mapping (see mapping.py); FIELD_MAPPINGS overrides it per field.
    default_mapping: ClassVar[Mapping[str, Any]] = {}
    #: False for sources that are not webhooks (EventBridge): POST /webhooks/<name> answers 404.
    http: ClassVar[bool] = True

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """Raise AuthenticationError unless the request is authentic."""
        raise NotImplementedError

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """Return the leads of the payload, or raise PayloadError. `credentials`: the source's webhook
        credentials, for sources whose payload needs account settings (e.g. HubSpot's portal id)."""
        raise NotImplementedError

    @staticmethod
    def results_body(results: Sequence[LeadResult], when_empty: str | None = None) -> dict[str, Any]:
        """The per-lead answer body: counts and one result per lead (`message` when there were none)."""
        queued = sum(1 for result in results if result.status in ("queued", "duplicate"))
        body: dict[str, Any] = {
            "accepted": queued,
            "rejected": len(results) - queued,
            "results": [result.to_json() for result in results],
        }
        if not results and when_empty:
            body["message"] = when_empty
        return body

    def reply_accepted(self, results: Sequence[LeadResult]) -> Reply:
        """Answer a request whose leads were all queued, recognised as duplicates or rejected:
        202, or 422 when every lead was rejected."""
        body = self.results_body(results)
        return Reply.json(202 if body["accepted"] or not results else 422, body)

    def reply_error(self, status: int, error: str, message: str) -> Reply:
        """Answer a request that was refused (bad auth, malformed body...)."""
        return Reply.json(status, {"error": error, "message": message})

    def reply_unavailable(self, message: str) -> Reply:
        """Answer when the lead could not be stored durably: the sender must retry."""
        return Reply.json(503, {"error": "unavailable", "message": message}, {"Retry-After": "5"})
