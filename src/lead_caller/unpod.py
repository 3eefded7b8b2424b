"""Unpod API client: Create Task, and finding a task again by its document_id.

One urllib3 PoolManager per process (module-level in the handler), explicit
timeouts, and urllib3's `Retry` for what is safe to retry:

* connection failures (the request never left): retried;
* 429 / 5xx answers: retried with exponential backoff, honouring `Retry-After`
  up to `max_retry_after`; a longer `Retry-After` is not retried here but
  returned (`CreateTaskOutcome.retry_after`) for the queue to wait that long;
* a read timeout or a dropped connection after the request was sent is NOT
  retried here: Unpod may already have created the task. The outcome is
  `unknown` and the dispatcher reconciles (`find_task`) before sending again.

`create_task` never raises for HTTP or network trouble; it returns an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from lead_caller.observability import mask_secrets, register_secrets
from lead_caller.retries import RETRY_STATUSES, CappedRetry, retry_policy

OutcomeKind = Literal["accepted", "permanent", "transient", "unknown"]
PERMANENT_STATUSES = frozenset({206, 400, 401, 403, 404, 405, 409, 413, 415, 422})


@dataclass(frozen=True)
class UnpodCredentials:
    """What Unpod needs to place calls, read from Secrets Manager."""

    api_token: str
    space_token: str
    org_handle: str | None
    pilot: str


@dataclass(frozen=True)
class CreateTaskOutcome:
    """The result of one Create Task request.

    kind: accepted (run_id set), permanent (do not retry: 206/4xx), transient
    (retry later: 429/5xx/connection refused), unknown (request sent, no answer).
    """

    kind: OutcomeKind
    http_status: int | None = None
    message: str = ""
    run_id: str | None = None
    task_ids: tuple[str, ...] = ()
    errors: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def failure_kind(self) -> str:
        """A short label for metrics: http_206, http_429, timeout, connection..."""
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return "timeout" if self.kind == "unknown" else "connection"

    @property
    def is_validation_error(self) -> bool:
        """True when Unpod refused the documents themselves (so splitting a batch can help)."""
        if self.http_status == 400 and not self.message.lower().startswith("task creation failed"):
            return True
        return self.http_status == 206 and bool(self.errors)


class UnpodClient:
    """Calls the Unpod platform API over a pooled urllib3 connection."""

    def __init__(
        self,
        base_url: str,
        create_task_path: str = "/spaces/{space_token}/tasks/create/",
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        max_retries: int = 2,
        max_retry_after: float = 2.0,
        backoff_factor: float = 0.5,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.create_task_path = create_task_path
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # Create Task has a side effect: never resent after a timeout (see the module docstring).
        retry = retry_policy(
            max_retries,
            max_retry_after=max_retry_after,
            backoff_factor=backoff_factor,
            resend_after_timeout=False,
            backoff_max=8.0,
            defer_long_retry_after=True,  # never call Unpod before its Retry-After
        )
        self.retry = retry
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=4, retries=retry, timeout=self.timeout)

    def _headers(self, credentials: UnpodCredentials, space_token: str | None = None) -> dict[str, str]:
        # every request passes here: its credentials are masked in logs and stored texts (observability)
        register_secrets(credentials.api_token, credentials.space_token, credentials.org_handle, space_token)
        headers = {
            "Authorization": f"Token {credentials.api_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "lead-caller/1.0",
        }
        if credentials.org_handle:
            headers["Org-Handle"] = credentials.org_handle
        return headers

    def create_task(
        self,
        credentials: UnpodCredentials,
        documents: Sequence[Mapping[str, Any]],
        context: str,
        schedule: Mapping[str, Any],
        pilot: str | None = None,
        space_token: str | None = None,
    ) -> CreateTaskOutcome:
        """Create one task (one call per document). Never raises for HTTP/network trouble."""
        space = space_token or credentials.space_token
        url = self.base_url + self.create_task_path.format(space_token=quote(space, safe=""))
        body = {
            "pilot": pilot or credentials.pilot,
            "documents": list(documents),
            "context": context,
            "schedule": dict(schedule),
        }
        try:
            response = self.pool.request(
                "POST",
                url,
                body=json.dumps(body).encode(),
                headers=self._headers(credentials, space),
                timeout=self.timeout,
                retries=self.retry,
            )
        except MaxRetryError as error:
            return _network_outcome(error.reason)
        except (ReadTimeoutError, ProtocolError) as error:
            return _network_outcome(error)
        except HTTPError as error:
            return _network_outcome(error)
        return _create_task_outcome(response)

    def _get_json(
        self, credentials: UnpodCredentials, path: str, fields: Mapping[str, Any], space_token: str | None = None
    ) -> Any:
        response = self.pool.request(
            "GET",
            self.base_url + path,
            fields={k: str(v) for k, v in fields.items()},
            headers=self._headers(credentials, space_token),
            timeout=self.timeout,
            retries=self.retry,
        )
        # the path names the space token: errors quote it masked, whoever logs or stores them
        shown = mask_secrets(path.split("?")[0], (space_token or "",))
        if response.status != 200:
            raise UnpodLookupError(f"GET {shown} answered HTTP {response.status}")
        try:
            return json.loads(response.data)
        except ValueError:
            raise UnpodLookupError(f"GET {shown} answered with a body that is not JSON") from None

    def find_task(
        self,
        credentials: UnpodCredentials,
        document_id: str,
        since: datetime,
        space_token: str | None = None,
        page_size: int = 100,
        max_pages: int = 50,
    ) -> tuple[str, tuple[str, ...]] | None:
        """Find a task created for `document_id` (its `ref_id`) in runs created after `since`.

        Pages the runs list (newest first) back until a page holds only runs older
        than `since`, however many newer runs the space has. Returns (run_id,
        task_ids) or None. Raises UnpodLookupError when Unpod cannot be asked or the
        list could not be paged back far enough, so that the caller never mistakes
        "unknown" for "absent".
        """
        raw_space = space_token or credentials.space_token
        space = quote(raw_space, safe="")
        try:
            for page in range(1, max_pages + 1):
                runs = self._page(credentials, f"/spaces/{space}/runs/", page, page_size, raw_space)
                older = 0
                for run in runs:
                    created = _parse_time(run.get("created"))
                    if created is not None and created < since:
                        older += 1
                        continue
                    run_id = str(run.get("run_id") or "")
                    matches = self._run_matches(credentials, space, run_id, document_id, raw_space) if run_id else ()
                    if matches:
                        return run_id, matches
                if len(runs) < page_size or older == len(runs):
                    return None
        except (MaxRetryError, HTTPError) as error:
            raise UnpodLookupError(f"Unpod could not be reached: {type(error).__name__}") from None
        raise UnpodLookupError(f"runs not paged back to {since.isoformat()} within {max_pages} pages")

    def _page(
        self, credentials: UnpodCredentials, path: str, page: int, size: int, space_token: str | None = None
    ) -> list[Mapping[str, Any]]:
        """One page of a list endpoint; a 404 past the first page is the end of the list."""
        try:
            return _data_list(self._get_json(credentials, path, {"page": page, "page_size": size}, space_token))
        except UnpodLookupError as error:
            if page > 1 and "HTTP 404" in str(error):
                return []
            raise

    def _run_matches(
        self, credentials: UnpodCredentials, space: str, run_id: str, document_id: str, space_token: str | None = None
    ) -> tuple[str, ...]:
        matches: list[str] = []
        path = f"/spaces/{space}/runs/{quote(run_id, safe='')}/tasks/"
        for page in range(1, 101):
            tasks = self._page(credentials, path, page, 100, space_token)
            matches.extend(
                str(task.get("task_id"))
                for task in tasks
                if task.get("ref_id") == document_id or (task.get("input") or {}).get("document_id") == document_id
            )
            if len(tasks) < 100:
                break
        return tuple(matches)

    def list_run_tasks(
        self,
        credentials: UnpodCredentials,
        run_id: str,
        space_token: str | None = None,
        page_size: int = 100,
        max_pages: int = 50,
    ) -> list[Mapping[str, Any]]:
        """Every task of a run (`GET /spaces/{space}/runs/{run_id}/tasks/`, paged by page/page_size).

        Raises UnpodLookupError when Unpod cannot be asked (the poller then tries again later).
        """
        raw_space = space_token or credentials.space_token
        space = quote(raw_space, safe="")
        path = f"/spaces/{space}/runs/{quote(run_id, safe='')}/tasks/"
        tasks: list[Mapping[str, Any]] = []
        try:
            for page in range(1, max_pages + 1):
                payload = self._get_json(credentials, path, {"page": page, "page_size": page_size}, raw_space)
                batch = _data_list(payload)
                tasks.extend(batch)
                count = payload.get("count") if isinstance(payload, dict) else None
                if len(batch) < page_size or (isinstance(count, int) and len(tasks) >= count):
                    break
        except (MaxRetryError, HTTPError) as error:
            raise UnpodLookupError(f"Unpod could not be reached: {type(error).__name__}") from None
        return tasks


class UnpodLookupError(Exception):
    """Unpod could not be asked whether a task exists."""


def _data_list(payload: Any) -> list[Mapping[str, Any]]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict):  # some list endpoints nest {"results": [...]}
        data = data.get("results") or data.get("items")
    return [item for item in data or [] if isinstance(item, dict)]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _network_outcome(reason: BaseException | None) -> CreateTaskOutcome:
    if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
        return CreateTaskOutcome(kind="transient", message=f"connection failed: {type(reason).__name__}")
    if isinstance(reason, (ReadTimeoutError, ProtocolError)):
        return CreateTaskOutcome(
            kind="unknown", message=f"no answer after the request was sent: {type(reason).__name__}"
        )
    return CreateTaskOutcome(kind="unknown", message=f"network error: {type(reason).__name__}")


def _create_task_outcome(response: urllib3.BaseHTTPResponse) -> CreateTaskOutcome:
    """Classify an answer: success needs HTTP 200, body status_code 200 and data.run_id."""
    try:
        payload = json.loads(response.data) if response.data else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    message = str(payload.get("message") or "")[:500]
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    errors = payload.get("errors") or (data or {}).get("errors") or {}
    status = response.status
    if status == 200 and payload.get("status_code") == 200 and data and data.get("run_id"):
        task_ids = data.get("task_ids") or []
        return CreateTaskOutcome(
            kind="accepted",
            http_status=status,
            message=message,
            run_id=str(data["run_id"]),
            task_ids=tuple(str(task) for task in task_ids if task),
        )
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if status in RETRY_STATUSES or status >= 500:
        return CreateTaskOutcome(
            kind="transient",
            http_status=status,
            message=message or f"HTTP {status}",
            retry_after=retry_after,
        )
    if status == 200:
        # HTTP 200 without a run_id or with an error status_code in the body.
        body_status = payload.get("status_code")
        kind: OutcomeKind = "transient" if isinstance(body_status, int) and body_status >= 500 else "permanent"
        return CreateTaskOutcome(
            kind=kind, http_status=status, message=message or "answer without a run_id", errors=errors
        )
    return CreateTaskOutcome(
        kind="permanent",
        http_status=status,
        message=message or f"HTTP {status}",
        errors=errors if isinstance(errors, dict) else {},
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date (None when absent)."""
    if not value:
        return None
    return max(0.0, CappedRetry(total=0).parse_retry_after(value))
