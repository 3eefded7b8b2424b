"""Pipedrive API client: fetches the person (and organisation name) of lead/deal events.

Used in the dispatch path for the enrichment kind "pipedrive_person" that
`crms/pipedrive/webhook.py` queues. Credentials are the "pipedrive" object of the
CRM secret: `{"api_token": "..."}`, optionally `"company_domain": "acme"`
(then requests go to https://acme.pipedrive.com, but only while the base URL
is the default https://api.pipedrive.com, so a configured base URL such as
a local stand-in always wins). The webhook's `meta.host` is never used as a
destination: the API token must only go where the operator configured.

Per request: `GET /api/v2/persons/{id}` (header `x-api-token`), then, when
the lead/deal or the person names an organisation, `GET
/api/v2/organizations/{id}` for its name. A v2 `create.person` carries the
person itself (`person` in the spec): then only the organisation is asked,
once per organisation (kept for ORGANIZATION_CACHE_SECONDS by the container). Outcomes (enrichment.Fetched):

* ok: the normalised record (`webhook.person_record`) with the
  event's lead/deal fields; the organisation lookup is best effort (a 404, a
  refusal or an outage leaves the company name out rather than delaying the call);
* gone: the person answered 404/410, or is marked `is_deleted`;
* permanent: 401/403 (token revoked or not allowed), other 4xx, no api_token;
* transient: 429, 5xx, network trouble, after urllib3 retried a few times
  (GET is idempotent, so reads are retried too), honouring `Retry-After` up to
  a cap. After a transient failure the rest of the batch is not asked (the
  token is rate limited or Pipedrive is down): those leads are retried via SQS
  too, and one Lambda invocation never sleeps through a whole batch of 429s.

`fetch` never raises for HTTP or network trouble and never logs tokens,
emails or phone numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError

from lead_caller.crms.callnote import Answer, CallNote, CrmRecord, JsonHttp, WriteResult
from lead_caller.crms.pipedrive.webhook import numeric_id, person_record
from lead_caller.enrichment import Fetched
from lead_caller.observability import logger, redact
from lead_caller.retries import RETRY_STATUSES, retry_policy

DEFAULT_BASE_URL = "https://api.pipedrive.com"
#: how long an organisation fetched for a person is reused by the container (its name rarely changes)
ORGANIZATION_CACHE_SECONDS = 600.0

_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MISSING_TOKEN_MESSAGE = 'the CRM secret has no "pipedrive": {"api_token": "..."}'  # noqa: S105 - a message, not a secret


@dataclass(frozen=True)
class _Answer:
    """One GET: the HTTP status (None when no answer came), the envelope's `data`, and a short message."""

    status: int | None
    data: Mapping[str, Any] | None
    message: str
    found_nothing: bool = False  # 200 {"success": true, "data": null}


