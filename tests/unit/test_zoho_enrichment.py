"""Zoho enrichment over real HTTP against the stand-in: the refresh-token grant, the token cache, every outcome,
retries and their limits, data-centre URLs, the stand-in's own API, and a thin notification through intake and
dispatcher on moto to Unpod's sandbox."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest
import urllib3

from lead_caller.crms.zoho.api import (
    DATA_CENTRES,
    ZohoConfig,
    ZohoCredentialsError,
    ZohoRecords,
    accounts_url_of,
    api_domain_of,
    api_version,
    data_centre,
)
from lead_caller.crms.zoho.webhook import ZohoSource
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.enrichment import Fetched
from lead_caller.mapping import FieldMapping
from lead_caller.sources import compile_mappings
from local.zoho_api import ZohoApiStandIn
from tests.unit.test_zoho_source import (  # noqa: F401 - _zoho_registered: an autouse fixture
    CREDENTIALS,
    MARIA_ID,
    _zoho_registered,
    callback,
    document,
    make_intake,
    notification,
    sample,
)

JAMES_ID = "5725767000003000065"
PRIYA_ID = "5725767000003001001"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def standin() -> Iterator[ZohoApiStandIn]:
    with ZohoApiStandIn() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


def enricher(accounts_base_url: str | None, clock: Clock | None = None, **overrides: Any) -> ZohoRecords:
    """An enricher with test-sized timeouts and backoff."""
    options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 1.0,
        "max_retries": 2,
        "max_retry_after": 0.2,
        "backoff_factor": 0.01,
    }
    options.update(overrides)
    return ZohoRecords(accounts_base_url, clock=clock or Clock(), **options)


def secret(standin: ZohoApiStandIn, **changes: Any) -> dict[str, Any]:
    """The CRM secret's zoho object the stand-in accepts."""
    return {
        "client_id": standin.client_id,
        "client_secret": standin.client_secret,
        "refresh_token": standin.refresh_token,
        "dc": "com",
        **changes,
    }


def spec(record_id: str = JAMES_ID, module: str = "Leads") -> dict[str, Any]:
    return {"kind": "zoho_record", "module": module, "id": record_id, "operation": "insert", "channel_id": "1"}


def fetch_one(standin: ZohoApiStandIn, request_spec: dict[str, Any] | None = None, **overrides: Any) -> Fetched:
    [fetched] = enricher(standin.base_url, **overrides).fetch(secret(standin), [request_spec or spec()])
    return fetched


def paths(standin: ZohoApiStandIn) -> list[tuple[str, str, int | None]]:
    return [(item["method"], item["path"], item["status"]) for item in standin.requests]


TOKEN = ("POST", "/oauth/v2/token", 200)


# ── OAuth and reads over HTTP ──────────────────────────────────────────


def test_a_token_is_granted_then_the_record_read(standin):
    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    assert fetched.record is not None
    doc = document(fetched.record)
    assert (doc.name, doc.contact_number, doc.company_name) == ("James Okafor", "+14155550117", "Northwind Solar")
    assert doc.occupation == "Facilities Manager"
    assert doc.address == "San Francisco, CA, 94105, United States"
    assert doc.labels == ("Chat", "Contacted")
    assert paths(standin) == [TOKEN, ("GET", "/crm/v8/Leads", 200)]
    token_request, read = standin.requests
    assert token_request["json"] == {
        "grant_type": "refresh_token",
        "client_id": standin.client_id,
        "client_secret": "***",
        "refresh_token": "***",
    }
    assert read["authorized"] is True
    assert read["query"]["ids"] == [JAMES_ID]
    assert "Designation" in read["query"]["fields"][0].split(",")


