"""Renewing the Zoho Notification API channel against the stand-in: enable when absent, update when present,
an expiry under a week, and Zoho's refusals and outages as exceptions the scheduled function fails on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lead_caller.crms.zoho.watch import (
    DEFAULT_EVENTS,
    WATCH_LIFETIME,
    WatchPermanentError,
    WatchTransientError,
    channel_expiry,
    renew_watch,
    watch_settings,
)
from lead_caller.crms.zoho.webhook import ZohoSource
from local.zoho_api import ZohoApiStandIn
from tests.unit.test_zoho_enrichment import enricher, secret
from tests.unit.test_zoho_source import CHANNEL_ID, CREDENTIALS, NOTIFICATION_TOKEN, callback

NOTIFY_URL = "https://abcdefghij.execute-api.us-east-1.amazonaws.com/webhooks/zoho?src=zoho-prod"


class WallClock:
    """The stand-in's idea of now, which a test can move."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def standin(wall: WallClock) -> Iterator[ZohoApiStandIn]:
    with ZohoApiStandIn(clock=wall) as running:
        yield running


def renew(standin: ZohoApiStandIn, now: datetime, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "channel_id": CHANNEL_ID,
        "token": NOTIFICATION_TOKEN,
        "now": now,
        "client": enricher(standin.base_url),
    }
    options.update(overrides)
    credentials = options.pop("credentials", secret(standin))
    notify_url = options.pop("notify_url", NOTIFY_URL)
    return renew_watch(credentials, notify_url, **options)


def calls(standin: ZohoApiStandIn) -> list[tuple[str, int | None]]:
    return [(item["method"], item["status"]) for item in standin.requests if item["path"].endswith("/actions/watch")]


def test_the_channel_is_enabled_when_absent(standin, wall):
    result = renew(standin, wall.now)

    assert result.action == "enabled"
    assert result.enabled == DEFAULT_EVENTS == ("Leads.create", "Contacts.create")
    assert calls(standin) == [("GET", 204), ("POST", 200)]
    [posted] = [item["json"] for item in standin.requests if item["method"] == "POST" and "watch" in item["path"]]
    assert posted == {
        "watch": [
            {
                "channel_id": CHANNEL_ID,
                "channel_expiry": result.channel_expiry,
                "token": "***",
                "notify_url": NOTIFY_URL,
                "return_affected_field_values": True,
                "events": ["Leads.create", "Contacts.create"],
            }
        ]
    }
    watches = {watch["resource_name"]: watch for watch in standin.watches}
    assert sorted(watches) == ["Contacts", "Leads"]
    for module, watch in watches.items():
        assert watch["events"] == [f"{module}.create"]
        assert watch["token"] == NOTIFICATION_TOKEN
        assert watch["notify_url"] == NOTIFY_URL
        assert watch["return_affected_field_values"] is True
        assert watch["expiry_defaulted"] is False  # Zoho kept our expiry: under a week
        assert datetime.fromisoformat(watch["channel_expiry"]) == datetime.fromisoformat(result.channel_expiry)
        assert result.expiries[module] == watch["channel_expiry"]


def test_the_expiry_is_six_days_23_hours_ahead_under_zohos_week():
    now = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)

    expiry = datetime.fromisoformat(channel_expiry(now))

    assert channel_expiry(now) == "2026-01-07T23:00:00+00:00"
    assert expiry - now < timedelta(days=7)
    assert timedelta(days=6, hours=23) == WATCH_LIFETIME
    assert channel_expiry(datetime(2026, 1, 1)) == "2026-01-07T23:00:00+00:00"  # naive = UTC
    ist = datetime(2026, 1, 1, 5, 30, tzinfo=datetime.fromisoformat("2026-01-01T00:00:00+05:30").tzinfo)
    assert channel_expiry(ist) == "2026-01-07T23:00:00+00:00"


def test_a_present_channel_is_updated_and_extended(standin, wall):
    renew(standin, wall.now)
    first = {watch["resource_name"]: watch["channel_expiry"] for watch in standin.watches}
    wall.now += timedelta(days=1)

    result = renew(standin, wall.now)

    assert result.action == "updated"
    assert result.updated == DEFAULT_EVENTS
    assert calls(standin)[2:] == [("GET", 200), ("PATCH", 200)]
    second = {watch["resource_name"]: watch["channel_expiry"] for watch in standin.watches}
    for module in ("Leads", "Contacts"):
        assert datetime.fromisoformat(second[module]) - datetime.fromisoformat(first[module]) == timedelta(days=1)


def test_a_channel_watching_one_module_is_updated_and_completed(standin, wall):
    renew(standin, wall.now, events=("Leads.create",))

    result = renew(standin, wall.now)

    assert (result.updated, result.enabled, result.action) == (
        ("Leads.create",),
        ("Contacts.create",),
        "enabled+updated",
    )
    assert calls(standin)[2:] == [("GET", 200), ("PATCH", 200), ("POST", 200)]
    assert sorted(watch["resource_name"] for watch in standin.watches) == ["Contacts", "Leads"]


def test_an_expired_channel_is_enabled_again(standin, wall):
    renew(standin, wall.now)
    wall.now += timedelta(days=8)

    result = renew(standin, wall.now)

    assert result.action == "enabled"
    assert calls(standin)[2:] == [("GET", 204), ("POST", 200)]


