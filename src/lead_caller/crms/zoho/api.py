"""Zoho CRM API client: reads the Leads/Contacts records of thin notifications (dispatch path only).

Credentials: the `zoho` object of the CRM secret, `{"client_id", "client_secret",
"refresh_token", "dc": "com", "api_version": "v8", "extra_fields": [...]}`
(a self-client or server-based client of https://api-console.zoho.com with
the scopes `ZohoCRM.modules.leads.READ,ZohoCRM.modules.contacts.READ`, plus
`ZohoCRM.notifications.ALL` for `crms/zoho/watch.py`).

**OAuth**: the refresh-token grant, `POST {accounts}/oauth/v2/token` with
`grant_type=refresh_token&client_id&client_secret&refresh_token` (form body),
against the data centre's accounts server (`dc`: com, eu, in, com.au, jp, ca,
com.cn, sa, uk, ae; see `DATA_CENTRES`). The access token is cached per
client and refresh token until shortly before `expires_in` (Zoho: 3600 s), and
refreshed once more when the API answers 401 (revoked or expired early).
Zoho answers a refused grant with HTTP 200 and `{"error": "invalid_code"}`
(or `invalid_client`...): those are permanent; throttling ("Access Denied",
too many requests), 429, 5xx and network trouble are transient.

**Records**: `GET {api_domain}/crm/{version}/{module}?ids=a,b&fields=...`, one
request per module and 100 ids, `Authorization: Zoho-oauthtoken <token>`.
`api_domain` comes from the token answer (data-centre aware), checked to be a
Zoho API host unless the accounts URL was overridden (a local stand-in), and
an `api_base_url` override always wins. Outcomes per id: returned -> ok (the
flat record of `webhook.zoho_record`); absent, or 204 -> gone; 401 after
a fresh token, 403 and other 4xx -> permanent; 429/5xx/network -> transient.
urllib3 retries 429/5xx/connection failures a few times in place, honouring
`Retry-After` up to a cap (a read is safe to repeat); after a transient
failure the rest of the batch is not asked.

`fetch` never raises for HTTP or network trouble, and logs neither tokens nor
field values (emails, phones).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError

from lead_caller.crms.callnote import CallNote, CrmRecord, WriteResult
from lead_caller.crms.zoho.webhook import canonical_module, record_id_of, zoho_record
from lead_caller.enrichment import Fetched, FetchOutcome
from lead_caller.observability import logger, redact
from lead_caller.retries import retry_policy

#: data centre -> (accounts server, API domain); Zoho's multi-DC tables
DATA_CENTRES: dict[str, tuple[str, str]] = {
    "com": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "com.cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "uk": ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    "ae": ("https://accounts.zoho.ae", "https://www.zohoapis.ae"),
}
#: other spellings of a data centre (Zoho's `location` values and top-level domains)
DC_ALIASES: dict[str, str] = {"us": "com", "au": "com.au", "cn": "com.cn", "zohocloud.ca": "ca"}
DEFAULT_DC = "com"
DEFAULT_API_VERSION = "v8"
TOKEN_PATH = "/oauth/v2/token"  # noqa: S105 - a path, not a secret
MAX_IDS_PER_REQUEST = 100
MAX_FIELDS = 50
#: token errors that no retry can fix (a revoked or mistyped refresh token, a deleted client)
PERMANENT_TOKEN_ERRORS = frozenset(
    {
        "invalid_code",
        "invalid_client",
        "invalid_client_secret",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
#: the fields read per module: what the built-in mapping (crms/zoho/webhook.py) reads
MODULE_FIELDS: dict[str, tuple[str, ...]] = {
    "Leads": (
        "First_Name",
        "Last_Name",
        "Full_Name",
        "Email",
        "Phone",
        "Mobile",
        "Designation",
        "Company",
        "Street",
        "City",
        "State",
        "Zip_Code",
        "Country",
        "Description",
        "Tag",
        "Lead_Source",
        "Lead_Status",
    ),
    "Contacts": (
        "First_Name",
        "Last_Name",
        "Full_Name",
        "Email",
        "Phone",
        "Mobile",
        "Title",
        "Account_Name",
        "Mailing_Street",
        "Mailing_City",
        "Mailing_State",
        "Mailing_Zip",
        "Mailing_Country",
        "Description",
        "Tag",
        "Lead_Source",
    ),
}
_VERSION = re.compile(r"v?([0-9]{1,2}(?:\.[0-9])?)")
_FIELD = re.compile(r"[A-Za-z0-9_$]{1,100}")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")  # what an HTTP header or form value may carry (no pasted newlines)
_ZOHO_API_HOST = re.compile(r"([a-z0-9-]+\.)*zohoapis\.[a-z.]{2,10}")


class ZohoCredentialsError(ValueError):
    """The `zoho` object of the CRM secret is missing something or malformed."""


class ZohoAuthError(Exception):
    """No access token could be had. `outcome` is "permanent" (refused grant) or "transient"."""

    def __init__(self, outcome: FetchOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome: FetchOutcome = outcome
        self.message = message


@dataclass(frozen=True)
class ZohoConfig:
    """The validated OAuth settings of one CRM secret."""

    client_id: str
    client_secret: str
    refresh_token: str
    dc: str
    api_version: str
    extra_fields: tuple[str, ...] = ()

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> ZohoConfig:
        """Validate the secret's `zoho` object; ZohoCredentialsError names what is wrong."""
        values: dict[str, str] = {}
        missing: list[str] = []
        for key in ("client_id", "client_secret", "refresh_token"):
            value = credentials.get(key)
            text = value.strip() if isinstance(value, str) else ""
            if not text:
                missing.append(key)
            elif not _HEADER_SAFE.fullmatch(text):
                raise ZohoCredentialsError(f"zoho.{key} holds characters a Zoho credential cannot have")
            values[key] = text
        if missing:
            raise ZohoCredentialsError(f'the CRM secret has no "zoho": {{{", ".join(missing)}}}')
        extra = credentials.get("extra_fields")
        fields: tuple[str, ...] = ()
        if isinstance(extra, list):
            fields = tuple(name for name in extra if isinstance(name, str) and _FIELD.fullmatch(name))
        return cls(
            client_id=values["client_id"],
            client_secret=values["client_secret"],
            refresh_token=values["refresh_token"],
            dc=data_centre(credentials.get("dc")),
            api_version=api_version(credentials.get("api_version")),
            extra_fields=fields,
        )

    @property
    def cache_key(self) -> str:
        """Identifies the token of this client and refresh token (the secrets hashed)."""
        digest = hashlib.sha256(f"{self.client_secret}\0{self.refresh_token}".encode()).hexdigest()
        return f"{self.dc}:{self.client_id}:{digest}"


