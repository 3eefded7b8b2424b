"""Local stand-in for the part of Salesforce lead-caller writes to: OAuth client credentials and Tasks.

Serves (one server is the My Domain URL and the instance):

* ``POST /services/oauth2/token`` with ``grant_type=client_credentials&client_id&client_secret``
  (form body): ``{"access_token", "instance_url", "id", "token_type": "Bearer", "issued_at",
  "signature"}``; a wrong client answers 400 ``{"error": "invalid_client"}``, another grant
  400 ``{"error": "unsupported_grant_type"}``;
* ``POST /services/data/v{NN}.0/sobjects/Task`` (``Authorization: Bearer``; 401
  ``INVALID_SESSION_ID`` otherwise): 201 ``{"id": "00T...", "success": true, "errors": []}``,
  400 ``INVALID_CROSS_REFERENCE_KEY`` when ``WhoId`` names no known Lead/Contact;
* ``GET /services/data/v{NN}.0/query?q=SELECT Id FROM Task WHERE ...``: the Tasks whose
  ``WhoId`` / ``CallObject`` equal the literals of the query (enough for the write-back check).

Tests queue faults ("status", "delay", "drop") and read the recorded requests (tokens and
client secret masked) through the Python API or the admin API under ``/__standin__/``
(``GET requests``, ``GET|POST faults``, ``GET config``, ``POST reset``, ``GET tasks``,
``GET|POST records``, ``POST expire-tokens``).

Run standalone with ``python -m local.salesforce_api --port 8768``.
"""

import copy
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from local.standin import Fault, JSONDict, Reply, Request, StandInServer, cli_parser, serve_main, status_phrase

__all__ = ["DEFAULT_RECORDS", "STANDIN_CLIENT_ID", "STANDIN_CLIENT_SECRET", "SalesforceApiStandIn", "main"]

STANDIN_CLIENT_ID = "3MVG9standinClientId000000000000000000000000000000000000000000000000000000"
STANDIN_CLIENT_SECRET = "standin-client-secret-7F3A9C2B1D0E"  # noqa: S105 - a fake credential
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a path
ORG_ID = "00D5f000005KcCnEAK"
_DATA = re.compile(r"/services/data/v(?P<version>\d{2,3}\.0)/(?P<rest>.+)")
_LITERAL = re.compile(r"(?P<field>WhoId|CallObject)\s*=\s*'(?P<value>(?:[^'\\]|\\.)*)'")

#: The Leads of the Outbound Message samples (events/salesforce-outbound-message.json) and one Contact.
DEFAULT_RECORDS: dict[str, JSONDict] = {
    "00Q5f00000Lk9XyEAJ": {"attributes": {"type": "Lead"}, "LastName": "Gonzalez"},
    "00Q5f00000Lk9XzEAJ": {"attributes": {"type": "Lead"}, "LastName": "Okafor"},
    "0035f00000AbCdEAAZ": {"attributes": {"type": "Contact"}, "LastName": "Raman"},
}


def _error(status: int, code: str, message: str, fields: Sequence[str] = ()) -> Reply:
    """Salesforce's REST error answer: a list of {message, errorCode, fields}."""
    return Reply.json(status, [{"message": message, "errorCode": code, "fields": list(fields)}])


@dataclass(frozen=True, slots=True)
class SalesforceFault(Fault):
    """One queued fault, applied to the next API request."""


