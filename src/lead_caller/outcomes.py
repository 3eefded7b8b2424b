"""Call outcomes: how each requested call ended, recorded in its lead (docs/outcomes.md).

Two ways in, one way to write:

* `AgentWebhook`: Unpod's agent webhook POSTs the finished task to `POST /unpod/calls`
  (a header token from the webhooks secret, compared in constant time);
* `Poller`: a scheduled function lists the tasks of the runs of open leads
  (`call_requested`, `in_progress`, found through the by_status index, never a scan),
  backs off per lead, gives up after a horizon with `outcome_unknown`, and sends due
  re-calls (issue 8) to the leads queue.

Both hand a `TaskReport` to `OutcomeRecorder`, which maps Unpod's task status and
`call_status` to the lifecycle (docs/lifecycle.md), keeps the raw values, puts the
transcript in S3 and writes the lead with `LeadStore.record_outcome`: forward only,
per call attempt, so duplicated, late and out-of-order reports are harmless.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit

from lead_caller.config import ConfigError, Settings
from lead_caller.contacts import ContactDocument
from lead_caller.leads import LeadMessage
from lead_caller.observability import logger, metrics
from lead_caller.queue import LeadQueue, QueueError
from lead_caller.secrets import SecretError
from lead_caller.sources.base import PayloadError, Reply, load_json
from lead_caller.store import (
    BUSY,
    CALL_FAILED,
    CALL_REQUESTED,
    COMPLETED,
    FINAL_OUTCOMES,
    IN_PROGRESS,
    NO_ANSWER,
    OUTCOME_UNKNOWN,
    RECALL_PENDING,
    RECALLABLE_OUTCOMES,
    STATUS_RANKS,
    VOICEMAIL,
    LeadStore,
    iso,
)
from lead_caller.unpod import UnpodClient, UnpodCredentials, UnpodLookupError

OutcomeSource = Literal["agent_webhook", "poller"]
#: longest summary / outcome / sentiment text kept in the item (the transcript goes to S3)
MAX_TEXT = 4_000
#: longest task_id / run_id and document_id taken, in UTF-8 bytes
#: (Unpod's ids are "T"/"R" + 32 hex; our document_id is "<source>-<record id>")
MAX_ID = 128
MAX_DOCUMENT_ID = 1_000
#: a re-call message is sent again after this long if no dispatcher claimed it (lost message)
RECALL_RESEND_SECONDS = 900

_PENDING_TASK = frozenset({"", "pending", "scheduled", "hold", "queued", "created"})
_RUNNING_TASK = frozenset({"in_progress", "processing", "running", "ongoing", "ringing", "started"})
_DONE_TASK = frozenset({"completed", "partially_completed", "done", "finished", "success"})
_FAILED_TASK = frozenset({"failed", "error", "cancelled", "canceled"})
# Unpod's call_status values (raw, normalised to lower_snake) and what they mean for the lead.
_CALL_STATUS: dict[str, str] = {
    **dict.fromkeys(("completed", "answered", "success", "successful", "connected", "finished"), COMPLETED),
    **dict.fromkeys(
        ("no_answer", "noanswer", "not_answered", "unanswered", "missed", "no_response", "not_picked", "not_reachable"),
        NO_ANSWER,
    ),
    **dict.fromkeys(("busy", "line_busy", "user_busy"), BUSY),
    **dict.fromkeys(("voicemail", "voice_mail", "machine", "answering_machine", "machine_detected"), VOICEMAIL),
    **dict.fromkeys(
        ("failed", "error", "cancelled", "canceled", "rejected", "declined", "invalid_number", "unreachable"),
        CALL_FAILED,
    ),
}


def _norm(value: Any) -> str:
    return str(value or "").strip().lower().replace("-", "_").replace(" ", "_")


def lifecycle_status(task_status: str, call_status: str) -> str | None:
    """The lifecycle status an Unpod task means, or None when it tells nothing new (still pending).

    A finished task's `call_status` decides (answered, no answer, busy, voicemail, failed); a
    completed task without a known call_status counts as completed, a failed one as call_failed.
    """
    task, call = _norm(task_status), _norm(call_status)
    mapped = _CALL_STATUS.get(call)
    if task in _DONE_TASK:
        return mapped or COMPLETED
    if task in _FAILED_TASK:
        return mapped if mapped and mapped != COMPLETED else CALL_FAILED
    if task in _RUNNING_TASK:
        return IN_PROGRESS
    if task in _PENDING_TASK:
        return None
    return mapped or IN_PROGRESS  # an unknown task status: trust call_status if any


@dataclass(frozen=True)
class TaskReport:
    """One Unpod task as the agent webhook or the runs/tasks endpoint shows it."""

    task_id: str
    run_id: str
    document_id: str
    task_status: str
    output: Mapping[str, Any] = field(default_factory=dict)

    @property
    def call_status(self) -> str:
        """Unpod's raw call_status ('' when absent)."""
        return str(self.output.get("call_status") or "")

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> TaskReport | None:
        """Read a task object; None when it has no task_id."""
        task_id = str(task.get("task_id") or "").strip()
        if not task_id:
            return None
        task_input: dict[str, Any] = task["input"] if isinstance(task.get("input"), dict) else {}
        output: dict[str, Any] = task["output"] if isinstance(task.get("output"), dict) else {}
        document_id = task.get("ref_id") or (task_input or {}).get("document_id") or ""
        return cls(
            task_id=task_id,
            run_id=str(task.get("run_id") or "").strip(),
            document_id=str(document_id).strip(),
            task_status=str(task.get("status") or ""),
            output={**({"call_end_reason": task["call_end_reason"]} if task.get("call_end_reason") else {}), **output},
        )

    @classmethod
    def from_payload(cls, payload: Any) -> TaskReport | None:
        """The task of an agent webhook body: the task itself, or wrapped in "data" / "task"."""
        if not isinstance(payload, dict):
            return None
        for candidate in (payload, payload.get("data"), payload.get("task")):
            if isinstance(candidate, dict) and candidate.get("task_id"):
                return cls.from_task(candidate)
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text[:MAX_TEXT]


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number