def data_centre(value: Any) -> str:
    """The canonical data centre ("com", "eu", "com.au"...) of a `dc` setting; default "com"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_DC
    text = str(value).strip().lower().lstrip(".")
    for prefix in ("https://", "accounts.", "www.", "zohoapis.", "zoho."):
        text = text.removeprefix(prefix)
    text = DC_ALIASES.get(text, text)
    if text not in DATA_CENTRES:
        raise ZohoCredentialsError(f"zoho.dc {value!r} is not a Zoho data centre (one of {', '.join(DATA_CENTRES)})")
    return text


def accounts_url_of(dc: str) -> str:
    """The accounts (OAuth) server of a data centre."""
    return DATA_CENTRES[data_centre(dc)][0]


def api_domain_of(dc: str) -> str:
    """The default API domain of a data centre."""
    return DATA_CENTRES[data_centre(dc)][1]


def api_version(value: Any) -> str:
    """ "v8" from "v8", "8" or 8 (default v8); ZohoCredentialsError otherwise."""
    if value is None or value == "":
        return DEFAULT_API_VERSION
    match = _VERSION.fullmatch(str(value).strip().lower())
    if match is None:
        raise ZohoCredentialsError(f"zoho.api_version {value!r} is not a version such as v8")
    return f"v{match.group(1)}"


@dataclass(frozen=True)
class ZohoSession:
    """An access token and where to use it."""

    access_token: str
    api_domain: str
    api_version: str


@dataclass(frozen=True)
class ZohoAnswer:
    """One API answer: the status (None when none came), the JSON payload and a short message."""

    status: int | None
    payload: Any
    message: str

    @property
    def code(self) -> str:
        """Zoho's error `code` (e.g. INVALID_TOKEN), "" when none."""
        return _error_code(self.payload)


