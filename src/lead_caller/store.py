"""The leads table: one DynamoDB item per CRM record, and the conditional writes that
make "called at most once" hold.

Item (see README "DynamoDB item schema"):
  pk              "<source>#<record_id>"                       (table key)
  status          rejected | dispatching | call_requested | failed   (GSI by_status + updated_at)
  run_id          Unpod run id once the call was requested      (GSI by_run_id)
  source, record_id, document, task_ids, attempts, reason, unpod_status, unpod_message,
  error_kind, call_state (sending | not_sent), claim_id, received_at, claimed_at,
  updated_at, dedupe_until (epoch s), expires_at (epoch s, TTL), previous_run_ids

Why conditional writes and not the Powertools idempotency utility: the
dispatcher must tell three cases apart in one round trip: a new lead, a
duplicate of a lead already called within the window (skip), and a redelivery
of its *own* SQS message after a crash or a timeout (finish the job, asking
Unpod first whether the call was already created). That needs the lead's status
and the claiming message id in the condition, which the idempotency utility's
opaque records cannot express.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from lead_caller.config import stored_routing
from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REJECTED = "rejected"
DISPATCHING = "dispatching"
CALL_REQUESTED = "call_requested"
FAILED = "failed"
SUPPRESSED = "suppressed"
#: statuses after which a new delivery of the same record may be tried again
#: (outcome_unknown: the claim takes it only when no call was requested, and reconciles first)
RETRYABLE_STATUSES = (REJECTED, FAILED, SUPPRESSED, "outcome_unknown")
# Call outcomes (docs/lifecycle.md): statuses after call_requested and their ranks.
IN_PROGRESS = "in_progress"
OUTCOME_UNKNOWN = "outcome_unknown"
RECALL_PENDING = "recall_pending"
COMPLETED = "completed"
NO_ANSWER = "no_answer"
BUSY = "busy"
VOICEMAIL = "voicemail"
CALL_FAILED = "call_failed"
#: final call outcomes of an attempt (rank 40)
FINAL_OUTCOMES = (COMPLETED, NO_ANSWER, BUSY, VOICEMAIL, CALL_FAILED)
#: outcomes after which another attempt may follow (issue 8, re-call attempts)
RECALLABLE_OUTCOMES = (NO_ANSWER, BUSY, VOICEMAIL)
STATUS_RANKS: dict[str, int] = {
    DISPATCHING: 10,
    CALL_REQUESTED: 20,
    IN_PROGRESS: 30,
    OUTCOME_UNKNOWN: 35,
    RECALL_PENDING: 38,
    **dict.fromkeys(FINAL_OUTCOMES, 40),
}
#: outcome fields of one attempt, cleared when a new attempt (or a new call) claims the lead
OUTCOME_FIELDS = (
    "call_status",
    "task_status",
    "duration",
    "started_at",
    "ended_at",
    "call_end_reason",
    "summary",
    "outcome",
    "sentiment",
    "recording_url",
    "transcript_key",
    "outcome_source",
    "outcome_at",
    "attempt_status",
    "recall_at",
    "next_poll_at",
    "poll_count",
)
#: expression names of OUTCOME_FIELDS (some, e.g. duration, are DynamoDB reserved words)
_OUTCOME_NAMES = {f"#o{index}": name for index, name in enumerate(OUTCOME_FIELDS)}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def iso(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds (sortable)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dynamo_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values as DynamoDB attribute values."""
    return {key: _serializer.serialize(value) for key, value in values.items()}


def dynamo_item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """A DynamoDB item (attribute values) as plain values ({} for None)."""
    return {key: _deserializer.deserialize(value) for key, value in (raw or {}).items()}


#: TransactWriteItems takes at most 100 actions
TRANSACTION_LIMIT = 100


@dataclass(frozen=True)
class CallRequested:
    """One lead Unpod accepted, for `LeadStore.mark_many_call_requested`."""

    lead_id: str
    claim_id: str
    run_id: str
    task_ids: Sequence[str]
    previous_run_id: str | None = None
    document: Mapping[str, Any] | None = None
    crm_object: Mapping[str, str] | None = None
    plan: Mapping[str, Any] | None = None