def test_the_records_of_one_module_are_read_in_one_request(standin):
    fetched = enricher(standin.base_url).fetch(
        secret(standin), [spec(MARIA_ID), spec(PRIYA_ID, "Contacts"), spec(JAMES_ID), spec(MARIA_ID)]
    )

    assert [f.outcome for f in fetched] == ["ok", "ok", "ok", "ok"]
    assert [f.record["id"] for f in fetched if f.record] == [MARIA_ID, PRIYA_ID, JAMES_ID, MARIA_ID]
    assert paths(standin) == [TOKEN, ("GET", "/crm/v8/Leads", 200), ("GET", "/crm/v8/Contacts", 200)]
    assert standin.requests[1]["query"]["ids"] == [f"{MARIA_ID},{JAMES_ID}"]
    maria = document(fetched[0].record)
    assert maria.labels == ("inbound", "pricing", "Web Download", "Not Contacted")
    assert maria.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    priya = document(fetched[1].record)
    assert (priya.company_name, priya.occupation, priya.address) == (
        "Brightpath Analytics",
        "Head of Customer Success",
        "London, United Kingdom",
    )


def test_the_access_token_is_cached_across_calls(standin, clock):
    client = enricher(standin.base_url, clock)

    for _ in range(3):
        [fetched] = client.fetch(secret(standin), [spec()])
        assert fetched.outcome == "ok"
        clock.now += 600  # 30 minutes in all: the one-hour token is still good

    assert standin.token_grants == 1


def test_an_expiring_token_is_refreshed_before_use(standin, clock):
    client = enricher(standin.base_url, clock)
    client.fetch(secret(standin), [spec()])

    clock.now += 3600 - 299  # within the 5-minute margin before expires_in

    [fetched] = client.fetch(secret(standin), [spec()])
    assert fetched.outcome == "ok"
    assert standin.token_grants == 2


def test_a_token_refused_by_the_api_is_refreshed_once_and_the_read_retried(standin, clock):
    client = enricher(standin.base_url, clock)
    client.fetch(secret(standin), [spec()])
    standin.expire_tokens()  # revoked or expired early: the API answers 401 INVALID_TOKEN

    [fetched] = client.fetch(secret(standin), [spec()])

    assert fetched.outcome == "ok"
    assert paths(standin)[2:] == [("GET", "/crm/v8/Leads", 401), TOKEN, ("GET", "/crm/v8/Leads", 200)]


def test_a_token_refused_twice_is_permanent(standin):
    standin.enqueue_fault("status", status=401, match="/crm/")
    standin.enqueue_fault("status", status=401, match="/crm/")

    fetched = fetch_one(standin)

    assert fetched.outcome == "permanent"
    assert "Zoho refused the access token" in fetched.message
    assert standin.token_grants == 2


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"refresh_token": "1000.revoked.refresh"}, "invalid_code", id="invalid-refresh-token"),
        pytest.param({"client_secret": "wrong-secret"}, "invalid_client", id="invalid-client"),
    ],
)
def test_a_refused_grant_is_permanent_and_never_quoted(standin, changes, error):
    fetched, other = enricher(standin.base_url).fetch(secret(standin, **changes), [spec(), spec(PRIYA_ID, "Contacts")])

    assert (fetched.outcome, other.outcome) == ("permanent", "permanent")
    assert other.message == fetched.message
    assert error in fetched.message
    assert "1000.revoked.refresh" not in fetched.message
    assert "wrong-secret" not in fetched.message
    assert paths(standin) == [TOKEN]  # nothing read without a token


@pytest.mark.parametrize(
    ("credentials", "words"),
    [
        pytest.param({}, "client_id, client_secret, refresh_token", id="empty"),
        pytest.param({"client_id": "a", "client_secret": "b"}, "refresh_token", id="no-refresh-token"),
        pytest.param({"client_id": "a", "client_secret": "b", "refresh_token": "c", "dc": "mars"}, "dc", id="bad-dc"),
        pytest.param(
            {"client_id": "a", "client_secret": "b", "refresh_token": "c\nd"}, "cannot have", id="pasted-newline"
        ),
        pytest.param(
            {"client_id": "a", "client_secret": "b", "refresh_token": "c", "api_version": "latest"},
            "api_version",
            id="bad-version",
        ),
    ],
)
def test_unusable_credentials_are_permanent_without_asking(standin, credentials, words):
    fetched = enricher(standin.base_url).fetch(credentials, [spec(), spec(MARIA_ID)])

    assert [f.outcome for f in fetched] == ["permanent", "permanent"]
    assert words in fetched[0].message
    assert standin.requests == []


