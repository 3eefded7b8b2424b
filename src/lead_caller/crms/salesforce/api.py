"""Salesforce REST API client for write-back: a completed call Task on the Lead or Contact.

Authentication: the OAuth 2.0 client-credentials flow of an External Client App
(docs/salesforce.md, "Write-back"): `POST {my_domain_url}/services/oauth2/token`
with `grant_type=client_credentials&client_id&client_secret` (form body)
answers `{"access_token", "instance_url", ...}` for the app's run-as user.
Credentials: the `salesforce` object of the CRM secret,
`{"client_id", "client_secret", "my_domain_url": "https://acme.my.salesforce.com"}`.
API calls go to the configured My Domain URL (never to a URL an answer names),
so the token only ever goes where the operator configured. The token is
cached per client until Salesforce answers 401, then fetched once more.

Write: `POST /services/data/{v}/sobjects/Task` with `WhoId` (the Lead/Contact
id, `00Q...`/`003...`), `Subject`, `Status` (default Completed), `TaskSubtype`
Call, `CallType` Outbound, `CallDurationInSeconds`, `CallDisposition` (the
outcome), `CallObject` (the Unpod task id: what a retry looks for with SOQL
before writing again), `ActivityDate` and `Description` (the summary and
details). 429/5xx/network are transient (the shared retry policy retries in
place first), other 4xx permanent. Tokens and record values are never logged.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from lead_caller.crms.callnote import Answer, CallNote, CrmRecord, JsonHttp, WriteResult
from lead_caller.observability import logger, redact

DEFAULT_API_VERSION = "v62.0"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a path, not a secret
#: key prefixes of the objects a Task's WhoId may name
WHO_PREFIXES = {"00Q": "Lead", "003": "Contact"}
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_VERSION = re.compile(r"v?(\d{2,3})(?:\.0)?")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_SALESFORCE_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.(salesforce|force|salesforce-setup|cloudforce)\.com")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class SalesforceCredentialsError(ValueError):
    """The `salesforce` object of the CRM secret is missing something or malformed."""


@dataclass(frozen=True)
class SalesforceConfig:
    """Validated client-credentials settings."""

    client_id: str
    client_secret: str
    my_domain_url: str

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> SalesforceConfig:
        """Validate the secret's `salesforce` object; SalesforceCredentialsError names the problem."""
        values: dict[str, str] = {}
        missing = []
        for key in ("client_id", "client_secret", "my_domain_url"):
            raw = credentials.get(key)
            text = raw.strip() if isinstance(raw, str) else ""
            if not text:
                missing.append(key)
            elif not _HEADER_SAFE.fullmatch(text):
                raise SalesforceCredentialsError(f"salesforce.{key} holds characters it cannot have")
            values[key] = text
        if missing:
            raise SalesforceCredentialsError(f'the CRM secret has no "salesforce": {{{", ".join(missing)}}}')
        url = urlsplit(values["my_domain_url"].rstrip("/"))
        host = url.hostname or ""
        secure = url.scheme == "https" and _SALESFORCE_HOST.fullmatch(host)
        local = url.scheme == "http" and host in _LOOPBACK  # the local stand-in
        if not (secure or local) or url.path not in ("", "/") or url.query:
            raise SalesforceCredentialsError(
                "salesforce.my_domain_url must be your My Domain URL, e.g. https://acme.my.salesforce.com"
            )
        return cls(values["client_id"], values["client_secret"], f"{url.scheme}://{url.netloc}")

    @property
    def cache_key(self) -> str:
        """Identifies the token of this client (the secret hashed)."""
        digest = hashlib.sha256(self.client_secret.encode()).hexdigest()
        return f"{self.my_domain_url}|{self.client_id}|{digest}"


def api_version(value: Any) -> str:
    """ "v62.0" from "v62.0", "62" or 62 (default v62.0)."""
    if value is None or value == "":
        return DEFAULT_API_VERSION
    match = _VERSION.fullmatch(str(value).strip().lower())
    if match is None:
        raise SalesforceCredentialsError(f"api_version {value!r} is not a version such as v62.0")
    return f"v{match.group(1)}.0"


