"""What every CRM write-back shares: the call note, the CRM record it goes on, and the result.

A `CallNote` is built from a `Call Completed` event (docs/lifecycle.md): the
outcome, summary, duration and recording URL of one Unpod task, never a phone
number, email or transcript. Its `marker` ("lead-caller task <task_id>") is
written into every note/task so that a retry can find a note an earlier,
interrupted attempt already created (see docs/writeback.md, "Idempotency").

`WriteResult.outcome`: done (written, or found already written), permanent
(the CRM refused for good: bad token, record gone, not configured), transient
(429/5xx/network after the shared retry policy's in-place retries: SQS retries).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError

from lead_caller.retries import RETRY_STATUSES, retry_policy

WriteOutcome = Literal["done", "permanent", "transient"]
MARKER_PREFIX = "lead-caller task"


@dataclass(frozen=True)
class CallNote:
    """One finished call attempt, as written into a CRM."""

    task_id: str
    run_id: str = ""
    call_attempt: int = 1
    status: str = ""
    call_status: str = ""
    outcome: str = ""
    summary: str = ""
    sentiment: str = ""
    duration: int | None = None
    started_at: str = ""
    ended_at: str = ""
    recording_url: str = ""

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> CallNote:
        """The note of a `Call Completed` event detail; ValueError when it names no task."""
        task_id = _text(detail.get("task_id"))
        if not task_id:
            raise ValueError("the Call Completed event has no task_id")
        attempt = detail.get("call_attempt")
        return cls(
            task_id=task_id,
            run_id=_text(detail.get("run_id")),
            call_attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0 else 1,
            status=_text(detail.get("status")),
            call_status=_text(detail.get("call_status")),
            outcome=_text(detail.get("outcome")),
            summary=_text(detail.get("summary"))[:20_000],
            sentiment=_text(detail.get("sentiment")),
            duration=_seconds(detail.get("duration")),
            started_at=_text(detail.get("started_at")),
            ended_at=_text(detail.get("ended_at")),
            recording_url=_text(detail.get("recording_url")),
        )

    @property
    def marker(self) -> str:
        """The text that identifies this task's note in the CRM."""
        return f"{MARKER_PREFIX} {self.task_id}"

    @property
    def label(self) -> str:
        """The short outcome: the agent's outcome, else the lead status, else Unpod's call status."""
        return self.outcome or self.status or self.call_status or "unknown"

    @property
    def title(self) -> str:
        """A one-line subject ("AI call: completed")."""
        return f"AI call: {self.label}"[:80]

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs of what is known, in reading order."""
        pairs = [
            ("Outcome", self.outcome),
            ("Status", self.status),
            ("Call status", self.call_status),
            ("Duration", format_duration(self.duration) if self.duration is not None else ""),
            ("Started", self.started_at),
            ("Ended", self.ended_at),
            ("Sentiment", self.sentiment),
            ("Summary", self.summary),
            ("Recording", self.recording_url),
        ]
        return [(name, value) for name, value in pairs if value]

    def text(self) -> str:
        """Plain text body (Salesforce Description, Zoho Note_Content)."""
        body = [f"{name}: {value}" for name, value in self.lines()]
        body.append(f"{self.marker} (run {self.run_id or '-'}, attempt {self.call_attempt})")
        return "\n".join(body)

    def html(self) -> str:
        """HTML body (HubSpot hs_note_body, Pipedrive note content): every value escaped."""
        rows = [f"<strong>{html.escape(name)}:</strong> {html.escape(value)}" for name, value in self.lines()]
        rows.insert(0, f"<strong>{html.escape(self.title)}</strong>")
        rows.append(html.escape(f"{self.marker} (run {self.run_id or '-'}, attempt {self.call_attempt})"))
        return "<p>" + "<br>".join(rows) + "</p>"


@dataclass(frozen=True)
class CrmRecord:
    """The CRM record a lead came from: the lead item's `source`, `record_id` and optional `crm_object`.

    `crm_object` ({"type": "lead"|"deal"|"person"|"Leads"|"Contacts"|..., "id": "..."})
    names the object the webhook was about when `record_id` alone does not
    (a Pipedrive lead/deal called through its person, a Zoho module).
    """

    lead_id: str
    source: str
    record_id: str
    crm_object: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CrmRecord:
        """From a lead item."""
        crm_object = item.get("crm_object")
        return cls(
            lead_id=_text(item.get("pk")),
            source=_text(item.get("source")),
            record_id=_text(item.get("record_id")),
            crm_object=crm_object if isinstance(crm_object, Mapping) else {},
        )

    @property
    def object_type(self) -> str:
        """`crm_object.type` ("" when absent)."""
        return _text(self.crm_object.get("type"))

    @property
    def object_id(self) -> str:
        """`crm_object.id` ("" when absent)."""
        return _text(self.crm_object.get("id"))


@dataclass(frozen=True)
class WriteResult:
    """What one write-back did. `ref` is the CRM's id of the note/task (when known)."""

    outcome: WriteOutcome
    message: str = ""
    ref: str = ""