def test_a_missing_record_is_gone_and_the_others_found(standin):
    standin.delete_record("Leads", JAMES_ID)

    fetched = enricher(standin.base_url).fetch(secret(standin), [spec(), spec(MARIA_ID)])

    assert [f.outcome for f in fetched] == ["gone", "ok"]
    assert "not returned" in fetched[0].message


def test_no_record_at_all_is_204_and_gone(standin):
    standin.delete_record("Leads", JAMES_ID)

    fetched = fetch_one(standin)

    assert fetched.outcome == "gone"
    assert paths(standin)[-1] == ("GET", "/crm/v8/Leads", 204)


def test_a_request_naming_no_record_is_permanent(standin):
    fetched = enricher(standin.base_url).fetch(
        secret(standin), [spec("not-digits"), spec(JAMES_ID, "Deals"), {"kind": "zoho_record"}, spec()]
    )

    assert [f.outcome for f in fetched] == ["permanent", "permanent", "permanent", "ok"]


def test_429_then_success_is_retried_in_place(standin):
    standin.enqueue_fault("status", status=429, headers={"Retry-After": "1"}, match="/crm/")

    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    assert paths(standin) == [TOKEN, ("GET", "/crm/v8/Leads", 429), ("GET", "/crm/v8/Leads", 200)]


def test_429_exhausted_is_transient_and_the_rest_of_the_batch_is_not_asked(standin):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "10"}, match="/crm/")

    fetched = enricher(standin.base_url).fetch(secret(standin), [spec(), spec(PRIYA_ID, "Contacts")])

    assert [f.outcome for f in fetched] == ["transient", "transient"]
    assert "429" in fetched[0].message
    assert "not asked" in fetched[1].message
    assert paths(standin) == [TOKEN, *[("GET", "/crm/v8/Leads", 429)] * 3]


@pytest.mark.parametrize(("failures", "outcome"), [(1, "ok"), (3, "transient")])
def test_500_is_retried_then_transient(standin, failures, outcome):
    for _ in range(failures):
        standin.enqueue_fault("status", status=500, match="/crm/")

    assert fetch_one(standin).outcome == outcome


def test_a_slow_answer_is_read_again(standin):
    standin.enqueue_fault("delay", seconds=2.0, match="/crm/")

    assert fetch_one(standin, read_timeout=0.3).outcome == "ok"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"kind": "status", "status": 503}, id="accounts-503"),
        pytest.param(
            {
                "kind": "status",
                "status": 400,
                "body": {
                    "error_description": "You have made too many requests continuously. Please try again later.",
                    "error": "Access Denied",
                    "status": "failure",
                },
            },
            id="accounts-throttled",
        ),
        pytest.param({"kind": "status", "status": 200, "body": "<html>maintenance</html>"}, id="accounts-html"),
    ],
)
def test_token_endpoint_trouble_is_transient(standin, fault):
    kind = fault.pop("kind")
    for _ in range(3):
        standin.enqueue_fault(kind, match="/oauth/", **fault)

    fetched = fetch_one(standin)

    assert fetched.outcome == "transient"
    assert all(path == "/oauth/v2/token" for _, path, _ in paths(standin))


def test_an_unreachable_zoho_is_transient():
    with ZohoApiStandIn() as gone:
        base_url = gone.base_url
        credentials = secret(gone)
    fetched = enricher(base_url, max_retries=0).fetch(credentials, [spec()])

    assert fetched[0].outcome == "transient"
    assert "unreachable" in fetched[0].message