class SalesforceWriteback:
    """Writes a completed call Task on a Salesforce Lead or Contact."""

    def __init__(self, http: JsonHttp | None = None) -> None:
        self.http = http or JsonHttp()
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def token(self, config: SalesforceConfig, *, refresh: bool = False) -> str | WriteResult:
        """An access token from the client-credentials grant (cached), or the WriteResult of a failure."""
        with self._lock:
            cached = self._tokens.get(config.cache_key)
        if cached and not refresh:
            return cached
        form = urlencode(
            {"grant_type": "client_credentials", "client_id": config.client_id, "client_secret": config.client_secret}
        )
        answer = self.http.send("POST", config.my_domain_url + TOKEN_PATH, {}, form=form, label="token")
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        token = payload.get("access_token")
        if answer.ok and isinstance(token, str) and _HEADER_SAFE.fullmatch(token):
            with self._lock:
                self._tokens[config.cache_key] = token
            return token
        error = redact(str(payload.get("error") or ""), (config.client_secret,))[:80]
        logger.warning("Salesforce token request failed", extra={"http_status": answer.status, "error": error})
        if answer.transient:
            return WriteResult("transient", f"Salesforce token: {answer.message}")
        return WriteResult(
            "permanent",
            f"Salesforce refused the client-credentials grant ({error or answer.message}): "
            "check client_id, client_secret, my_domain_url and that the client credentials flow has a run-as user",
        )

    def write(
        self,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
        record: CrmRecord,
        note: CallNote,
        *,
        look_first: bool,
    ) -> WriteResult:
        """A completed Task with WhoId = the lead's record; with `look_first`, reuse one with the same CallObject."""
        try:
            config = SalesforceConfig.from_credentials(credentials)
            version = api_version(options.get("api_version") or credentials.get("api_version"))
        except SalesforceCredentialsError as error:
            return WriteResult("permanent", str(error))
        who_id = record.object_id or record.record_id
        if not _ID.fullmatch(who_id) or who_id[:3] not in WHO_PREFIXES:
            return WriteResult("permanent", "the lead's record id is not a Salesforce Lead or Contact id")
        base = f"{config.my_domain_url}/services/data/{version}"
        if look_first:
            soql = f"SELECT Id FROM Task WHERE WhoId = '{who_id}' AND CallObject = '{_soql(note.task_id)}' LIMIT 1"  # noqa: S608 - ids checked/escaped
            found = self._call(config, "GET", f"{base}/query?q={quote(soql)}", None, "query Task")
            if isinstance(found, WriteResult):
                return found
            if not found.ok:
                return _failure(found, "Salesforce Task query")
            records = found.payload.get("records") if isinstance(found.payload, dict) else None
            if isinstance(records, list) and records and isinstance(records[0], dict):
                return WriteResult("done", "", str(records[0].get("Id") or "found"))
        task: dict[str, Any] = {
            "WhoId": who_id,
            "Subject": note.title,
            "Status": str(options.get("task_status") or "Completed"),
            "TaskSubtype": "Call",
            "CallType": "Outbound",
            "CallDisposition": note.label[:255],
            "CallObject": note.task_id[:255],
            "Description": note.text()[:32_000],
        }
        if note.duration is not None:
            task["CallDurationInSeconds"] = note.duration
        date = (note.ended_at or note.started_at)[:10]
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            task["ActivityDate"] = date
        answer = self._call(config, "POST", f"{base}/sobjects/Task", task, "create Task")
        if isinstance(answer, WriteResult):
            return answer
        if not answer.ok:
            logger.warning("Salesforce Task not created", extra={"http_status": answer.status})
            return _failure(answer, "Salesforce Task")
        return WriteResult("done", "", str(answer.payload.get("id") or "") if isinstance(answer.payload, dict) else "")

    def _call(self, config: SalesforceConfig, method: str, url: str, body: Any, label: str) -> Answer | WriteResult:
        """One REST call with a bearer token, asked again once with a fresh token after a 401."""
        answer: Answer | None = None
        for refresh in (False, True):
            token = self.token(config, refresh=refresh)
            if isinstance(token, WriteResult):
                return token
            answer = self.http.send(method, url, {"Authorization": f"Bearer {token}"}, json_body=body, label=label)
            if answer.status != 401:
                return answer
        assert answer is not None
        return WriteResult("permanent", f"Salesforce refused a fresh access token: {answer.message}")


def _soql(value: str) -> str:
    """A SOQL string literal's content: backslashes and quotes escaped."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _failure(answer: Answer, what: str) -> WriteResult:
    """transient/permanent with Salesforce's errorCode (never field values)."""
    payload = answer.payload
    first = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], dict) else {}
    code = str(first.get("errorCode") or "")[:60]
    result = answer.result(what)
    return WriteResult(result.outcome, result.message + (f" ({code})" if code else ""))