class SalesforceApiStandIn(StandInServer[SalesforceFault]):
    """In-process Salesforce OAuth + REST (Task) API on 127.0.0.1, with fault injection. Thread-safe."""

    fault_type = SalesforceFault
    label = "Salesforce stand-in"
    thread_name = "salesforce-standin"
    server_version = "SalesforceApiStandIn/1.0"
    methods = frozenset({"GET", "POST", "PATCH", "DELETE"})

    def __init__(
        self,
        client_id: str = STANDIN_CLIENT_ID,
        client_secret: str = STANDIN_CLIENT_SECRET,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Accept this client; the sample Leads/Contact are loaded."""
        super().__init__(host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        self._tokens: set[str] = set()
        self._records: dict[str, JSONDict] = copy.deepcopy(DEFAULT_RECORDS)
        self._tasks: dict[str, JSONDict] = {}

    # ── test API ───────────────────────────────────────────────────────

    @property
    def tasks(self) -> dict[str, JSONDict]:
        """Tasks created (copies): id -> fields."""
        with self._lock:
            return copy.deepcopy(self._tasks)

    @property
    def records(self) -> dict[str, JSONDict]:
        """Known Leads/Contacts (copies)."""
        with self._lock:
            return copy.deepcopy(self._records)

    def add_record(self, record_id: str, sobject_type: str = "Lead", **fields: Any) -> None:
        """Add a Lead (00Q...) or Contact (003...) a Task may name as WhoId."""
        with self._lock:
            self._records[record_id] = {"attributes": {"type": sobject_type}, **fields}

    def expire_tokens(self) -> None:
        """Every access token issued so far is invalid from now on (the next call gets 401)."""
        with self._lock:
            self._tokens.clear()

    @property
    def token_grants(self) -> int:
        """How many token requests were received."""
        return sum(1 for item in self.requests if item["path"] == TOKEN_PATH)

    def reset(self) -> None:
        """Forget requests, faults, tokens and tasks; records back to the samples."""
        super().reset()
        with self._lock:
            self._tokens = set()
            self._tasks = {}
            self._records = copy.deepcopy(DEFAULT_RECORDS)

    # ── request handling ───────────────────────────────────────────────

    def _serve_api(self, request: Request) -> Reply:
        path = request.path.rstrip("/")
        fault = self._take_fault(path)
        parsed: Any = None
        if path == TOKEN_PATH:
            form = parse_qs(request.body.decode("utf-8", "replace"))
            parsed = {k: "***" if k == "client_secret" else v[0] for k, v in form.items()}
            reply = self._apply_fault(fault, lambda: self._token(request.method, form))
        else:
            try:
                parsed = json.loads(request.body) if request.body else None
            except ValueError:
                parsed = None
            payload = parsed
            reply = self._apply_fault(fault, lambda: self._api(request, path, payload))
        masked = {k: ("Bearer ***" if k == "authorization" else v) for k, v in request.headers.items()}
        self._record(
            {
                "method": request.method,
                "path": path,
                "query": request.query,
                "headers": masked,
                "json": parsed,
                **self._outcome(reply, fault),
                "received": datetime.now(UTC).isoformat(),
            }
        )
        return reply

    def _error_reply(self, status: int, message: str) -> Reply:
        return _error(status, "UNKNOWN_EXCEPTION" if status >= 500 else "INVALID_INPUT", message)

    def _fault_error(self, status: int) -> Reply:
        if status == 429:
            return _error(429, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return _error(status, "UNKNOWN_EXCEPTION" if status >= 500 else "INVALID_INPUT", status_phrase(status))

    def _token(self, method: str, form: Mapping[str, list[str]]) -> Reply:
        if method != "POST":
            return Reply.json(405, {"error": "invalid_request"})
        first = {key: values[0] for key, values in form.items()}
        if first.get("grant_type") != "client_credentials":
            return Reply.json(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if first.get("client_id") != self.client_id or first.get("client_secret") != self.client_secret:
            return Reply.json(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        token = f"{ORG_ID}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens.add(token)
        return Reply.json(
            200,
            {
                "access_token": token,
                "signature": secrets.token_urlsafe(32),
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/{ORG_ID}/0055f000000StAnDIN",
                "token_type": "Bearer",
                "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
            },
        )

    def _api(self, request: Request, path: str, parsed: Any) -> Reply:
        match = _DATA.fullmatch(path)
        if match is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            valid = scheme.lower() == "bearer" and token.strip() in self._tokens
        if not valid:
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        rest = match["rest"]
        if rest == "sobjects/Task" and request.method == "POST":
            return self._create_task(parsed)
        if rest == "query" and request.method == "GET":
            return self._query(parse_qs(request.query).get("q", [""])[0])
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def _create_task(self, parsed: Any) -> Reply:
        if not isinstance(parsed, dict):
            return _error(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        who_id = str(parsed.get("WhoId") or "")
        with self._lock:
            known = who_id in self._records or who_id[:15] in {key[:15] for key in self._records}
            if who_id and not known:
                return _error(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhoId"])
            task_id = f"00T5f0000{len(self._tasks) + 1:09d}"
            self._tasks[task_id] = copy.deepcopy(parsed)
        return Reply.json(201, {"id": task_id, "success": True, "errors": []})

    def _query(self, soql: str) -> Reply:
        if not soql.upper().startswith("SELECT ID FROM TASK"):
            return _error(400, "MALFORMED_QUERY", "only SELECT Id FROM Task WHERE ... is served by the stand-in")
        wanted = {m["field"]: m["value"].replace("\\'", "'").replace("\\\\", "\\") for m in _LITERAL.finditer(soql)}
        with self._lock:
            found = [
                {"attributes": {"type": "Task"}, "Id": task_id}
                for task_id, task in self._tasks.items()
                if all(str(task.get(field) or "") == value for field, value in wanted.items())
            ]
        return Reply.json(200, {"totalSize": len(found), "done": True, "records": found})

    # ── admin API ──────────────────────────────────────────────────────

    def _admin_config(self) -> JSONDict:
        return {"base_url": self.base_url, "client_id": self.client_id, "client_secret": self.client_secret}

    def _admin_route(self, method: str, sub: str, body: bytes) -> Reply | None:
        route = (method, sub.rstrip("/"))
        if route == ("GET", "/tasks"):
            return self._admin_list(self.tasks)
        if route == ("GET", "/records"):
            return self._admin_list(self.records)
        if route == ("POST", "/records"):
            data = self._admin_json(body)
            self.add_record(str(data.get("id")), str(data.get("type") or "Lead"))
            return self._json(201, {"ok": True})
        if route == ("POST", "/expire-tokens"):
            self.expire_tokens()
            return self._json(200, {"ok": True})
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the stand-in until Ctrl-C / SIGTERM."""
    parser = cli_parser("local.salesforce_api", "Serve a local stand-in of Salesforce OAuth and Tasks.", 8768)
    args = parser.parse_args(argv)
    standin = SalesforceApiStandIn(host=args.host, port=args.port)
    return serve_main(
        standin,
        lambda: [
            f"Salesforce stand-in: {standin.base_url}  (my_domain_url)",
            f"  client_id:     {standin.client_id}",
            f"  client_secret: {standin.client_secret}",
            f"  admin API:     {standin.admin_url}/ (requests, faults, tasks, records, expire-tokens, reset)",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