def test_a_record_read_with_an_unexpected_error_is_permanent(standin):
    body = {"code": "NO_PERMISSION", "details": {}, "message": "permission denied", "status": "error"}
    standin.enqueue_fault("status", status=403, body=body, match="/crm/")

    fetched = fetch_one(standin)

    assert fetched.outcome == "permanent"
    assert "NO_PERMISSION" in fetched.message


def test_extra_fields_and_the_api_version_come_from_the_secret(standin):
    fetched = enricher(standin.base_url).fetch(
        secret(standin, api_version="7", extra_fields=["Call_Objective__c", "bad field!", 3]), [spec()]
    )

    assert fetched[0].outcome == "ok"
    read = standin.requests[-1]
    assert read["path"] == "/crm/v7/Leads"
    fields = read["query"]["fields"][0].split(",")
    assert fields[-1] == "Call_Objective__c"
    assert "bad field!" not in fields


def test_an_api_base_url_override_wins_over_the_announced_api_domain(standin):
    with ZohoApiStandIn() as api:
        api.add_record("Leads", {"id": "1", "Last_Name": "Elsewhere", "Phone": "+1 415 555 0100"})
        # the token of the accounts stand-in is unknown to the other stand-in: make it known
        client = enricher(standin.base_url, api_base_url=api.base_url)
        session = client.session(ZohoConfig.from_credentials(secret(standin)))
        assert session.api_domain == api.base_url
        with api._lock:
            api._tokens[session.access_token] = float("inf")

        [fetched] = client.fetch(secret(standin), [spec("1")])

    assert fetched.outcome == "ok"
    assert fetched.record is not None
    assert fetched.record["Last_Name"] == "Elsewhere"
    assert [path for _, path, _ in paths(standin)] == ["/oauth/v2/token"]


def test_no_token_email_or_phone_is_logged(standin, captured_logs):
    standin.enqueue_fault("status", status=500, match="/crm/")
    standin.enqueue_fault("status", status=500, match="/crm/")
    standin.enqueue_fault("status", status=500, match="/crm/")
    client = enricher(standin.base_url)

    client.fetch(secret(standin), [spec()])
    client.fetch(secret(standin, refresh_token="1000.revoked-refresh-token"), [spec()])
    client.fetch(secret(standin), [spec(MARIA_ID)])

    logs = captured_logs()
    assert "Zoho record read failed" in logs
    assert "Zoho token refresh failed" in logs
    tokens = [item for item in json.dumps(standin.requests).split('"') if item.startswith("1000.")]
    for value in (
        standin.client_secret,
        standin.refresh_token,
        "1000.revoked-refresh-token",
        "maria.gonzalez@acme-logistics.example",
        "555-0142",
        *tokens,
    ):
        assert value not in logs