class PipedrivePersons:
    """Fetches Pipedrive persons (with their organisation's name) over a pooled urllib3 connection."""

    kind: ClassVar[str] = "pipedrive_person"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_retries: int = 2,
        max_retry_after: float = 5.0,
        backoff_factor: float = 0.5,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # Reads have no side effect: a lost answer may be asked for again.
        retry = retry_policy(
            max_retries,
            max_retry_after=max_retry_after,
            backoff_factor=backoff_factor,
            resend_after_timeout=True,
            methods=("GET",),
        )
        self.retry = retry
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=4, retries=retry, timeout=self.timeout)
        #: (base URL, token digest, org id) -> (expiry on the monotonic clock, organisation)
        self.organization_cache: dict[tuple[str, str, int], tuple[float, Mapping[str, Any] | None]] = {}

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """One Fetched per request, in order. Never raises for HTTP or network trouble."""
        token = str(credentials.get("api_token") or "").strip()
        if not token:  # a person that came with the webhook is still called, without a company name
            return [
                _embedded(spec, None) if _embedded_person(spec) else Fetched("permanent", None, _MISSING_TOKEN_MESSAGE)
                for spec in requests
            ]
        try:
            base_url = self._base_url(credentials)
        except ValueError as error:
            return [Fetched("permanent", None, str(error)) for _ in requests]
        batch = _Batch(self, base_url, token)
        results: list[Fetched] = []
        stopped: str | None = None
        for spec in requests:
            if stopped is not None:
                results.append(Fetched("transient", None, f"not asked after an earlier failure: {stopped}"))
                continue
            fetched = batch.fetch(spec)
            if fetched.outcome == "transient":
                stopped = fetched.message
            results.append(fetched)
        return results

    def _base_url(self, credentials: Mapping[str, Any]) -> str:
        domain = str(credentials.get("company_domain") or "").strip().lower().removesuffix(".pipedrive.com")
        if not domain or self.base_url != DEFAULT_BASE_URL:
            return self.base_url
        if not _DOMAIN.fullmatch(domain):
            raise ValueError("company_domain must be the name in https://<name>.pipedrive.com")
        return f"https://{domain}.pipedrive.com"

    def get(self, base_url: str, token: str, path: str) -> _Answer:
        """GET one API v2 object; the answer classified, never an exception."""
        try:
            response = self.pool.request(
                "GET",
                base_url + path,
                headers={"x-api-token": token, "Accept": "application/json", "User-Agent": "lead-caller/1.0"},
                timeout=self.timeout,
                retries=self.retry,
            )
        except MaxRetryError as error:
            return _Answer(None, None, f"GET {path}: no answer ({type(error.reason).__name__})")
        except HTTPError as error:
            return _Answer(None, None, f"GET {path}: no answer ({type(error).__name__})")
        try:
            payload = json.loads(response.data) if response.data else None
        except ValueError:
            payload = None
        envelope = payload if isinstance(payload, dict) else {}
        data = envelope.get("data")
        error_text = redact(str(envelope.get("error") or ""), (token,))[:200]
        message = f"GET {path}: HTTP {response.status}" + (f" ({error_text})" if error_text else "")
        found_nothing = response.status == 200 and envelope.get("success") is True and data is None
        return _Answer(response.status, data if isinstance(data, dict) else None, message, found_nothing)


class _Batch:
    """One fetch() call: persons and organisations asked once each, however many leads name them."""

    def __init__(self, client: PipedrivePersons, base_url: str, token: str) -> None:
        self.client = client
        self.base_url = base_url
        self.token = token
        self.persons: dict[int, _Answer] = {}
        self.organizations: dict[int, Mapping[str, Any] | None] = {}

    def fetch(self, spec: Mapping[str, Any]) -> Fetched:
        if _embedded_person(spec):  # a v2 create.person: only its organisation is asked for
            org_id = numeric_id(spec.get("org_id"))
            return _embedded(spec, self._organization(org_id) if org_id else None)
        person_id = numeric_id(spec.get("person_id"))
        if person_id is None:
            return Fetched("permanent", None, "the enrichment request names no person_id")
        if person_id not in self.persons:
            self.persons[person_id] = self.client.get(self.base_url, self.token, f"/api/v2/persons/{person_id}")
        answer = self.persons[person_id]
        outcome = _person_outcome(answer)
        if outcome is not None:
            return outcome
        assert answer.data is not None
        org_id = numeric_id(spec.get("org_id")) or numeric_id(answer.data.get("org_id"))
        organization = self._organization(org_id) if org_id else None
        extra = {key: spec[key] for key in ("lead", "deal") if isinstance(spec.get(key), Mapping)}
        event = spec.get("event") if isinstance(spec.get("event"), Mapping) else None
        return Fetched("ok", person_record(answer.data, organization, event, extra))

    def _organization(self, org_id: int) -> Mapping[str, Any] | None:
        """The organisation, or None when it cannot be had (best effort: logged, not fatal)."""
        cache_key = (self.base_url, hashlib.sha256(self.token.encode()).hexdigest()[:16], org_id)
        cached = self.client.organization_cache.get(cache_key)
        if org_id not in self.organizations and cached is not None and cached[0] > time.monotonic():
            self.organizations[org_id] = cached[1]
        if org_id not in self.organizations:
            answer = self.client.get(self.base_url, self.token, f"/api/v2/organizations/{org_id}")
            data = answer.data if answer.status == 200 else None
            organization = data if data and data.get("is_deleted") is not True else None
            if organization is None:
                logger.warning(
                    "Pipedrive organisation not fetched; calling without a company name",
                    extra={"org_id": org_id, "http_status": answer.status, "error": answer.message},
                )
            else:  # kept for the container's next invocations too (one request per organisation)
                expires = time.monotonic() + ORGANIZATION_CACHE_SECONDS
                self.client.organization_cache[cache_key] = (expires, organization)
            self.organizations[org_id] = organization
        return self.organizations[org_id]