def _call_requested_values(
    run_id: str,
    task_ids: Sequence[str],
    previous_run_id: str | None,
    reconciled: bool,
    document: Mapping[str, Any] | None,
    crm_object: Mapping[str, str] | None,
    now: float,
    plan: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    # the calling policy's fields (timezone, planned_at, plan_reason...) go in the same write
    values: dict[str, Any] = {**dict(plan or {}), "run_id": run_id, "task_ids": list(task_ids), "call_state": "sent"}
    values["status_rank"] = STATUS_RANKS[CALL_REQUESTED]
    values["call_attempt"] = 1  # only if missing (`_finish_request`): the claim set the attempt
    values["requested_at"] = iso(now)
    if document:
        values["document"] = dict(document)
    if crm_object:
        values["crm_object"] = dict(crm_object)
    if reconciled:
        values["reconciled"] = True
    if previous_run_id and previous_run_id != run_id:
        values["previous_run_ids"] = [previous_run_id]
    return values


@dataclass(frozen=True)
class Claim:
    """Result of trying to claim a lead for calling.

    kind: "claimed" (go ahead), "redelivered" (our own message again: reconcile
    first when `needs_reconcile`), "duplicate" (someone else has it or it was
    already called within the window: do nothing).
    """

    kind: Literal["claimed", "redelivered", "duplicate"]
    previous: Mapping[str, Any]

    @property
    def needs_reconcile(self) -> bool:
        """True when an earlier attempt may have reached Unpod without us seeing the answer.

        Whatever brought the lead back (our own redelivery, a dead-letter redrive, a
        sender's new delivery of an `outcome_unknown` or `failed` lead), a last attempt
        left in call_state "sending" is reconciled before anything is sent again.
        """
        return self.kind != "duplicate" and (
            self.previous.get("call_state") == "sending" or self.previous.get("status") == OUTCOME_UNKNOWN
        )


class LeadStore:
    """Reads and writes lead items."""

    def __init__(
        self,
        client: DynamoDBClient | Any,
        table_name: str,
        dedupe_window_seconds: int = 86_400,
        retention_days: int = 365,
        clock: Any = time.time,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.dedupe_window_seconds = dedupe_window_seconds
        self.retention_seconds = retention_days * 86_400
        self.clock = clock

    def _expires_at(self, now: float) -> int:
        return int(now + max(self.retention_seconds, self.dedupe_window_seconds))

    def get(self, lead_id: str) -> dict[str, Any] | None:
        """The item of a lead, or None."""
        response = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True)
        return dynamo_item(response.get("Item")) or None

    def recently_called(self, lead_ids: Iterable[str]) -> dict[str, str]:
        """lead_id -> status for leads that are being or were called within the dedupe window.

        Used by the webhook to answer "duplicate" without queueing again; the
        dispatcher's claim is what actually guarantees a single call.
        """
        keys = list(dict.fromkeys(lead_ids))
        found: dict[str, str] = {}
        now = self.clock()
        for start in range(0, len(keys), 100):
            request: Any = {
                self.table_name: {
                    "Keys": [{"pk": {"S": key}} for key in keys[start : start + 100]],
                    "ProjectionExpression": "pk, #s, dedupe_until",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            for _ in range(5):  # BatchGetItem may leave keys unprocessed under throttling
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = dynamo_item(raw)
                    recent = float(item.get("dedupe_until", 0)) >= now
                    if recent and item.get("status") not in RETRYABLE_STATUSES:
                        found[str(item["pk"])] = str(item["status"])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def read_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]] | None:
        """Items by key, read consistently in one BatchGetItem (at most 100 keys; absent keys are
        left out). None when DynamoDB left some keys unprocessed twice (the caller reads them alone)."""
        request: Any = {self.table_name: {"Keys": [{"pk": {"S": key}} for key in keys], "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        for _ in range(2):
            response = self.client.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = dynamo_item(raw)
                found[str(item["pk"])] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
        return None

    def record_rejected(
        self,
        lead_id: str,
        source: str,
        record_id: str,
        reason: str,
        received_at: float,
        document: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a lead that will not be called. False when the record was already called."""
        now = self.clock()
        values = {
            "pk": lead_id,
            "source": source,
            "record_id": record_id,
            "status": REJECTED,
            "reason": reason,
            "document": dict(document or {}),
            "received_at": iso(received_at),
            "updated_at": iso(now),
            "dedupe_until": int(max(received_at, now) + self.dedupe_window_seconds),
            "expires_at": self._expires_at(now),
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=dynamo_values(values),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #s IN (:rejected, :failed, :suppressed) OR dedupe_until < :now"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=dynamo_values(
                    {":rejected": REJECTED, ":failed": FAILED, ":suppressed": SUPPRESSED, ":now": int(now)}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim(self, message: LeadMessage, claim_id: str, receive_count: int = 0) -> Claim:
        """Take a lead for calling (status dispatching, call_state sending) if nobody else has.

        Our own message comes back only with a higher `receive_count` (SQS's
        ApproximateReceiveCount): two concurrent copies of one receive cannot both claim it.
        """
        try:
            response = self.client.update_item(
                **self._claim_request(message, claim_id, self.clock(), receive_count),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return Claim("duplicate", dynamo_item(error.response.get("Item")))  # type: ignore[arg-type]
            raise
        previous = dynamo_item(response.get("Attributes"))
        own = previous.get("claim_id") == claim_id and previous.get("status") == DISPATCHING
        return Claim("redelivered" if own else "claimed", previous)

    def _claim_request(self, message: LeadMessage, claim_id: str, now: float, receive_count: int = 0) -> dict[str, Any]:
        """The claim's UpdateItem parameters."""
        # A re-call (attempt k+1, sent by the poller) may only take a lead waiting in
        # recall_pending after attempt k; a first call never takes a lead waiting for a re-call.
        if message.attempt > 1:
            condition = "(#s = :recall_pending AND call_attempt = :previous_attempt)"
            guard: dict[str, Any] = {":recall_pending": RECALL_PENDING, ":previous_attempt": message.attempt - 1}
        else:
            # outcome_unknown with no run: a Create Task whose answer never came (reconciled before
            # any new call); with a run, the call was requested and only its outcome is unknown.
            condition = (
                "attribute_not_exists(pk) OR #s IN (:rejected, :failed, :suppressed) "
                "OR (dedupe_until < :now AND #s <> :recall_pending) "
                "OR (#s = :unknown AND attribute_not_exists(run_id))"
            )
            guard = {
                ":rejected": REJECTED,
                ":failed": FAILED,
                ":suppressed": SUPPRESSED,
                ":unknown": OUTCOME_UNKNOWN,
                ":now": int(now),
                ":recall_pending": RECALL_PENDING,
            }
        condition += (
            " OR (claim_id = :claim AND #s = :dispatching"
            " AND (attribute_not_exists(claim_receive) OR claim_receive < :receive_below))"
        )
        names = {"#s": "status", **_OUTCOME_NAMES}
        values: dict[str, Any] = {
            **guard,
            ":dispatching": DISPATCHING,
            ":receive_below": receive_count or 2**62,  # 0 = not known: no check
            ":claim": claim_id,
            ":zero": 0,
            ":one": 1,
        }
        sets = ["attempts = if_not_exists(attempts, :zero) + :one"]
        for index, (name, value) in enumerate(self._claim_fields(message, claim_id, now, receive_count).items()):
            names[f"#c{index}"] = name  # aliased: status and source are reserved words
            values[f":c{index}"] = value
            sets.append(f"#c{index} = :c{index}")
        removed = "reason, unpod_status, unpod_message, error_kind, run_id, task_ids, " + ", ".join(_OUTCOME_NAMES)
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": message.lead_id}},
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE " + removed,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo_values(values),
        }

    def _new_claim_request(self, message: LeadMessage, claim_id: str, now: float, receive_count: int) -> dict[str, Any]:
        """The Put of a lead never seen before: the item the claim's update makes of no item."""
        item = {"pk": message.lead_id, **self._claim_fields(message, claim_id, now, receive_count), "attempts": 1}
        return {
            "TableName": self.table_name,
            "Item": dynamo_values(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }

    def _claim_fields(self, message: LeadMessage, claim_id: str, now: float, receive_count: int) -> dict[str, Any]:
        """Attribute -> value that a claim sets (besides `attempts`, counted up)."""
        return {
            "status": DISPATCHING,
            "status_rank": STATUS_RANKS[DISPATCHING],
            "claim_id": claim_id,
            "claimed_at": iso(now),
            "updated_at": iso(now),
            "source": message.source,
            "record_id": message.record_id,
            "document": message.document.to_unpod() if message.document else {},
            "received_at": iso(message.received_at),
            # the window runs from when the lead reached us, or from this claim if later
            # (a replayed old event must not open a window that is already over)
            "dedupe_until": int(max(message.received_at, now) + self.dedupe_window_seconds),
            "expires_at": self._expires_at(now),
            "call_state": "sending",
            "routing": _dynamo_safe(stored_routing(message.routing)),
            "call_attempt": message.attempt,
            "claim_receive": receive_count,
        }

    def claim_many(self, requests: Sequence[tuple[LeadMessage, str, int]]) -> list[Claim | Exception]:
        """Claim many leads in as few requests as the guarantees allow; one Claim (or error) per request.

        The common case, leads never seen before, is claimed with one TransactWriteItems per 100
        leads, conditioned on `attribute_not_exists(pk)`: their `previous` is empty, exactly what a
        single claim would return. When the transaction is cancelled (a lead exists: a duplicate,
        a redelivery, a retry of a failed lead; or a concurrent writer), nothing of it was written
        and every lead it held is claimed with the single conditional `claim`, which tells those
        cases apart. A lead appearing twice in the batch is claimed once by the transaction and
        then, as a duplicate, by `claim`. So the outcome is the one sequential claims would give;
        only the number of round trips differs. Errors are returned in place, not raised.
        """
        results: list[Claim | Exception | None] = [None] * len(requests)
        now = self.clock()
        seen: set[str] = set()
        first: list[int] = []
        for position, (message, _, _) in enumerate(requests):
            if message.attempt == 1 and message.lead_id not in seen:  # a re-call is never new
                seen.add(message.lead_id)
                first.append(position)
        written, _ = self._put_together(
            first, lambda i: self._new_claim_request(requests[i][0], requests[i][1], now, requests[i][2])
        )
        for position in written:
            results[position] = Claim("claimed", {})
        for position, (message, claim_id, receive_count) in enumerate(requests):
            if results[position] is None:
                try:
                    results[position] = self.claim(message, claim_id, receive_count)
                except (ClientError, BotoCoreError) as error:
                    results[position] = error
        return [result for result in results if result is not None]

    def _finish(self, lead_id: str, claim_id: str, status: str, values: Mapping[str, Any], remove: str = "") -> bool:
        """Update a lead we hold the claim of. False when the claim was lost (someone else took over)."""
        try:
            self.client.update_item(**self._finish_request(lead_id, claim_id, status, values, remove))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _finish_request(
        self, lead_id: str, claim_id: str, status: str, values: Mapping[str, Any], remove: str = ""
    ) -> dict[str, Any]:
        """The UpdateItem parameters of `_finish`: conditional on still holding the claim."""
        now = self.clock()
        names = {"#s": "status"}
        sets = ["#s = :status", "updated_at = :now_iso"]
        expression_values: dict[str, Any] = {
            ":status": status,
            ":now_iso": iso(now),
            ":claim": claim_id,
            ":dispatching": DISPATCHING,
        }
        for index, (key, value) in enumerate(values.items()):
            name = f"#f{index}"  # every name aliased: some (timezone, duration) are DynamoDB reserved words
            names[name] = key
            if key == "previous_run_ids":
                sets.append(f"{name} = list_append(if_not_exists({name}, :empty), :v{index})")
                expression_values[":empty"] = []
            elif key == "call_attempt":  # set by the claim; 1 for leads claimed before attempts existed
                sets.append(f"{name} = if_not_exists({name}, :v{index})")
            else:
                sets.append(f"{name} = :v{index}")
            expression_values[f":v{index}"] = value
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": lead_id}},
            "UpdateExpression": "SET " + ", ".join(sets) + (f" REMOVE {remove}" if remove else ""),
            "ConditionExpression": "claim_id = :claim AND #s = :dispatching",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo_values(expression_values),
        }

    def mark_call_requested(
        self,
        lead_id: str,
        claim_id: str,
        run_id: str,
        task_ids: Sequence[str],
        previous_run_id: str | None = None,
        reconciled: bool = False,
        document: Mapping[str, Any] | None = None,
        crm_object: Mapping[str, str] | None = None,
    ) -> bool:
        """Unpod accepted the call: store run_id and task_ids (and the document, if enriched).

        `crm_object` names the CRM object a thin event was about (a Pipedrive lead/deal, a Zoho
        module's record), for the write-back to put its note there too.
        """
        values = _call_requested_values(
            run_id, task_ids, previous_run_id, reconciled, document, crm_object, self.clock()
        )
        return self._finish(lead_id, claim_id, CALL_REQUESTED, values)

    def mark_many_call_requested(self, calls: Sequence[CallRequested]) -> list[bool]:
        """`mark_call_requested` for many leads: one TransactWriteItems per 100 when every claim is held.

        Each write keeps its condition (we still hold the claim). If the transaction is cancelled
        (a claim was lost, or a concurrent writer), nothing of it was written and each lead is
        written on its own, which says which claims were lost. Errors other than a lost claim raise,
        as `mark_call_requested` does.
        """
        stored: list[bool] = []
        for start in range(0, len(calls), TRANSACTION_LIMIT):
            chunk = calls[start : start + TRANSACTION_LIMIT]
            requests = [
                self._finish_request(
                    call.lead_id,
                    call.claim_id,
                    CALL_REQUESTED,
                    _call_requested_values(
                        call.run_id,
                        call.task_ids,
                        call.previous_run_id,
                        False,
                        call.document,
                        call.crm_object,
                        self.clock(),
                        call.plan,
                    ),
                )
                for call in chunk
            ]
            if len(chunk) > 1 and len({call.lead_id for call in chunk}) == len(chunk):
                try:
                    transaction: Any = [{"Update": request} for request in requests]
                    self.client.transact_write_items(TransactItems=transaction)
                except (ClientError, BotoCoreError):
                    pass  # cancelled or refused: one by one below
                else:
                    stored.extend(True for _ in chunk)
                    continue
            for request in requests:
                try:
                    self.client.update_item(**request)
                except ClientError as error:
                    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                    stored.append(False)
                else:
                    stored.append(True)
        return stored

    def mark_unsent(self, lead_id: str, claim_id: str, error_kind: str, message: str) -> bool:
        """A transient failure where Unpod certainly did not create the task: safe to resend."""
        values = {"call_state": "not_sent", "error_kind": error_kind, "unpod_message": message}
        return self._finish(lead_id, claim_id, DISPATCHING, values)

    def mark_uncertain(self, lead_id: str, claim_id: str, error_kind: str, message: str) -> bool:
        """The request may have reached Unpod: keep call_state "sending" so a retry reconciles first."""
        values = {"call_state": "sending", "error_kind": error_kind, "unpod_message": message}
        return self._finish(lead_id, claim_id, DISPATCHING, values)

    def mark_retry(
        self,
        lead_id: str,
        claim_id: str,
        *,
        error_kind: str,
        message: str,
        uncertain: bool,
        lead_failures: int,
        first_try_at: float,
        next_try_at: float,
    ) -> bool:
        """Not done yet: record the attempt and when the next try is due (retry schedule).

        `uncertain` keeps call_state "sending" (the request may have reached Unpod: the
        next try reconciles first); otherwise "not_sent" (safe to resend).
        """
        values = {
            "call_state": "sending" if uncertain else "not_sent",
            "error_kind": error_kind,
            "unpod_message": message,
            "last_error": f"{error_kind}: {message}"[:500],
            "lead_failures": lead_failures,
            "first_try_at": iso(first_try_at),
            "next_try_at": iso(next_try_at),
        }
        return self._finish(lead_id, claim_id, DISPATCHING, values)

    def mark_outcome_unknown(self, lead_id: str, claim_id: str, reason: str, error_kind: str, message: str) -> bool:
        """Given up while the last attempt's answer is unknown: never `failed`, reconciled before any new call."""
        values = {
            "reason": reason,
            "error_kind": error_kind,
            "unpod_message": message,
            "last_error": f"{error_kind}: {message}"[:500],
            "call_state": "sending",
            "status_rank": 35,
        }
        return self._finish(lead_id, claim_id, OUTCOME_UNKNOWN, values)

    def mark_failed(
        self,
        lead_id: str,
        claim_id: str,
        reason: str,
        error_kind: str,
        http_status: int | None = None,
        message: str = "",
        rejected: bool = False,
        document: Mapping[str, Any] | None = None,
    ) -> bool:
        """The lead will not be called (Unpod refused, retries ran out, the CRM record is unusable)."""
        values: dict[str, Any] = {"reason": reason, "error_kind": error_kind, "unpod_message": message}
        values["call_state"] = "not_sent"  # Unpod answered (or was never asked): nothing to reconcile
        if document:
            values["document"] = dict(document)
        if http_status is not None:
            values["unpod_status"] = http_status
        return self._finish(lead_id, claim_id, REJECTED if rejected else FAILED, values)

    def mark_suppressed(self, lead_id: str, claim_id: str, reason: str, fields: Mapping[str, Any]) -> bool:
        """The lead is on the do-not-call list or opted out in its CRM: never called (policy.py)."""
        return self._set_claimed(
            lead_id,
            claim_id,
            SUPPRESSED,
            {**fields, "reason": reason, "error_kind": "suppressed", "call_state": "not_sent"},
        )

    def mark_policy_rejected(self, lead_id: str, claim_id: str, reason: str, fields: Mapping[str, Any]) -> bool:
        """The calling policy refused the lead (no consent, same number already called, no window)."""
        values = {**fields, "reason": reason, "error_kind": "policy", "call_state": "not_sent"}
        return self._set_claimed(lead_id, claim_id, REJECTED, values)

    def record_plan(self, lead_id: str, claim_id: str, fields: Mapping[str, Any]) -> bool:
        """Store the calling policy's fields (timezone, planned_at, plan_reason...) on a claimed lead."""
        return self._set_claimed(lead_id, claim_id, DISPATCHING, fields)

    def _set_claimed(self, lead_id: str, claim_id: str, status: str, fields: Mapping[str, Any]) -> bool:
        """Like _finish, with every field name aliased (`timezone` is a DynamoDB reserved word)."""
        names = {"#s": "status", **{f"#f{index}": key for index, key in enumerate(fields)}}
        values = {f":v{index}": value for index, value in enumerate(fields.values())}
        sets = ", ".join(f"#f{index} = :v{index}" for index in range(len(fields)))
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression=f"SET #s = :status, updated_at = :now_iso{', ' + sets if sets else ''}",
                ConditionExpression="claim_id = :claim AND #s = :dispatching",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=dynamo_values(
                    {
                        **values,
                        ":status": status,
                        ":now_iso": iso(self.clock()),
                        ":claim": claim_id,
                        ":dispatching": DISPATCHING,
                    }
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_phone(self, digest: str, lead_id: str, until: int) -> str | None:
        """Claim a phone number (by hash) for one lead until `until` (epoch s, also the TTL).

        None when this lead holds it now; else the lead id holding it within its window.
        """
        try:
            self.client.put_item(**self._phone_claim_request(digest, lead_id, until, int(self.clock())))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return _phone_holder(error.response.get("Item"))
            raise
        return None

    def claim_phones(self, requests: Sequence[tuple[str, str, int]]) -> list[str | None]:
        """`claim_phone` for many (digest, lead_id, until): one TransactWriteItems per 100 numbers.

        Each Put keeps the single claim's condition. A cancelled transaction wrote nothing; its
        cancellation reasons name the numbers already held (and by whom, from the old item) and
        the leads that only failed with the others, which are tried again together, once. Every
        number left undecided (a throttled or conflicting write, a number appearing twice in the
        batch, a reason without the old item) is claimed alone, in the batch's order, so the
        answers are the ones sequential `claim_phone` calls give. DynamoDB errors raise.
        """
        now = int(self.clock())
        first_of: dict[str, int] = {}
        distinct = [i for i, (digest, _, _) in enumerate(requests) if first_of.setdefault(digest, i) == i]
        written, refused = self._put_together(distinct, lambda i: self._phone_claim_request(*requests[i], now))
        results: list[str | None] = [None] * len(requests)
        decided = set(written)
        for position, old_item in refused.items():
            results[position] = _phone_holder(old_item)
            decided.add(position)
        for position, (digest, lead_id, until) in enumerate(requests):
            if position not in decided:
                results[position] = self.claim_phone(digest, lead_id, until)
        return results

    def _put_together(
        self, positions: Sequence[int], put_of: Callable[[int], dict[str, Any]]
    ) -> tuple[list[int], dict[int, Any]]:
        """Conditional Puts in TransactWriteItems of at most 100: (positions written, position ->
        old item of a Put whose condition failed, when DynamoDB returned it).

        A cancelled transaction wrote nothing; the Puts that only failed with the others (reason
        "None") go again together, once. Every position in neither answer is left to the caller's
        single write: a lone Put (a single write is one request too), a throttled or conflicting
        write, a transaction refused outright.
        """
        written: list[int] = []
        refused: dict[int, Any] = {}
        pending = [
            (list(positions[start : start + TRANSACTION_LIMIT]), False)
            for start in range(0, len(positions), TRANSACTION_LIMIT)
        ]
        while pending:
            chunk, retried = pending.pop()
            if len(chunk) < 2:
                continue
            items: Any = [{"Put": put_of(i)} for i in chunk]
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                if len(reasons) != len(chunk):
                    continue
                for position, reason in zip(chunk, reasons, strict=True):
                    if reason.get("Code") == "ConditionalCheckFailed" and reason.get("Item"):
                        refused[position] = reason["Item"]
                if not retried:
                    pending.append(([i for i, r in zip(chunk, reasons, strict=True) if r.get("Code") == "None"], True))
                continue
            except BotoCoreError:
                continue
            written.extend(chunk)
        return written, refused

    def _phone_claim_request(self, digest: str, lead_id: str, until: int, now: int) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "Item": dynamo_values({"pk": f"phone#{digest}", "lead_id": lead_id, "expires_at": until}),
            "ConditionExpression": "attribute_not_exists(pk) OR lead_id = :lead OR expires_at < :now",
            "ExpressionAttributeValues": dynamo_values({":lead": lead_id, ":now": now}),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def by_status(self, status: str, limit: int = 50) -> list[dict[str, Any]]:
        """Leads with a status, most recently updated first (GSI by_status)."""
        response = self.client.query(
            TableName=self.table_name,
            IndexName="by_status",
            KeyConditionExpression="#s = :status",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [dynamo_item(raw) for raw in response.get("Items", [])]

    def by_run_id(self, run_id: str) -> list[dict[str, Any]]:
        """Leads called in one Unpod run (GSI by_run_id)."""
        response = self.client.query(
            TableName=self.table_name,
            IndexName="by_run_id",
            KeyConditionExpression="run_id = :run",
            ExpressionAttributeValues={":run": {"S": run_id}},
        )
        return [dynamo_item(raw) for raw in response.get("Items", [])]

    # ---- call outcomes (docs/outcomes.md) ------------------------------------------------
    def record_outcome(
        self,
        lead_id: str,
        attempt: int,
        status: str,
        values: Mapping[str, Any],
        log_entry: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
    ) -> bool:
        """Move a lead forward to `status` for call attempt `attempt`; False when that would not be forward.

        The write succeeds only if `call_attempt = attempt AND status_rank < rank(status)`: the same
        report twice is one update, an older or out-of-order report never replaces a newer one.
        Leads requested before ranks existed (no call_attempt) count as attempt 1, call_requested.
        """
        now = self.clock()
        rank = STATUS_RANKS[status]
        names = {"#s": "status"}
        expression_values: dict[str, Any] = {
            ":status": status,
            ":rank": rank,
            ":k": attempt,
            ":now_iso": iso(now),
        }
        sets = ["#s = :status", "status_rank = :rank", "updated_at = :now_iso"]
        for index, (key, value) in enumerate(values.items()):
            if value is None:
                continue
            names[f"#f{index}"] = key
            sets.append(f"#f{index} = :v{index}")
            expression_values[f":v{index}"] = _dynamo_safe(value)
        if log_entry is not None:
            sets.append("attempts_log = list_append(if_not_exists(attempts_log, :empty), :log)")
            expression_values[":empty"] = []
            expression_values[":log"] = [_dynamo_safe({k: v for k, v in log_entry.items() if v is not None})]
        condition = "(call_attempt = :k AND status_rank < :rank)"
        if attempt == 1:
            condition += " OR (attribute_not_exists(call_attempt) AND #s = :legacy)"
            expression_values[":legacy"] = CALL_REQUESTED
        removed = []
        for index, key in enumerate(key for key in remove if key not in values):
            names[f"#r{index}"] = key
            removed.append(f"#r{index}")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression="SET " + ", ".join(sets) + (f" REMOVE {', '.join(removed)}" if removed else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=dynamo_values(expression_values),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def schedule_poll(self, lead_id: str, attempt: int, status: str, next_poll_at: int, poll_count: int) -> bool:
        """Remember when the poller should look at an open lead again (only if nothing moved it meanwhile)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression="SET next_poll_at = :next, poll_count = :count",
                ConditionExpression="#s = :status AND (call_attempt = :k OR attribute_not_exists(call_attempt))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=dynamo_values(
                    {":next": next_poll_at, ":count": poll_count, ":status": status, ":k": attempt}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_recall_sent(self, lead_id: str, attempt: int, resend_at: int) -> bool:
        """The re-call message for attempt+1 is on the queue: push recall_at to `resend_at` (a safety net).

        If the message is lost, the poller sends it again then; if it is delivered twice, the claim
        condition (recall_pending AND call_attempt = attempt) lets only one through.
        """
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lead_id}},
                UpdateExpression="SET recall_at = :resend, recall_sent_at = :now_iso",
                ConditionExpression="#s = :recall_pending AND call_attempt = :k",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=dynamo_values(
                    {
                        ":resend": resend_at,
                        ":now_iso": iso(self.clock()),
                        ":recall_pending": RECALL_PENDING,
                        ":k": attempt,
                    }
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def all_with_status(self, status: str, page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every lead with a status, oldest update first, page by page (GSI by_status, never a scan)."""
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": "by_status",
                "KeyConditionExpression": "#s = :status",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":status": {"S": status}},
                "Limit": page_size,
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = self.client.query(**request)
            for raw in response.get("Items", []):
                yield dynamo_item(raw)
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def find_task_lead(self, run_id: str, task_id: str, document_id: str) -> tuple[dict[str, Any], bool] | None:
        """The lead a reported Unpod task belongs to, and whether it is the lead's current attempt.

        Correlates by run_id (GSI by_run_id) then task_id / document_id (Unpod's ref_id), never by
        position in a batch; falls back to the document_id, which names the lead (`<source>-<record id>`),
        for a report of an earlier attempt or one that races the index. None when no lead matches.
        """
        if run_id:
            for item in self.by_run_id(run_id):
                if _owns_task(item, task_id, document_id):
                    return self.get(str(item["pk"])) or item, True
        source, _, record_id = document_id.partition("-")
        if not (source and record_id):
            return None
        found = self.get(f"{source}#{record_id}")
        if found is None or not _owns_document(found, document_id):
            return None
        task_ids = [str(task) for task in found.get("task_ids") or []]
        if (run_id and found.get("run_id") == run_id) or (not run_id and task_id in task_ids):
            return found, True
        if run_id and run_id in [str(run) for run in found.get("previous_run_ids") or []]:
            return found, False  # a report of an earlier attempt
        return None


def _owns_document(item: Mapping[str, Any], document_id: str) -> bool:
    document = item.get("document") or {}
    own = document.get("document_id") if isinstance(document, Mapping) else None
    return bool(document_id) and document_id in (own, f"{item.get('source')}-{item.get('record_id')}")


def _owns_task(item: Mapping[str, Any], task_id: str, document_id: str) -> bool:
    """Within one run: the document_id names the lead; without one, only a lead's sole task id does."""
    if document_id:
        return _owns_document(item, document_id)
    return bool(task_id) and [str(task) for task in item.get("task_ids") or []] == [task_id]


def _dynamo_safe(value: Any) -> Any:
    """Floats as Decimal (DynamoDB numbers), recursively; other values unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {str(k): _dynamo_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_dynamo_safe(v) for v in value]
    return value


def _phone_holder(raw: Any) -> str:
    """The lead holding a phone claim, from the old item of a failed condition."""
    return str(dynamo_item(raw or {}).get("lead_id") or "another lead")