# ── data centres ───────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("dc", "accounts", "api"),
    [
        ("com", "https://accounts.zoho.com", "https://www.zohoapis.com"),
        ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        ("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
        ("com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
        ("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        ("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        ("com.cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
        ("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
        ("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
        ("ae", "https://accounts.zoho.ae", "https://www.zohoapis.ae"),
    ],
)
def test_each_data_centre_has_its_accounts_server_and_api_domain(dc, accounts, api):
    assert (accounts_url_of(dc), api_domain_of(dc)) == (accounts, api)
    config = ZohoConfig.from_credentials({"client_id": "a", "client_secret": "b", "refresh_token": "c", "dc": dc})
    assert ZohoRecords().accounts_url(config) == accounts
    assert ZohoRecords("http://127.0.0.1:1").accounts_url(config) == "http://127.0.0.1:1"


def test_every_data_centre_is_tested():
    assert len(DATA_CENTRES) == 10


@pytest.mark.parametrize(
    ("spelling", "dc"),
    [
        (None, "com"),
        ("", "com"),
        ("US", "com"),
        (".eu", "eu"),
        ("au", "com.au"),
        ("cn", "com.cn"),
        ("zohocloud.ca", "ca"),
        ("accounts.zoho.in", "in"),
        ("https://accounts.zoho.com.au", "com.au"),
        ("zoho.jp", "jp"),
    ],
)
def test_data_centre_spellings(spelling, dc):
    assert data_centre(spelling) == dc


@pytest.mark.parametrize("spelling", ["mars", "zoho.evil.example", "com.br"])
def test_unknown_data_centres_are_refused(spelling):
    with pytest.raises(ZohoCredentialsError, match="not a Zoho data centre"):
        data_centre(spelling)


@pytest.mark.parametrize(("value", "version"), [(None, "v8"), ("8", "v8"), ("v7", "v7"), (6, "v6"), ("v2.1", "v2.1")])
def test_api_versions(value, version):
    assert api_version(value) == version


@pytest.mark.parametrize(
    ("announced", "used"),
    [
        ("https://www.zohoapis.eu", "https://www.zohoapis.eu"),
        ("https://www.zohoapis.com.au/", "https://www.zohoapis.com.au"),
        ("https://evil.example", "https://www.zohoapis.in"),
        ("http://www.zohoapis.eu", "https://www.zohoapis.in"),
        ("https://www.zohoapis.eu.evil.example", "https://www.zohoapis.in"),
        ("https://www.zohoapis.eu/path", "https://www.zohoapis.in"),
        (None, "https://www.zohoapis.in"),
    ],
)
def test_the_announced_api_domain_is_used_only_when_it_is_a_zoho_api_host(announced, used):
    config = ZohoConfig.from_credentials({"client_id": "a", "client_secret": "b", "refresh_token": "c", "dc": "in"})

    assert ZohoRecords()._api_domain(config, announced) == used


def test_a_stand_in_accounts_server_may_announce_itself():
    config = ZohoConfig.from_credentials({"client_id": "a", "client_secret": "b", "refresh_token": "c"})

    assert ZohoRecords("http://127.0.0.1:9")._api_domain(config, "http://127.0.0.1:9") == "http://127.0.0.1:9"


def test_the_token_is_granted_by_the_data_centres_accounts_server_and_used_on_the_announced_domain(standin):
    """dc=eu against a stand-in: the grant goes to the configured accounts server, reads to its api_domain."""
    fetched = enricher(standin.base_url).fetch(secret(standin, dc="eu"), [spec()])

    assert fetched[0].outcome == "ok"
    assert paths(standin) == [TOKEN, ("GET", "/crm/v8/Leads", 200)]


# ── the stand-in's own HTTP API ────────────────────────────────────────


def test_the_standin_speaks_zohos_oauth_and_record_api(standin):
    http = urllib3.PoolManager()
    granted = http.request(
        "POST",
        f"{standin.base_url}/oauth/v2/token?grant_type=refresh_token&client_id={standin.client_id}"
        f"&client_secret={standin.client_secret}&refresh_token={standin.refresh_token}",
    )
    token = json.loads(granted.data)
    wrong = http.request(
        "POST",
        f"{standin.base_url}/oauth/v2/token",
        body=f"grant_type=refresh_token&client_id={standin.client_id}&client_secret=x&refresh_token=y",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    bad_code = http.request(
        "POST",
        f"{standin.base_url}/oauth/v2/token?grant_type=refresh_token&client_id={standin.client_id}"
        f"&client_secret={standin.client_secret}&refresh_token=nope",
    )
    auth = {"Authorization": f"Zoho-oauthtoken {token['access_token']}"}
    one = http.request("GET", f"{standin.base_url}/crm/v8/Leads/{MARIA_ID}", headers=auth)
    missing = http.request("GET", f"{standin.base_url}/crm/v8/Leads/1", headers=auth)
    unauthorized = http.request("GET", f"{standin.base_url}/crm/v8/Leads/{MARIA_ID}")
    no_params = http.request("GET", f"{standin.base_url}/crm/v8/Leads", headers=auth)
    bad_module = http.request("GET", f"{standin.base_url}/crm/v8/Potentials?ids=1", headers=auth)

    assert (granted.status, token["api_domain"], token["token_type"], token["expires_in"]) == (
        200,
        standin.base_url,
        "Bearer",
        3600,
    )
    assert (wrong.status, json.loads(wrong.data)) == (200, {"error": "invalid_client"})
    assert (bad_code.status, json.loads(bad_code.data)) == (200, {"error": "invalid_code"})
    assert one.status == 200
    assert json.loads(one.data)["data"][0]["Tag"][0]["name"] == "inbound"
    assert (missing.status, missing.data) == (204, b"")
    assert (unauthorized.status, json.loads(unauthorized.data)["code"]) == (401, "INVALID_TOKEN")
    assert (no_params.status, json.loads(no_params.data)["code"]) == (400, "REQUIRED_PARAM_MISSING")
    assert (bad_module.status, json.loads(bad_module.data)["code"]) == (400, "INVALID_MODULE")
    recorded = json.dumps(standin.requests)
    for value in (standin.client_secret, standin.refresh_token, token["access_token"]):
        assert value not in recorded


def test_the_standin_admin_api(standin):
    http = urllib3.PoolManager()
    added = http.request(
        "POST",
        f"{standin.admin_url}/records",
        body=json.dumps({"module": "Leads", "record": {"id": "42", "Last_Name": "New", "Phone": "+1 415 555 0100"}}),
    )
    bad = http.request("POST", f"{standin.admin_url}/records", body=json.dumps({"module": "Deals", "record": {}}))
    fault = http.request("POST", f"{standin.admin_url}/faults", body=json.dumps({"kind": "status", "status": 502}))
    bad_fault = http.request("POST", f"{standin.admin_url}/faults", body=json.dumps({"kind": "explode"}))

    assert (added.status, bad.status, fault.status, bad_fault.status) == (201, 400, 201, 400)
    assert "42" in standin.records["Leads"]
    assert json.loads(http.request("GET", f"{standin.admin_url}/faults").data)["count"] == 1
    assert json.loads(http.request("GET", f"{standin.admin_url}/config").data)["client_id"] == standin.client_id
    assert http.request("DELETE", f"{standin.admin_url}/records/Leads/42").status == 200
    assert http.request("DELETE", f"{standin.admin_url}/records/Leads/42").status == 404
    assert http.request("POST", f"{standin.admin_url}/expire-tokens").status == 200
    assert json.loads(http.request("GET", f"{standin.admin_url}/watches").data) == {"count": 0, "data": []}
    assert http.request("POST", f"{standin.admin_url}/reset").status == 200
    assert standin.pending_faults == []
    assert sorted(standin.records["Leads"]) == [MARIA_ID, JAMES_ID]


class _Capture(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_standin_posts_callbacks_that_the_source_accepts(standin):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Capture.received = []
    try:
        notify_url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/zoho?src=zoho-prod"
        http = urllib3.PoolManager()
        granted = json.loads(
            http.request(
                "POST",
                f"{standin.base_url}/oauth/v2/token",
                body=f"grant_type=refresh_token&client_id={standin.client_id}&client_secret={standin.client_secret}"
                f"&refresh_token={standin.refresh_token}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).data
        )
        watch = {
            "channel_id": CREDENTIALS["channel_id"],
            "events": ["Leads.create"],
            "token": CREDENTIALS["notification_token"],
            "notify_url": notify_url,
            "return_affected_field_values": True,
        }
        enabled = http.request(
            "POST",
            f"{standin.base_url}/crm/v8/actions/watch",
            body=json.dumps({"watch": [watch]}),
            headers={"Authorization": f"Zoho-oauthtoken {granted['access_token']}"},
        )
        assert enabled.status == 200
        assert standin.watches[0]["expiry_defaulted"] is True  # no channel_expiry: one hour

        sent = standin.notify("Leads", [MARIA_ID, JAMES_ID])
        ignored = standin.notify("Leads", [MARIA_ID], "update")
    finally:
        server.shutdown()
        server.server_close()

    assert sent == [(notify_url, 200)]
    assert ignored == []
    [raw] = _Capture.received
    leads = ZohoSource().parse(callback(raw), CREDENTIALS)
    ZohoSource().authenticate(callback(raw), CREDENTIALS)
    assert [lead.record_id for lead in leads] == [MARIA_ID, JAMES_ID]
    assert json.loads(raw)["query_params"] == {"src": "zoho-prod"}
    assert document(leads[0].record).company_name == "Acme Logistics"


# ── end to end: notification -> queue -> dispatcher -> Zoho stand-in -> Unpod sandbox ──


@pytest.fixture
def zoho_dispatcher(settings, store, client, credentials, standin) -> Dispatcher:
    return Dispatcher(
        settings,
        store,
        client,
        lambda: credentials,
        enrichers={"zoho_record": enricher(standin.base_url)},
        crm_credentials=lambda: {"zoho": secret(standin)},
        mappings={**compile_mappings(settings), "zoho": FieldMapping.compile(ZohoSource.default_mapping)},
    )


def deliver(settings, body: Any) -> QueuedRecord:
    """POST a notification through the intake and take its message off the queue."""
    reply = make_intake(settings).handle(callback(body))
    assert reply.status == 200
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return QueuedRecord(str(uuid.uuid4()), message["Body"], 1)


def test_a_thin_notification_becomes_a_call_to_the_fetched_record(settings, store, sandbox, zoho_dispatcher):
    result = zoho_dispatcher.dispatch([deliver(settings, json.loads(sample("notification-thin")))])

    assert result.retry == {}
    [task] = sandbox.created_tasks
    assert task["input"]["name"] == "James Okafor"
    assert task["input"]["contact_number"] == "+14155550117"
    assert task["input"]["company_name"] == "Northwind Solar"
    assert task["input"]["occupation"] == "Facilities Manager"
    assert task["input"]["document_id"] == f"zoho-{JAMES_ID}"
    item = store.get(f"zoho#{JAMES_ID}")
    assert item["status"] == "call_requested"
    assert item["document"]["company_name"] == "Northwind Solar"


def test_a_notification_whose_record_was_deleted_is_rejected(settings, store, sandbox, standin, zoho_dispatcher):
    standin.delete_record("Leads", JAMES_ID)

    result = zoho_dispatcher.dispatch([deliver(settings, json.loads(sample("notification-thin")))])

    assert result.retry == {}
    item = store.get(f"zoho#{JAMES_ID}")
    assert item["status"] == "rejected"
    assert "no longer exists" in item["reason"]
    assert sandbox.requests == []


def test_a_revoked_refresh_token_fails_the_lead(settings, store, sandbox, standin, zoho_dispatcher):
    zoho_dispatcher.crm_credentials = lambda: {"zoho": secret(standin, refresh_token="1000.revoked")}

    result = zoho_dispatcher.dispatch([deliver(settings, json.loads(sample("notification-thin")))])

    assert result.retry == {}
    item = store.get(f"zoho#{JAMES_ID}")
    assert item["status"] == "failed"
    assert "invalid_code" in item["reason"]
    assert sandbox.requests == []


def test_a_throttled_read_is_left_for_sqs_to_retry(settings, store, sandbox, standin, zoho_dispatcher):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "2"}, match="/crm/")
    record = deliver(settings, notification(ids=[MARIA_ID], affected_values=None))

    result = zoho_dispatcher.dispatch([record])

    assert record.message_id in result.retry
    assert store.get(f"zoho#{MARIA_ID}")["status"] == "dispatching"
    assert sandbox.requests == []

    retried = zoho_dispatcher.dispatch([QueuedRecord(record.message_id, record.body, 2)])

    assert retried.retry == {}
    assert store.get(f"zoho#{MARIA_ID}")["status"] == "call_requested"
    assert standin.token_grants == 1  # the token cached across invocations of one container