def _embedded_person(spec: Mapping[str, Any]) -> bool:
    """Whether the spec carries the person itself (a v2 create.person), so only the organisation is asked."""
    return isinstance(spec.get("person"), Mapping)


def _embedded(spec: Mapping[str, Any], organization: Mapping[str, Any] | None) -> Fetched:
    """The record of an embedded person, with its organisation when it could be had."""
    event = spec.get("event") if isinstance(spec.get("event"), Mapping) else None
    return Fetched("ok", person_record(spec["person"], organization, event))


def _person_outcome(answer: _Answer) -> Fetched | None:
    """The Fetched of a person answer that is not a usable record, else None."""
    status = answer.status
    if status is None or status in RETRY_STATUSES or status >= 500:
        return Fetched("transient", None, answer.message)
    if status in (404, 410) or answer.found_nothing:
        return Fetched("gone", None, answer.message)
    if status in (401, 403):
        return Fetched("permanent", None, f"Pipedrive refused the API token: {answer.message}")
    if status != 200:
        return Fetched("permanent", None, answer.message)
    if answer.data is None:  # 200 but not Pipedrive's envelope (a proxy page?): try again later
        return Fetched("transient", None, f"{answer.message}: not a Pipedrive answer")
    if answer.data.get("is_deleted") is True or answer.data.get("active_flag") is False:
        return Fetched("gone", None, f"{answer.message}: the person is deleted")
    return None


# ── write-back (writeback.py): a note or a done call activity on the person / lead / deal ──────

_RECORD_KEY = re.compile(r"(?:(?P<company>\d+)-)?(?P<entity>person|lead|deal)-(?P<id>[A-Za-z0-9-]+)")


def api_base_url(base_url: str, credentials: Mapping[str, Any]) -> str:
    """Where API calls go: `company_domain` only while the base URL is the default (as for reads)."""
    domain = str(credentials.get("company_domain") or "").strip().lower().removesuffix(".pipedrive.com")
    if not domain or base_url.rstrip("/") != DEFAULT_BASE_URL:
        return base_url.rstrip("/")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError("company_domain must be the name in https://<name>.pipedrive.com")
    return f"https://{domain}.pipedrive.com"


def writeback_targets(record: CrmRecord) -> dict[str, Any]:
    """person_id / lead_id / deal_id the note goes on: the record id's person, plus `crm_object`'s lead or deal."""
    targets: dict[str, Any] = {}
    match = _RECORD_KEY.fullmatch(record.record_id)
    if match is not None:
        entity, entity_id = match["entity"], match["id"]
        if entity == "person" and entity_id.isdigit():
            targets["person_id"] = int(entity_id)
        elif entity == "deal" and entity_id.isdigit():
            targets["deal_id"] = int(entity_id)
        elif entity == "lead":
            targets["lead_id"] = entity_id
    kind, object_id = record.object_type.lower(), record.object_id
    if kind == "deal" and object_id.isdigit():
        targets["deal_id"] = int(object_id)
    elif kind == "lead" and object_id:
        targets["lead_id"] = object_id
    elif kind == "person" and object_id.isdigit():
        targets["person_id"] = int(object_id)
    return targets


