"""A circuit breaker in front of Unpod, shared by every concurrent dispatcher.

State lives in the leads table under the reserved key `pk = "circuit#unpod"` (see
docs/lifecycle.md), with a TTL, and changes only through conditional writes:

* closed: send. Each systemic failure (5xx, timeout, connection error: "unavailable";
  401/403: "credentials") adds to a run (`failures`, atomic ADD); a success ends the run.
* open: after `threshold` systemic failures in a row, nobody sends until `open_until`
  (30 s, doubling on each re-opening, at most 1 h); messages go back to the queue for
  that long.
* half-open: once `open_until` has passed, one dispatcher wins the probe lease (a
  conditional write) and sends one request; success closes the circuit, failure opens
  it again for longer. The others keep waiting meanwhile.

Written by hand because it must be shared across Lambda containers through DynamoDB;
in-process breaker libraries (pybreaker, circuitbreaker) keep their state in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

CIRCUIT_KEY = "circuit#unpod"
UNAVAILABLE = "unavailable"
CREDENTIALS = "credentials"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Decision:
    """What a dispatcher may do now: send (closed), probe (half-open, one request) or wait."""

    kind: Literal["send", "probe", "wait"]
    wait_seconds: float = 0.0
    reason: str = ""
    failures: int = 0


def _values(values: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values; floats (epoch seconds) as Decimal, to the millisecond."""
    return {
        key: _serializer.serialize(Decimal(f"{value:.3f}") if isinstance(value, float) else value)
        for key, value in values.items()
    }


class Circuit:
    """The shared Unpod circuit breaker."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        threshold: int = 5,
        base_open_seconds: float = 30.0,
        max_open_seconds: float = 3_600.0,
        probe_lease_seconds: float = 30.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        ttl_seconds: int = 14 * 86_400,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.threshold = max(1, threshold)
        self.base_open_seconds = base_open_seconds
        self.max_open_seconds = max_open_seconds
        self.probe_lease_seconds = probe_lease_seconds
        self.time_scale = time_scale
        self.clock = clock
        self.ttl_seconds = ttl_seconds

    def read(self) -> dict[str, Any]:
        """The circuit item ({} when closed and never tripped)."""
        response = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": CIRCUIT_KEY}}, ConsistentRead=True)
        return {key: _deserializer.deserialize(value) for key, value in (response.get("Item") or {}).items()}

    def decide(self, item: dict[str, Any] | None = None) -> Decision:
        """Send, probe (this caller holds the half-open lease) or wait (and for how long).

        `item`: the circuit item as the caller has just read it (consistently), else read here.
        """
        item = self.read() if item is None else item
        failures = int(item.get("failures", 0))
        if item.get("state") != "open":
            return Decision("send", failures=failures)
        now = self.clock()
        reason = str(item.get("reason") or UNAVAILABLE)
        open_until = float(item.get("open_until", 0))
        if now < open_until:
            return Decision("wait", open_until - now, reason, failures)
        lease = self.probe_lease_seconds * self.time_scale
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": CIRCUIT_KEY}},
                UpdateExpression="SET probe_until = :lease, changed_at = :now",
                ConditionExpression=(
                    "#st = :open AND open_until <= :now AND (attribute_not_exists(probe_until) OR probe_until <= :now)"
                ),
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues=_values({":lease": now + lease, ":now": now, ":open": "open"}),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return Decision("wait", max(lease / 4, 1.0), reason, failures)  # another dispatcher is probing
        return Decision("probe", reason=reason, failures=failures)

    def record_success(self) -> None:
        """Unpod answered: close the circuit and end the run of failures (no write when already so)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": CIRCUIT_KEY}},
                UpdateExpression="SET #st = :closed, failures = :zero, opens = :zero, changed_at = :now "
                "REMOVE open_until, probe_until, reason",
                ConditionExpression="failures > :zero OR #st = :open",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues=_values(
                    {":closed": "closed", ":zero": 0, ":open": "open", ":now": self.clock()}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def record_failure(self, reason: str, probing: bool = False) -> float:
        """Count one systemic failure; returns how long the circuit is now open (0 = still closed)."""
        now = self.clock()
        response = self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": CIRCUIT_KEY}},
            UpdateExpression="ADD failures :one SET last_reason = :reason, changed_at = :now, expires_at = :ttl",
            ExpressionAttributeValues=_values(
                {":one": 1, ":reason": reason, ":now": now, ":ttl": int(now + self.ttl_seconds)}
            ),
            ReturnValues="ALL_NEW",
        )
        item = {key: _deserializer.deserialize(value) for key, value in response["Attributes"].items()}
        if item.get("state") == "open" and float(item.get("open_until", 0)) > now:
            return float(item.get("open_until", now)) - now  # already open (another dispatcher opened it)
        if int(item.get("failures", 0)) < self.threshold and not probing:
            return 0.0
        opens = int(item.get("opens", 0))
        seconds = min(self.max_open_seconds, self.base_open_seconds * 2.0**opens) * self.time_scale
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": CIRCUIT_KEY}},
                UpdateExpression="SET #st = :open, open_until = :until, reason = :reason, opened_at = :now "
                "ADD opens :one REMOVE probe_until",
                ConditionExpression="attribute_not_exists(#st) OR #st <> :open OR open_until <= :now",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues=_values(
                    {":open": "open", ":until": now + seconds, ":reason": reason, ":now": now, ":one": 1}
                ),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self.read()  # opened meanwhile by another dispatcher
            return max(0.0, float(current.get("open_until", now)) - now)
        return seconds