def test_a_callback_of_the_renewed_channel_is_accepted_by_the_source(standin, wall):
    renew(standin, wall.now)
    [leads_watch] = [watch for watch in standin.watches if watch["resource_name"] == "Leads"]

    body = standin.callback_body(leads_watch, ["5725767000003000064"])

    ZohoSource().authenticate(callback(body), CREDENTIALS)
    [lead] = ZohoSource().parse(callback(body), CREDENTIALS)
    assert lead.record_id == "5725767000003000064"


def test_a_shortened_expiry_is_logged(standin, wall, captured_logs):
    wall.now -= timedelta(days=2)  # the stand-in's clock is behind: our expiry is more than a week ahead for it

    result = renew(standin, datetime.now(UTC))

    assert all(watch["expiry_defaulted"] for watch in standin.watches)
    assert result.action == "enabled"
    assert "Zoho shortened the channel expiry" in captured_logs()


# ── errors ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(
            {
                "watch": [
                    {
                        "code": "INVALID_DATA",
                        "details": {"api_name": "notify_url"},
                        "message": "invalid data",
                        "status": "error",
                    }
                ]
            },
            "INVALID_DATA",
            id="invalid-data",
        ),
        pytest.param(
            {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope", "status": "error"},
            "OAUTH_SCOPE_MISMATCH",
            id="scope",
        ),
    ],
)
def test_a_zoho_refusal_of_the_watch_is_a_permanent_error(standin, wall, body, words):
    standin.enqueue_fault("status", status=400, body=body, match="/actions/watch")

    with pytest.raises(WatchPermanentError, match=words):
        renew(standin, wall.now)


def test_an_error_entry_in_a_200_answer_is_a_permanent_error(standin, wall):
    standin.enqueue_fault("status", status=200, body={"watch": []}, match="/actions/watch")  # GET: nothing watched
    error = {"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "events"}, "message": "missing", "status": "error"}
    standin.enqueue_fault("status", status=200, body={"watch": [error]}, match="/actions/watch")

    with pytest.raises(WatchPermanentError, match="MANDATORY_NOT_FOUND"):
        renew(standin, wall.now)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_an_outage_is_a_transient_error(standin, wall, status):
    for _ in range(3):
        standin.enqueue_fault("status", status=status, match="/actions/watch")

    with pytest.raises(WatchTransientError, match=str(status)) as raised:
        renew(standin, wall.now)

    assert raised.value.permanent is False
    assert standin.watches == []


def test_an_unreachable_zoho_is_a_transient_error(wall):
    with ZohoApiStandIn() as gone:
        base_url, credentials = gone.base_url, secret(gone)

    with pytest.raises(WatchTransientError, match="unreachable"):
        renew_watch(
            credentials,
            NOTIFY_URL,
            channel_id=CHANNEL_ID,
            token=NOTIFICATION_TOKEN,
            now=wall.now,
            client=enricher(base_url, max_retries=0),
        )


def test_a_refused_refresh_token_is_a_permanent_error(standin, wall):
    with pytest.raises(WatchPermanentError, match="invalid_code") as raised:
        renew(standin, wall.now, credentials=secret(standin, refresh_token="1000.revoked"))

    assert raised.value.permanent is True
    assert calls(standin) == []


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        pytest.param({"token": "t" * 51}, "1-50 characters", id="token-too-long"),
        pytest.param({"token": ""}, "1-50 characters", id="no-token"),
        pytest.param({"channel_id": "channel-1"}, "channel_id", id="channel-not-a-number"),
        pytest.param({"notify_url": "/webhooks/zoho"}, "absolute URL", id="relative-url"),
        pytest.param({"events": ("Deals.create",)}, "modules", id="other-module"),
        pytest.param({"lifetime": timedelta(days=8)}, "one week", id="lifetime-over-a-week"),
        pytest.param({"credentials": {"client_id": "a"}}, "client_secret", id="no-oauth-credentials"),
    ],
)
def test_bad_settings_are_permanent_errors_before_asking_zoho(standin, wall, overrides, words):
    with pytest.raises(WatchPermanentError, match=words):
        renew(standin, wall.now, **overrides)

    assert standin.requests == []


def test_watch_settings_come_from_the_webhook_secret():
    assert watch_settings(CREDENTIALS) == (CHANNEL_ID, NOTIFICATION_TOKEN)
    assert watch_settings({"channel_id": 1000000068001, "notification_token": " t "}) == ("1000000068001", "t")
    with pytest.raises(WatchPermanentError, match="channel_id"):
        watch_settings({"notification_token": "t"})
    with pytest.raises(WatchPermanentError, match="notification_token"):
        watch_settings({"channel_id": "1"})


def test_no_token_is_logged(standin, wall, captured_logs):
    renew(standin, wall.now)
    renew(standin, wall.now)
    with pytest.raises(WatchPermanentError):
        renew(standin, wall.now, credentials=secret(standin, refresh_token="1000.revoked-token-xyz"))

    logs = captured_logs()
    assert "Zoho watch renewed" in logs
    for value in (NOTIFICATION_TOKEN, standin.client_secret, standin.refresh_token, "1000.revoked-token-xyz"):
        assert value not in logs