class PipedriveWriteback:
    """Writes a call note (`POST /api/v1/notes`) or, with `{"as": "activity"}`, a done call
    activity with its duration (`POST /api/v1/activities`) on the person, and the lead or
    deal the webhook was about when the lead item's `crm_object` names it.

    Credentials: the CRM secret's `pipedrive.api_token` (header `x-api-token`).
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, http: JsonHttp | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or JsonHttp()

    def write(
        self,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
        record: CrmRecord,
        note: CallNote,
        *,
        look_first: bool,
    ) -> WriteResult:
        """Note or activity; with `look_first`, reuse one carrying the task's marker."""
        token = str(credentials.get("api_token") or "").strip()
        if not token:
            return WriteResult("permanent", _MISSING_TOKEN_MESSAGE)
        try:
            base_url = api_base_url(self.base_url, credentials)
        except ValueError as error:
            return WriteResult("permanent", str(error))
        targets = writeback_targets(record)
        if not targets:
            return WriteResult("permanent", "the lead names no Pipedrive person, lead or deal")
        headers = {"x-api-token": token}
        activity = str(options.get("as") or "note") == "activity"
        if look_first:
            found = self._find(base_url, headers, targets, note, activity)
            if isinstance(found, WriteResult) or found:
                return found if isinstance(found, WriteResult) else WriteResult("done", "", found)
        if activity:
            body: dict[str, Any] = {
                "subject": note.title,
                "type": str(options.get("activity_type") or "call"),
                "done": 1,
                "note": note.html(),
                **targets,
            }
            if note.duration is not None:
                hours, minutes = divmod(-(-note.duration // 60), 60)  # whole minutes, rounded up
                body["duration"] = f"{hours:02d}:{minutes:02d}"
            if note.started_at[:10]:
                body["due_date"] = note.started_at[:10]
            path = "/api/v1/activities"
        else:
            body = {"content": note.html(), **targets}
            path = "/api/v1/notes"
        answer = self.http.send("POST", base_url + path, headers, json_body=body, label=f"POST {path}")
        if not answer.ok:
            logger.warning("Pipedrive write-back failed", extra={"http_status": answer.status})
            return _pipedrive_failure(answer, token)
        data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
        ref = str(data.get("id") or "") if isinstance(data, dict) else ""
        return WriteResult("done", "", ref)

    def _find(
        self, base_url: str, headers: Mapping[str, str], targets: Mapping[str, Any], note: CallNote, activity: bool
    ) -> str | WriteResult | None:
        """The id of an existing note/activity with the marker, None when there is none."""
        if activity:
            person_id = targets.get("person_id")
            if person_id is None:
                return None  # activities are listed per person only
            path = f"/api/v1/persons/{person_id}/activities?done=1&limit=100"
            field_name = "note"
        else:
            key, value = next(iter(targets.items()))
            path = f"/api/v1/notes?{key}={value}&limit=100&sort=add_time%20DESC"
            field_name = "content"
        answer = self.http.send("GET", base_url + path, headers, label="GET existing notes")
        if not answer.ok:
            return _pipedrive_failure(answer, str(headers.get("x-api-token")))
        data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and note.marker in str(item.get(field_name) or ""):
                return str(item.get("id") or "") or "found"
        return None


def _pipedrive_failure(answer: Answer, token: str) -> WriteResult:
    error = answer.payload.get("error") if isinstance(answer.payload, dict) else None
    detail = redact(str(error or ""), (token,))[:200]
    result = answer.result("Pipedrive write-back")
    return WriteResult(result.outcome, result.message + (f" ({detail})" if detail else ""))
