"""The urllib3 retry policy shared by every outbound API client (Unpod, HubSpot, Pipedrive).

urllib3's `Retry` does the work: backoff, `Retry-After`, which statuses and
methods to retry. Two things are added here: a cap on `Retry-After` waits
(Lambda time is billed and bounded) and a lenient parser for malformed
`Retry-After` values (which urllib3 raises on). With `defer_long_retry_after`
(the Unpod client), an answer whose `Retry-After` is longer than the cap is not
retried in-request at all (never call before `Retry-After`): it is returned, and
the caller delays the work by that long (the dispatcher hands the message back
to SQS with that visibility).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

#: answers worth asking again: throttling and server-side trouble
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CappedRetry(Retry):
    """urllib3 Retry that waits a Retry-After only up to max_retry_after, and otherwise gives the answer back."""

    max_retry_after: float = 10.0
    #: give a longer Retry-After back to the caller instead of retrying before it
    defer_long_retry_after: bool = False

    def get_retry_after(self, response: Any) -> float | None:
        """Retry-After in seconds, capped at max_retry_after (longer ones are never retried, see increment)."""
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> CappedRetry:
        """Like Retry.increment, but an answer asking to wait longer than the cap ends the retries.

        urllib3 then returns that answer (raise_on_status is off), so that the caller
        can wait the full Retry-After elsewhere instead of calling again too early.
        """
        if response is not None and self.defer_long_retry_after:
            wanted = Retry.get_retry_after(self, response)
            if wanted is not None and wanted > self.max_retry_after:
                raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After {wanted:g}s exceeds the cap"))
        return super().increment(method, url, response, error, _pool, _stacktrace)

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
        retry.defer_long_retry_after = self.defer_long_retry_after
        return retry


def retry_policy(
    max_retries: int,
    *,
    max_retry_after: float,
    backoff_factor: float,
    resend_after_timeout: bool,
    methods: Iterable[str] = ("GET", "POST"),
    backoff_max: float = 4.0,
    defer_long_retry_after: bool = False,
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
    retry.defer_long_retry_after = defer_long_retry_after
    return retry