class TranscriptStore:
    """Transcripts in S3 (they can exceed DynamoDB's 400 KB item limit and are personal data)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, lead_id: str, attempt: int, task_id: str, transcript: Any) -> str:
        """Store one transcript as JSON; returns its key (the same report twice overwrites the same key)."""
        source, _, record_id = lead_id.partition("#")
        key = f"transcripts/{source}/{record_id}/attempt-{attempt}/{task_id}.json"
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(transcript, ensure_ascii=False).encode(),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )
        return key


@dataclass(frozen=True)
class Recorded:
    """What became of one report: recorded (the lead moved), unchanged (duplicate / older / not
    newer), pending (nothing new to say), unknown_task (no lead has this task)."""

    kind: Literal["recorded", "unchanged", "pending", "unknown_task"]
    status: str | None = None
    lead_id: str | None = None


class OutcomeRecorder:
    """Writes a task report into its lead, forward only."""

    def __init__(
        self,
        settings: Settings,
        store: LeadStore,
        transcripts: TranscriptStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.transcripts = transcripts
        self.clock = clock

    def record(self, report: TaskReport, source: OutcomeSource, lead: Mapping[str, Any] | None = None) -> Recorded:
        """Correlate (unless `lead` is given) and record one report."""
        current = True
        if lead is None:
            found = self.store.find_task_lead(report.run_id, report.task_id, report.document_id)
            if found is None:
                metrics.add_metric(name="UnknownTaskReports", unit=MetricUnit.Count, value=1)
                logger.info("task report for no lead: ignored", extra={"outcome_source": source})
                return Recorded("unknown_task")
            lead, current = found
        lead_id = str(lead["pk"])
        status = lifecycle_status(report.task_status, report.call_status)
        if status is None:
            return Recorded("pending", None, lead_id)
        attempt = int(lead.get("call_attempt") or 1)
        if not current:
            attempt = 0  # a report of an earlier attempt: record_outcome's condition refuses it
        if current and int(lead.get("status_rank") or 0) >= STATUS_RANKS[status]:
            return self._unchanged(lead_id, status, source)  # saves a write (and a transcript upload)
        now = self.clock()
        values: dict[str, Any] = {
            "task_status": report.task_status or None,
            "call_status": report.call_status or None,
            "task_id": report.task_id,
            "outcome_source": source,
            "outcome_at": iso(now),
        }
        remove: tuple[str, ...] = ()
        log_entry: dict[str, Any] | None = None
        new_status = status
        if status in FINAL_OUTCOMES:
            values.update(self._outcome_values(report, lead_id, attempt))
            remove = ("next_poll_at", "poll_count")
            if status in RECALLABLE_OUTCOMES and 0 < attempt < self.settings.max_call_attempts:
                new_status = RECALL_PENDING
                values["attempt_status"] = status
                values["recall_at"] = int(now + self._recall_delay(attempt))
            log_entry = {
                "attempt": attempt,
                "run_id": report.run_id or lead.get("run_id"),
                "task_id": report.task_id,
                "outcome": status,
                "call_status": report.call_status or None,
                "at": iso(now),
                "source": source,
            }
        moved = self.store.record_outcome(lead_id, attempt, new_status, values, log_entry, remove)
        if not moved:
            return self._unchanged(lead_id, status, source)
        metrics.add_metric(name=f"Outcome_{new_status}", unit=MetricUnit.Count, value=1)
        logger.info(
            "call outcome recorded",
            extra={
                "lead_id": lead_id,
                "status": new_status,
                "attempt": attempt,
                "task_id": report.task_id,
                "outcome_source": source,
            },
        )
        return Recorded("recorded", new_status, lead_id)

    def _unchanged(self, lead_id: str, status: str, source: OutcomeSource) -> Recorded:
        metrics.add_metric(name="StaleOrDuplicateReports", unit=MetricUnit.Count, value=1)
        logger.info(
            "report not newer than the lead: unchanged",
            extra={"lead_id": lead_id, "reported": status, "outcome_source": source},
        )
        return Recorded("unchanged", status, lead_id)

    def _recall_delay(self, attempt: int) -> int:
        delays = self.settings.recall_delays_seconds or (14_400,)
        return delays[min(attempt - 1, len(delays) - 1)]

    def _outcome_values(self, report: TaskReport, lead_id: str, attempt: int) -> dict[str, Any]:
        output = report.output
        post = output.get("post_call_data") if isinstance(output.get("post_call_data"), dict) else {}
        post = post or {}
        values: dict[str, Any] = {
            "duration": _number(output.get("duration") or output.get("call_duration")),
            "started_at": _text(output.get("start_time")),
            "ended_at": _text(output.get("end_time")),
            "call_end_reason": _text(output.get("call_end_reason") or output.get("end_reason")),
            "summary": _text(post.get("summary") or output.get("summary")),
            "outcome": _text(post.get("outcome") or output.get("outcome")),
            "sentiment": _text(post.get("sentiment") or output.get("sentiment")),
            "recording_url": _text(output.get("recording_url")),
        }
        transcript = output.get("transcript")
        if transcript and self.transcripts is not None:
            # Before the outcome write: if S3 fails the report is not taken, so it comes again.
            values["transcript_key"] = self.transcripts.put(lead_id, attempt, report.task_id, transcript)
        return values


class AgentWebhook:
    """`POST /unpod/calls`: Unpod's agent webhook (URL and custom header set in the Unpod dashboard)."""

    def __init__(
        self,
        settings: Settings,
        recorder: OutcomeRecorder,
        credentials: Callable[[], Mapping[str, Any]],
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.credentials = credentials  # the webhooks secret's "unpod" object

    def handle(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Authenticate, parse, record; 200 once the outcome is durably written (or known to be old)."""
        try:
            expected = str(self.credentials().get("agent_webhook_token") or "")
        except (SecretError, ConfigError) as error:
            logger.error("webhook credentials unavailable", extra={"error": str(error)})
            return Reply.json(503, {"error": "unavailable", "message": "credentials unavailable, retry later"})
        given = {k.lower(): v for k, v in headers.items()}.get(self.settings.agent_webhook_header, "")
        if not expected or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            metrics.add_metric(name="AgentWebhookUnauthorized", unit=MetricUnit.Count, value=1)
            return Reply.json(401, {"error": "unauthorized", "message": "missing or wrong agent webhook token"})
        try:
            payload = load_json(body, "an Unpod task object")
        except PayloadError as error:
            return Reply.json(error.status, {"error": "bad_request", "message": str(error)})
        report = TaskReport.from_payload(payload)
        if report is None:
            return Reply.json(400, {"error": "bad_request", "message": "the body has no task_id"})
        ids = (report.task_id.encode(), report.run_id.encode())
        if max(map(len, ids)) > MAX_ID or len(report.document_id.encode()) > MAX_DOCUMENT_ID:
            # DynamoDB refuses keys this long: bad input, not a reason for a 5xx
            return Reply.json(400, {"error": "bad_request", "message": "task_id, run_id or document_id is too long"})
        result = self.recorder.record(report, "agent_webhook")
        answer: dict[str, Any] = {"result": result.kind, "task_id": report.task_id}
        if result.status:
            answer["status"] = result.status
        return Reply.json(200, answer)


@dataclass
class PollSummary:
    """Counts of one poller run."""

    open_leads: int = 0
    polled: int = 0
    recorded: int = 0
    gave_up: int = 0
    lookup_failures: int = 0
    recalls_sent: int = 0
    recalls_ended: int = 0

    def to_json(self) -> dict[str, int]:
        """A plain dict for the handler's result."""
        return dict(self.__dict__)


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Poller:
    """Reconciles open leads with Unpod's runs/tasks and sends due re-calls."""

    def __init__(
        self,
        settings: Settings,
        store: LeadStore,
        recorder: OutcomeRecorder,
        client: UnpodClient,
        credentials: Callable[[], UnpodCredentials],
        queue: LeadQueue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.recorder = recorder
        self.client = client
        self.credentials = credentials
        self.queue = queue
        self.clock = clock

    def _message_routing(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """A stored routing (space token as `space_ref`) back into a queue message's routing."""
        routing = {key: value for key, value in stored.items() if key != "space_ref"}
        token = self.settings.space_for(stored, "") if stored.get("space_ref") else ""
        if token:
            routing["space_token"] = token
        return routing

    def run(self, time_left: Callable[[], float] | None = None) -> PollSummary:
        """One scheduled run: reconcile the open leads that are due, then send due re-calls.

        `time_left` (seconds) stops the run early, leaving the rest for the next one.
        """
        summary = PollSummary()
        now = self.clock()

        def enough_time() -> bool:
            return time_left is None or time_left() > 5

        open_leads = [lead for status in (CALL_REQUESTED, IN_PROGRESS) for lead in self.store.all_with_status(status)]
        summary.open_leads = len(open_leads)
        due = [lead for lead in open_leads if self._due(lead, now)]
        if due:
            try:
                credentials = self.credentials()
            except (SecretError, ConfigError) as error:
                logger.error("Unpod credentials unavailable", extra={"error": str(error)})
                credentials = None
            if credentials is not None:
                runs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
                for lead in due:
                    space = self.settings.space_for(lead.get("routing") or {}, credentials.space_token)
                    runs.setdefault((space, str(lead.get("run_id") or "")), []).append(lead)
                for (space, run_id), leads in runs.items():
                    if not enough_time():
                        break
                    self._reconcile_run(credentials, space, run_id, leads, summary)
        if enough_time():
            self._send_recalls(summary)
        logger.info("poller run", extra=summary.to_json())
        for name, value in (("OutcomesByPoller", summary.recorded), ("OutcomesUnknown", summary.gave_up)):
            if value:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return summary

    def _due(self, lead: Mapping[str, Any], now: float) -> bool:
        next_poll = _epoch(lead.get("next_poll_at"))
        if next_poll is not None:
            return next_poll <= now
        started = self._started(lead)
        return started is None or started + self.settings.outcome_poll_backoff_seconds <= now

    def _started(self, lead: Mapping[str, Any]) -> float | None:
        """When the call could start: requested, or the planned time if the call was scheduled later."""
        times = [_epoch(lead.get(key)) for key in ("requested_at", "planned_at", "claimed_at", "updated_at")]
        known = [value for value in times[:2] if value is not None] or [v for v in times[2:] if v is not None]
        return max(known) if known else None

    def _reconcile_run(
        self,
        credentials: UnpodCredentials,
        space: str,
        run_id: str,
        leads: Sequence[Mapping[str, Any]],
        summary: PollSummary,
    ) -> None:
        tasks: Sequence[Mapping[str, Any]] = ()
        if run_id:
            try:
                tasks = self.client.list_run_tasks(credentials, run_id, space)
            except UnpodLookupError as error:
                summary.lookup_failures += 1
                logger.warning("run tasks unavailable", extra={"run_id": run_id, "error": str(error)})
        reports = [report for report in (TaskReport.from_task(task) for task in tasks) if report is not None]
        for lead in leads:
            summary.polled += 1
            report = _report_for(lead, reports)
            if report is not None:
                result = self.recorder.record(report, "poller", lead=lead)
                if result.kind == "recorded":
                    summary.recorded += 1
                    if result.status != IN_PROGRESS:
                        continue
                    lead = {**lead, "status": IN_PROGRESS}
            self._back_off_or_give_up(lead, summary)

    def _back_off_or_give_up(self, lead: Mapping[str, Any], summary: PollSummary) -> None:
        now = self.clock()
        lead_id = str(lead["pk"])
        attempt = int(lead.get("call_attempt") or 1)
        started = self._started(lead)
        if started is not None and now - started > self.settings.outcome_horizon_seconds:
            values = {"outcome_source": "poller", "outcome_at": iso(now)}
            entry = {"attempt": attempt, "run_id": lead.get("run_id"), "outcome": OUTCOME_UNKNOWN, "at": iso(now)}
            if self.store.record_outcome(lead_id, attempt, OUTCOME_UNKNOWN, values, entry, ("next_poll_at",)):
                summary.gave_up += 1
                logger.info("no outcome within the horizon: outcome_unknown", extra={"lead_id": lead_id})
            return
        count = int(lead.get("poll_count") or 0)
        wait = min(self.settings.outcome_poll_backoff_seconds * 2**count, self.settings.outcome_poll_max_seconds)
        self.store.schedule_poll(lead_id, attempt, str(lead.get("status")), int(now + wait), count + 1)

    def _send_recalls(self, summary: PollSummary) -> None:
        now = self.clock()
        due = [
            lead for lead in self.store.all_with_status(RECALL_PENDING) if (_epoch(lead.get("recall_at")) or 0) <= now
        ]
        messages: list[tuple[Mapping[str, Any], LeadMessage]] = []
        for lead in due:
            attempt = int(lead.get("call_attempt") or 1)
            document = lead.get("document")
            if attempt >= self.settings.max_call_attempts or not isinstance(document, dict) or not document:
                # No attempt left (the limit was lowered) or nothing to call: the last outcome is final.
                final = str(lead.get("attempt_status") or NO_ANSWER)
                values = {"outcome_source": "poller", "outcome_at": iso(now)}
                if self.store.record_outcome(str(lead["pk"]), attempt, final, values, None, ("recall_at",)):
                    summary.recalls_ended += 1
                continue
            message = LeadMessage(
                source=str(lead.get("source")),
                record_id=str(lead.get("record_id")),
                received_at=_epoch(lead.get("received_at")) or now,
                document=ContactDocument.from_unpod(document),
                routing=self._message_routing(lead.get("routing") or {}),
                attempt=attempt + 1,
            )
            messages.append((lead, message))
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                self.queue.send([message for _, message in chunk])
            except QueueError as error:
                logger.warning("re-calls not queued, next run retries", extra={"error": str(error)})
                continue
            for sent, message in chunk:
                self.store.mark_recall_sent(str(sent["pk"]), message.attempt - 1, int(now + RECALL_RESEND_SECONDS))
                summary.recalls_sent += 1
                logger.info("re-call queued", extra={"lead_id": message.lead_id, "attempt": message.attempt})


def _report_for(lead: Mapping[str, Any], reports: Iterable[TaskReport]) -> TaskReport | None:
    """The lead's task in its run: by document_id (ref_id), else by its only task id."""
    document = lead.get("document") if isinstance(lead.get("document"), dict) else {}
    document_ids = {str((document or {}).get("document_id") or ""), f"{lead.get('source')}-{lead.get('record_id')}"}
    task_ids = [str(task) for task in lead.get("task_ids") or []]
    by_task = None
    for report in reports:
        if report.document_id and report.document_id in document_ids:
            return report
        if not report.document_id and len(task_ids) == 1 and report.task_id == task_ids[0]:
            by_task = report
    return by_task
