"""A ceiling on Create Task requests per second per Unpod space, shared by concurrent dispatchers.

One counter item per space and second in the leads table, `pk = "rate#<space hash>#<epoch
second>"` (TTL a few minutes), taken with a conditional `ADD` that fails once the second's
budget is spent. A dispatcher that finds the second full waits for the next one (up to
`max_wait_seconds`), else it defers the message to the queue. The space token is hashed in
the key so that it never appears in the table.

A 429's `Retry-After` is shared the same way (`rate#<space hash>#hold`, `until`): no
dispatcher sends to that space before it, whichever one was told.

Written by hand: the counter must be shared across Lambda containers (an in-process
token bucket such as `pyrate-limiter`'s memory bucket would allow N times the rate).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

RATE_PREFIX = "rate#"


class Pacer:
    """Takes request slots from the shared per-second budget of a space."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        requests_per_second: int,
        max_wait_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        edge_seconds: float = 0.2,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.requests_per_second = requests_per_second
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.sleep = sleep
        #: no slot is taken in the last `edge_seconds` of a second, so that a request does not
        #: reach Unpod in the next second (and count there too)
        self.edge_seconds = edge_seconds
        #: slots granted too late to use (the write ended after their second's edge), dropped
        self.stale_slots = 0

    @property
    def enabled(self) -> bool:
        """False when no ceiling is configured (0)."""
        return self.requests_per_second > 0

    def hold(self, space_token: str, seconds: float) -> None:
        """Unpod asked to wait (429 Retry-After): no request to this space for `seconds`."""
        until = self.clock() + seconds
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.hold_key(space_token)}},
                UpdateExpression="SET #until = :until, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(#until) OR #until < :until",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={
                    ":until": {"N": f"{until:.3f}"},
                    ":ttl": {"N": str(int(until) + 300)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def hold_key(space_token: str) -> str:
        """The key of a space's shared 429 hold (for a caller that reads it with other items)."""
        return f"{RATE_PREFIX}{_space(space_token)}#hold"

    def held_for(self, space_token: str) -> float:
        """Seconds left of a shared 429 hold on this space (0.0 when none)."""
        response = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": self.hold_key(space_token)}})
        until = float((response.get("Item") or {}).get("until", {}).get("N", 0))
        return max(0.0, until - self.clock())

    def acquire(self, space_token: str, hold_until: float | None = None) -> float:
        """Take one request slot: 0.0 when taken (after waiting if needed), else seconds to defer by.

        `hold_until`: the space's hold as the caller has just read it (saves reading it again).
        """
        held = self.held_for(space_token) if hold_until is None else max(0.0, hold_until - self.clock())
        if held > 0:
            return held
        if not self.enabled:
            return 0.0
        space = _space(space_token)
        deadline = self.clock() + self.max_wait_seconds
        while True:
            now = self.clock()
            second = math.floor(now)
            usable_until = second + 1.0 - self.edge_seconds
            if now < usable_until and self._take(space, second):
                # The clock is read again: the conditional write can take long (a throttled or
                # retried DynamoDB call, a busy container), and a slot of second s granted at
                # s + 1.05 would send a request that reaches Unpod in s + 1, counted there on top
                # of that second's own budget (issue 8: 6 requests in a second at 5/s). Such a
                # slot is left unused (it only lowers the throughput of a second already gone).
                now = self.clock()
                if now < usable_until:
                    return 0.0
                self.stale_slots += 1
                if now > deadline:
                    return 1.0
                continue
            next_second = second + 1
            if next_second > deadline:
                return max(1.0, next_second - now)
            self.sleep(max(0.0, next_second - now))

    def _take(self, space: str, second: int) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"{RATE_PREFIX}{space}#{second}"}},
                UpdateExpression="ADD n :one SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(n) OR n < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(self.requests_per_second)},
                    ":ttl": {"N": str(second + 300)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _space(space_token: str) -> str:
    """The space as it appears in keys: a short hash, never the token itself."""
    return hashlib.sha256(space_token.encode()).hexdigest()[:16]
