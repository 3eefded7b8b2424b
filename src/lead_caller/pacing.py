"""A ceiling on Create Task requests per second per Unpod space, shared by concurrent dispatchers.

One counter item per space and second in the leads table, `pk = "rate#<space hash>#<epoch
second>"` (TTL a few minutes), taken with a conditional `ADD` that fails once the second's
budget is spent. A dispatcher that finds the second full waits for the next one (up to
`max_wait_seconds`), else it defers the message to the queue. The space token is hashed in
the key so that it never appears in the table.

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
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.requests_per_second = requests_per_second
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.sleep = sleep

    @property
    def enabled(self) -> bool:
        """False when no ceiling is configured (0)."""
        return self.requests_per_second > 0

    def acquire(self, space_token: str) -> float:
        """Take one request slot: 0.0 when taken (after waiting if needed), else seconds to defer by."""
        if not self.enabled:
            return 0.0
        space = hashlib.sha256(space_token.encode()).hexdigest()[:16]
        deadline = self.clock() + self.max_wait_seconds
        while True:
            now = self.clock()
            second = math.floor(now)
            if self._take(space, second):
                return 0.0
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