@dataclass
class _CachedToken:
    access_token: str
    api_domain: str
    refresh_at: float


class ZohoRecords:
    """Fetches Zoho Leads/Contacts by id with an OAuth refresh token, one request per module and 100 ids."""

    kind: ClassVar[str] = "zoho_record"

    def __init__(
        self,
        accounts_base_url: str | None = None,
        api_base_url: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 5.0,
        max_retries: int = 2,
        max_retry_after: float = 3.0,
        backoff_factor: float = 0.5,
        pool: urllib3.PoolManager | None = None,
        *,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Base URLs default to the data centre's; an override (a stand-in) replaces them for every dc."""
        self.accounts_base_url = accounts_base_url.rstrip("/") if accounts_base_url else None
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # Reads, token grants and watch updates are all safe to send again after a lost answer.
        self.retry = retry_policy(
            max_retries,
            max_retry_after=max_retry_after,
            backoff_factor=backoff_factor,
            resend_after_timeout=True,
            methods=("GET", "POST", "PATCH"),
        )
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=4, retries=self.retry, timeout=self.timeout)
        self._tokens: dict[str, _CachedToken] = {}
        self._lock = threading.Lock()

    # ── URLs ──────────────────────────────────────────────────────────

    def accounts_url(self, config: ZohoConfig) -> str:
        """The OAuth server: the override, else the data centre's."""
        return self.accounts_base_url or accounts_url_of(config.dc)

    def _api_domain(self, config: ZohoConfig, announced: Any) -> str:
        """Where records are read: the override, else the token's `api_domain` if plausible, else the dc's."""
        if self.api_base_url:
            return self.api_base_url
        text = announced.strip().rstrip("/") if isinstance(announced, str) else ""
        if text:
            url = urlsplit(text)
            if self.accounts_base_url and url.scheme in ("http", "https") and url.netloc:
                return text  # a configured accounts server (stand-in) names its own API
            if url.scheme == "https" and _ZOHO_API_HOST.fullmatch(url.hostname or "") and not url.path:
                return text
            logger.warning("Zoho announced an unexpected api_domain; using the data centre's")
        return api_domain_of(config.dc)

    # ── OAuth ─────────────────────────────────────────────────────────

    def session(self, config: ZohoConfig, *, refresh: bool = False) -> ZohoSession:
        """A valid access token (cached until shortly before it expires); ZohoAuthError when none can be had."""
        key = self.accounts_url(config) + "|" + config.cache_key
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and not refresh and self.clock() < cached.refresh_at:
                return ZohoSession(cached.access_token, cached.api_domain, config.api_version)
            self._tokens.pop(key, None)
        token = self._grant(config)
        with self._lock:
            self._tokens[key] = token
        return ZohoSession(token.access_token, token.api_domain, config.api_version)

    def forget_tokens(self) -> None:
        """Drop every cached access token."""
        with self._lock:
            self._tokens.clear()

    def _grant(self, config: ZohoConfig) -> _CachedToken:
        """The refresh-token grant."""
        url = self.accounts_url(config) + TOKEN_PATH
        form = {
            "grant_type": "refresh_token",
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "refresh_token": config.refresh_token,
        }
        secrets = (config.client_secret, config.refresh_token)
        started = self.clock()
        try:
            response = self.pool.request(
                "POST",
                url,
                body=urlencode(form).encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    "User-Agent": "lead-caller/1.0",
                },
                timeout=self.timeout,
                retries=self.retry,
            )
        except MaxRetryError as error:
            raise ZohoAuthError("transient", f"Zoho accounts unreachable: {type(error.reason).__name__}") from None
        except HTTPError as error:
            raise ZohoAuthError("transient", f"Zoho accounts unreachable: {type(error).__name__}") from None
        payload = _json(response.data)
        body = payload if isinstance(payload, dict) else {}
        error_code = str(body.get("error") or "").strip()
        access_token = body.get("access_token")
        if response.status == 200 and isinstance(access_token, str) and access_token.strip() and not error_code:
            lifetime = _lifetime(body)
            margin = self.refresh_margin if lifetime > 2 * self.refresh_margin else lifetime / 2
            return _CachedToken(
                access_token=access_token.strip(),
                api_domain=self._api_domain(config, body.get("api_domain")),
                refresh_at=started + lifetime - margin,
            )
        detail = redact(error_code or f"HTTP {response.status}", secrets)[:100]
        logger.warning("Zoho token refresh failed", extra={"http_status": response.status, "error": detail})
        if error_code in PERMANENT_TOKEN_ERRORS:
            message = f"Zoho refused the refresh token grant ({detail}): check client_id, secret, refresh_token, dc"
            raise ZohoAuthError("permanent", message)
        if response.status in (400, 401, 403) and not error_code:
            raise ZohoAuthError("permanent", f"Zoho refused the refresh token grant (HTTP {response.status})")
        raise ZohoAuthError("transient", f"Zoho token refresh failed ({detail})")

    # ── API calls ─────────────────────────────────────────────────────

    def request(
        self,
        config: ZohoConfig,
        method: str,
        resource: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> ZohoAnswer:
        """`method {api_domain}/crm/{version}/{resource}` with a valid token, asked again once after a 401.

        Raises ZohoAuthError when no token can be had; an HTTP or network failure is an answer.
        """
        session = self.session(config)
        answer = self._send(session, method, resource, query, body)
        if answer.status == 401:
            session = self.session(config, refresh=True)
            answer = self._send(session, method, resource, query, body)
        return answer

    def _send(
        self, session: ZohoSession, method: str, resource: str, query: Mapping[str, str] | None, body: Any
    ) -> ZohoAnswer:
        path = f"/crm/{session.api_version}/{resource.lstrip('/')}"
        url = session.api_domain + path + (f"?{urlencode(query)}" if query else "")
        headers = {
            "Authorization": f"Zoho-oauthtoken {session.access_token}",
            "Accept": "application/json",
            "User-Agent": "lead-caller/1.0",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self.pool.request(
                method, url, body=data, headers=headers, timeout=self.timeout, retries=self.retry
            )
        except MaxRetryError as error:
            return ZohoAnswer(None, None, f"{method} {path}: no answer ({type(error.reason).__name__})")
        except HTTPError as error:
            return ZohoAnswer(None, None, f"{method} {path}: no answer ({type(error).__name__})")
        payload = _json(response.data)
        message = f"{method} {path}: HTTP {response.status}"
        detail = _error_detail(payload)
        if detail and response.status >= 300:
            message += f" {redact(detail, (session.access_token,))[:200]}"
        return ZohoAnswer(response.status, payload, message)

    # ── the enricher ──────────────────────────────────────────────────

    def fetch(self, credentials: Mapping[str, Any], requests: Sequence[Mapping[str, Any]]) -> list[Fetched]:
        """One Fetched per request ({"module", "id"}), in order. Never raises for HTTP or network trouble."""
        try:
            config = ZohoConfig.from_credentials(credentials)
        except ZohoCredentialsError as error:
            return [Fetched("permanent", None, str(error)) for _ in requests]
        keys: list[tuple[str, str] | None] = []
        wanted: dict[str, list[str]] = {}
        for spec in requests:
            module, record_id = canonical_module(spec.get("module")), record_id_of(spec.get("id"))
            if module is None or record_id is None:
                keys.append(None)
                continue
            keys.append((module, record_id))
            ids = wanted.setdefault(module, [])
            if record_id not in ids:
                ids.append(record_id)
        found: dict[tuple[str, str], Fetched] = {}
        stopped: Fetched | None = None  # what the rest of the batch gets after a token failure or an outage
        for module, ids in wanted.items():
            for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
                chunk = ids[start : start + MAX_IDS_PER_REQUEST]
                if stopped is not None:
                    found.update({(module, record_id): stopped for record_id in chunk})
                    continue
                try:
                    outcomes = self._read(config, module, chunk)
                except ZohoAuthError as error:
                    stopped = Fetched(error.outcome, None, error.message)
                    found.update({(module, record_id): stopped for record_id in chunk})
                    continue
                found.update({(module, record_id): outcome for record_id, outcome in outcomes.items()})
                transient = next((o.message for o in outcomes.values() if o.outcome == "transient"), None)
                if transient is not None:
                    stopped = Fetched("transient", None, f"not asked after an earlier failure: {transient}")
        results: list[Fetched] = []
        for key in keys:
            if key is None:
                results.append(Fetched("permanent", None, "the queued event names no Zoho Leads/Contacts record"))
            else:
                results.append(found[key])
        return results

    def fields(self, config: ZohoConfig, module: str) -> list[str]:
        """The fields asked for: the mapping's, then `extra_fields` (at most 50 in all)."""
        return list(dict.fromkeys([*MODULE_FIELDS[module], *config.extra_fields]))[:MAX_FIELDS]

    def _read(self, config: ZohoConfig, module: str, ids: list[str]) -> dict[str, Fetched]:
        """Outcome per id of one `GET /{module}?ids=...`; ZohoAuthError when no token can be had."""
        query = {"ids": ",".join(ids), "fields": ",".join(self.fields(config, module))}
        answer = self.request(config, "GET", module, query=query)
        status = answer.status
        if status == 204:
            return {record_id: Fetched("gone", None, f"{answer.message}: no such record") for record_id in ids}
        if status == 200:
            data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
            if not isinstance(data, list):
                return _all(ids, "transient", f"{answer.message} with a body that is not Zoho's data envelope")
            records: dict[str, Mapping[str, Any]] = {}
            for item in data:
                if isinstance(item, Mapping) and (record_id := record_id_of(item.get("id"))) is not None:
                    records[record_id] = item
            return {
                record_id: (
                    Fetched("ok", zoho_record(records[record_id], record_id))
                    if record_id in records
                    else Fetched("gone", None, f"{answer.message}: the record is not returned (deleted?)")
                )
                for record_id in ids
            }
        logger.warning(
            "Zoho record read failed",
            extra={"zoho_module": module, "ids": len(ids), "http_status": status, "code": answer.code},
        )
        if status is None or status == 429 or status >= 500:
            return _all(ids, "transient", answer.message)
        if status == 401:
            return _all(ids, "permanent", f"Zoho refused the access token: {answer.message}")
        return _all(ids, "permanent", answer.message)


def _all(ids: Sequence[str], outcome: FetchOutcome, message: str) -> dict[str, Fetched]:
    return {record_id: Fetched(outcome, None, message) for record_id in ids}


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _lifetime(body: Mapping[str, Any]) -> float:
    """Seconds an access token lives: `expires_in` (older answers: milliseconds, with `expires_in_sec`)."""
    for key in ("expires_in_sec", "expires_in"):
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            seconds = float(value)
            return seconds / 1000 if key == "expires_in" and seconds > 86_400 else seconds
    return 3600.0


def _error_code(payload: Any) -> str:
    """The `code` of Zoho's error envelope, or of the first item of a list answer."""
    if not isinstance(payload, dict):
        return ""
    if payload.get("code"):
        return str(payload["code"])[:50]
    for key in ("data", "watch"):
        items = payload.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict) and items[0].get("status") == "error":
            return str(items[0].get("code") or "")[:50]
    return ""


def _error_detail(payload: Any) -> str:
    """`CODE: message` of Zoho's error envelope (empty when there is none)."""
    code = _error_code(payload)
    message = ""
    if isinstance(payload, dict):
        message = str(payload.get("message") or "")
        if not message:
            for key in ("data", "watch"):
                items = payload.get(key)
                if isinstance(items, list) and items and isinstance(items[0], dict):
                    message = str(items[0].get("message") or "")
                    break
    return f"{code}: {message}".strip(": ") if code or message else ""


# ── write-back (writeback.py): a note on the Leads/Contacts record ─────────────────────────────

#: the modules a note is tried on when neither the lead item nor WRITEBACK.zoho.module names one
WRITEBACK_MODULES: tuple[str, ...] = ("Leads", "Contacts")
#: Zoho's answers for a record id that is not in the module asked
_NOT_IN_MODULE = frozenset({"INVALID_DATA", "INVALID_URL_PATTERN", "RECORD_NOT_FOUND", "INVALID_MODULE"})


class ZohoWriteback:
    """Writes a call note on a Zoho CRM record (`POST /crm/{v}/{module}/{id}/Notes`).

    Uses the enricher's OAuth client (`ZohoRecords`: refresh-token grant, data-centre
    aware, token cached). The refresh token needs the scope `ZohoCRM.modules.notes.CREATE`
    (and `.READ` for the retry check) besides the read scopes. The module comes
    from the lead item's `crm_object.type`, else `WRITEBACK.zoho.module`, else
    Leads then Contacts (a record id is unique across modules).
    """

    def __init__(self, records: ZohoRecords) -> None:
        self.records = records

    def write(
        self,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
        record: CrmRecord,
        note: CallNote,
        *,
        look_first: bool,
    ) -> WriteResult:
        """The note on the record; with `look_first`, reuse a note carrying the task's marker."""
        try:
            config = ZohoConfig.from_credentials(credentials)
        except ZohoCredentialsError as error:
            return WriteResult("permanent", str(error))
        record_id = record_id_of(record.object_id or record.record_id)
        if record_id is None:
            return WriteResult("permanent", "the lead names no Zoho record id")
        named = canonical_module(record.object_type) or canonical_module(options.get("module"))
        modules = (named,) if named else WRITEBACK_MODULES
        last = WriteResult("permanent", "no module tried")
        try:
            for module in modules:
                last = self._write(config, module, record_id, note, look_first)
                if last.outcome != "permanent" or not last.message.startswith("not in "):
                    return last
        except ZohoAuthError as error:
            return WriteResult("transient" if error.outcome == "transient" else "permanent", error.message)
        return last

    def _write(self, config: ZohoConfig, module: str, record_id: str, note: CallNote, look_first: bool) -> WriteResult:
        resource = f"{module}/{record_id}/Notes"
        if look_first:
            found = self.records.request(
                config, "GET", resource, query={"fields": "Note_Title,Note_Content", "per_page": "200"}
            )
            if found.status == 200:
                for item in found.payload.get("data") or [] if isinstance(found.payload, dict) else []:
                    if isinstance(item, dict) and note.marker in str(item.get("Note_Content") or ""):
                        return WriteResult("done", "", str(item.get("id") or "") or "found")
            elif found.status != 204:
                outcome = _writeback_outcome(found)
                if outcome.outcome == "transient" or found.code not in _NOT_IN_MODULE:
                    return outcome
                return WriteResult("permanent", f"not in {module}: {found.message}")
        body = {"data": [{"Note_Title": note.title, "Note_Content": note.text()}]}
        answer = self.records.request(config, "POST", resource, body=body)
        if answer.status in (200, 201):
            item = (answer.payload.get("data") or [{}])[0] if isinstance(answer.payload, dict) else {}
            item = item if isinstance(item, dict) else {}
            if str(item.get("status") or "success") == "success":
                details = item.get("details")
                details = details if isinstance(details, dict) else {}
                return WriteResult("done", "", str(details.get("id") or ""))
        logger.warning("Zoho note not created", extra={"zoho_module": module, "http_status": answer.status})
        if answer.code in _NOT_IN_MODULE and answer.status in (200, 201, 400, 404):
            return WriteResult("permanent", f"not in {module}: {answer.message}")
        return _writeback_outcome(answer)


def _writeback_outcome(answer: ZohoAnswer) -> WriteResult:
    status = answer.status
    if status is None or status == 429 or status >= 500:
        return WriteResult("transient", answer.message)
    return WriteResult("permanent", answer.message)
