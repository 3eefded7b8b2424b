"""The urllib3 retry policy shared by every outbound API client (Unpod, HubSpot, Pipedrive).

urllib3's `Retry` does the work: backoff, `Retry-After`, which statuses and
methods to retry. Two things are added here: a cap on `Retry-After` sleeps
(Lambda time is billed and bounded; SQS redelivery covers longer waits) and a
lenient parser for malformed `Retry-After` values (which urllib3 raises on).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

#: answers worth asking again: throttling and server-side trouble
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CappedRetry(Retry):
    """urllib3 Retry whose Retry-After sleep is capped."""

    max_retry_after: float = 10.0

    def get_retry_after(self, response: Any) -> float | None:
        """Retry-After in seconds, capped at max_retry_after."""
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def parse_retry_after(self, retry_after: str) -> float:
        """Like urllib3's, but a malformed value (e.g. "0.5") waits that long, or 1 s, instead of raising."""
        try:
            return super().parse_retry_after(retry_after)
        except InvalidHeader:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 1.0

    def new(self, **kw: Any) -> CappedRetry:
        """Keep the cap across increments."""
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry


def retry_policy(
    max_retries: int,
    *,
    max_retry_after: float,
    backoff_factor: float,
    resend_after_timeout: bool,
    methods: Iterable[str] = ("GET", "POST"),
    backoff_max: float = 4.0,
) -> CappedRetry:
    """Retries for connection failures and 429/5xx answers; never raises on a final bad status.

    `resend_after_timeout` allows asking again after a read timeout or a dropped
    connection: right for reads, wrong for a request with a side effect (Create
    Task), where Unpod may already have acted on the lost request.
    """
    retry = CappedRetry(
        total=None,
        connect=max_retries,
        read=max_retries if resend_after_timeout else 0,
        redirect=0,
        other=0,
        status=max_retries,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(methods),
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.max_retry_after = max_retry_after
    return retry