class CrmWriter(Protocol):
    """Writes a call note into one CRM. Never raises for HTTP or network trouble."""

    def write(
        self,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
        record: CrmRecord,
        note: CallNote,
        *,
        look_first: bool,
    ) -> WriteResult:
        """Write the note on the record; with `look_first`, return an existing note carrying its marker."""
        ...


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status (None when none came), parsed JSON payload, short message (no secrets)."""

    status: int | None
    payload: Any
    message: str

    @property
    def transient(self) -> bool:
        """429/5xx or no answer."""
        return self.status is None or self.status in RETRY_STATUSES or self.status >= 500

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def result(self, what: str) -> WriteResult:
        """The WriteResult of a failed answer: transient or permanent."""
        return WriteResult("transient" if self.transient else "permanent", f"{what}: {self.message}")


class JsonHttp:
    """A pooled urllib3 client with the shared retry policy (429/5xx/connect errors retried in place).

    Writes are not resent after a read timeout (the CRM may have acted on the
    lost request); the marker check on the next SQS attempt covers that case.
    """

    def __init__(
        self,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_retries: int = 2,
        max_retry_after: float = 5.0,
        backoff_factor: float = 0.5,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.retry = retry_policy(
            max_retries,
            max_retry_after=max_retry_after,
            backoff_factor=backoff_factor,
            resend_after_timeout=False,
            methods=("GET", "POST", "PATCH"),
        )
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=4, retries=self.retry, timeout=self.timeout)

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        json_body: Any = None,
        form: str | None = None,
        raw: str | None = None,
        label: str = "",
    ) -> Answer:
        """Send and classify; never raises for HTTP or network trouble. `label` names the call in messages.

        The body is `json_body` serialised, a urlencoded `form`, or `raw` text exactly as given
        (a signed body must go out byte for byte).
        """
        sent = {"Accept": "application/json", "User-Agent": "lead-caller/1.0", **headers}
        body: bytes | None = None
        if raw is not None:
            body = raw.encode()
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        elif form is not None:
            body = form.encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        name = label or method
        try:
            response = self.pool.request(method, url, body=body, headers=sent, timeout=self.timeout, retries=self.retry)
        except MaxRetryError as error:
            return Answer(None, None, f"{name}: no answer ({type(error.reason).__name__})")
        except HTTPError as error:
            return Answer(None, None, f"{name}: no answer ({type(error).__name__})")
        try:
            payload = json.loads(response.data) if response.data else None
        except ValueError:
            payload = None
        return Answer(response.status, payload, f"{name}: HTTP {response.status}")


def format_duration(seconds: int) -> str:
    """`m:ss` (or `h:mm:ss`)."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _text(value: Any) -> str:
    if value is None or isinstance(value, (bool, Mapping, list)):
        return ""
    return str(value).strip()


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return round(seconds) if seconds >= 0 else None
