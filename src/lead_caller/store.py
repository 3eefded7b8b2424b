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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from lead_caller.leads import LeadMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REJECTED = "rejected"
DISPATCHING = "dispatching"
CALL_REQUESTED = "call_requested"
FAILED = "failed"
#: statuses after which a new delivery of the same record may be tried again
RETRYABLE_STATUSES = (REJECTED, FAILED)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def iso(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds (sortable)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def _item(raw: Mapping[str, Any] | None) -> dict[str, Any]:
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


def _call_requested_values(
    run_id: str,
    task_ids: Sequence[str],
    previous_run_id: str | None,
    reconciled: bool,
    document: Mapping[str, Any] | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {"run_id": run_id, "task_ids": list(task_ids), "call_state": "sent"}
    if document:
        values["document"] = dict(document)
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
        """True when an earlier attempt may have reached Unpod without us seeing the answer."""
        return self.kind == "redelivered" and self.previous.get("call_state") == "sending"


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
        return _item(response.get("Item")) or None

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
                    item = _item(raw)
                    recent = float(item.get("dedupe_until", 0)) >= now
                    if recent and item.get("status") not in RETRYABLE_STATUSES:
                        found[str(item["pk"])] = str(item["status"])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

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
                Item=_values(values),
                ConditionExpression="attribute_not_exists(pk) OR #s IN (:rejected, :failed) OR dedupe_until < :now",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_values({":rejected": REJECTED, ":failed": FAILED, ":now": int(now)}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim(self, message: LeadMessage, claim_id: str) -> Claim:
        """Take a lead for calling (status dispatching, call_state sending) if nobody else has."""
        try:
            response = self.client.update_item(
                **self._claim_request(message, claim_id, self.clock()),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return Claim("duplicate", _item(error.response.get("Item")))  # type: ignore[arg-type]
            raise
        previous = _item(response.get("Attributes"))
        own = previous.get("claim_id") == claim_id and previous.get("status") == DISPATCHING
        return Claim("redelivered" if own else "claimed", previous)

    def _claim_request(self, message: LeadMessage, claim_id: str, now: float, new_only: bool = False) -> dict[str, Any]:
        """The claim's UpdateItem parameters; `new_only` narrows the condition to leads never seen."""
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": message.lead_id}},
            "UpdateExpression": (
                "SET #s = :dispatching, claim_id = :claim, claimed_at = :now_iso, updated_at = :now_iso, "
                "#src = :source, record_id = :record_id, document = :document, received_at = :received, "
                "dedupe_until = :until, expires_at = :expires, call_state = :sending, "
                "attempts = if_not_exists(attempts, :zero) + :one "
                "REMOVE reason, unpod_status, unpod_message, error_kind, run_id, task_ids"
            ),
            "ConditionExpression": (
                "attribute_not_exists(pk) OR #s IN (:rejected, :failed) OR dedupe_until < :now "
                "OR (claim_id = :claim AND #s = :dispatching)"
            ),
            "ExpressionAttributeNames": {"#s": "status", "#src": "source"},
            "ExpressionAttributeValues": _values(
                {
                    ":dispatching": DISPATCHING,
                    ":rejected": REJECTED,
                    ":failed": FAILED,
                    ":claim": claim_id,
                    ":now": int(now),
                    ":now_iso": iso(now),
                    ":source": message.source,
                    ":record_id": message.record_id,
                    ":document": message.document.to_unpod() if message.document else {},
                    ":received": iso(message.received_at),
                    # the window runs from when the lead reached us, or from this claim if later
                    # (a replayed old event must not open a window that is already over)
                    ":until": int(max(message.received_at, now) + self.dedupe_window_seconds),
                    ":expires": self._expires_at(now),
                    ":sending": "sending",
                    ":zero": 0,
                    ":one": 1,
                }
            ),
        } | ({"ConditionExpression": "attribute_not_exists(pk)"} if new_only else {})

    def claim_many(self, requests: Sequence[tuple[LeadMessage, str]]) -> list[Claim | Exception]:
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
        for position, (message, _) in enumerate(requests):
            if message.lead_id not in seen:
                seen.add(message.lead_id)
                first.append(position)
        pending = [
            (first[start : start + TRANSACTION_LIMIT], False) for start in range(0, len(first), TRANSACTION_LIMIT)
        ]
        while pending:
            chunk, retried = pending.pop()
            if len(chunk) < 2:
                continue  # one lead: the single claim is one request too, and returns the old item
            items: Any = [{"Update": self._claim_request(*requests[i], now, new_only=True)} for i in chunk]
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as error:
                # Cancelled: leads whose reason is "None" only failed with the others; try them again
                # together, once. Every other lead (exists, conflict, throttled) is claimed alone below.
                reasons = error.response.get("CancellationReasons") or []
                if len(reasons) == len(chunk) and not retried:
                    retry = [i for i, reason in zip(chunk, reasons, strict=True) if reason.get("Code") == "None"]
                    pending.append((retry, True))
                continue
            except BotoCoreError:
                continue  # claimed one by one below
            for position in chunk:
                results[position] = Claim("claimed", {})
        for position, (message, claim_id) in enumerate(requests):
            if results[position] is None:
                try:
                    results[position] = self.claim(message, claim_id)
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
            if key == "previous_run_ids":
                sets.append(f"{key} = list_append(if_not_exists({key}, :empty), :v{index})")
                expression_values[":empty"] = []
            else:
                sets.append(f"{key} = :v{index}")
            expression_values[f":v{index}"] = value
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": lead_id}},
            "UpdateExpression": "SET " + ", ".join(sets) + (f" REMOVE {remove}" if remove else ""),
            "ConditionExpression": "claim_id = :claim AND #s = :dispatching",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _values(expression_values),
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
    ) -> bool:
        """Unpod accepted the call: store run_id and task_ids (and the document, if enriched)."""
        values = _call_requested_values(run_id, task_ids, previous_run_id, reconciled, document)
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
                    _call_requested_values(call.run_id, call.task_ids, call.previous_run_id, False, call.document),
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
        if document:
            values["document"] = dict(document)
        if http_status is not None:
            values["unpod_status"] = http_status
        return self._finish(lead_id, claim_id, REJECTED if rejected else FAILED, values)

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
        return [_item(raw) for raw in response.get("Items", [])]

    def by_run_id(self, run_id: str) -> list[dict[str, Any]]:
        """Leads called in one Unpod run (GSI by_run_id)."""
        response = self.client.query(
            TableName=self.table_name,
            IndexName="by_run_id",
            KeyConditionExpression="run_id = :run",
            ExpressionAttributeValues={":run": {"S": run_id}},
        )
        return [_item(raw) for raw in response.get("Items", [])]
