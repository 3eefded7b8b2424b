"""The calling policy: the lead's country and time zone, calling hours across DST changes,
blackout dates, the do-not-call list, CRM opt-out flags, consent and one call per phone number.

Pure rules are tested directly; the paths through the webhook and the dispatcher run on moto
and the Unpod sandbox over HTTP."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from lead_caller.config import ConfigError, RouteRule, Routing, Settings
from lead_caller.contacts import ContactDocument
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.policy import DAYS, compile_policy, policy_for, read_facts
from lead_caller.queue import LeadQueue
from lead_caller.secrets import webhook_credentials
from lead_caller.sources.base import WebhookRequest
from lead_caller.store import LeadStore
from lead_caller.suppression import SuppressionList, phone_hash
from lead_caller.timezones import country_code, lead_zone, zone_name
from local.signing import LOCAL_BEARER_TOKEN

BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}


def policy(**overrides: Any):
    from lead_caller.policy import DEFAULT_POLICY

    return compile_policy({**DEFAULT_POLICY, **overrides}, "test")


def at(zone: str, *args: int) -> datetime:
    return datetime(*args).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)  # type: ignore[arg-type]


def local(moment: datetime | None, zone: str) -> str:
    assert moment is not None
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


# --- the lead's country --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("India", "IN"),
        ("IN", "IN"),
        ("ind", "IN"),
        ("United States", "US"),
        ("USA", "US"),
        ("United States of America", "US"),
        ("GBR", "GB"),
        ("United Kingdom", "GB"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("Brasil", None),
        ("Brazil", "BR"),
        ("México", "MX"),
        ("Côte d'Ivoire", "CI"),
        ("Narnia", None),
        ("", None),
    ],
)
def test_country_names_and_iso_codes(text, code):
    assert country_code(text) == code


@pytest.fixture
def intake(settings) -> Intake:
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=partial(webhook_credentials, settings),
    )


def post(intake: Intake, body: Any, source: str = "generic") -> dict[str, Any]:
    raw = json.dumps(body).encode()
    reply = intake.handle(
        WebhookRequest(source, "POST", f"/webhooks/{source}", "", BEARER, raw, "https://x.test", time.time())
    )
    result: dict[str, Any] = json.loads(reply.body)
    result["status"] = reply.status
    return result


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [LeadMessage.from_json(message["Body"]) for message in messages]


@pytest.mark.parametrize(
    "where",
    [
        {"country": "India"},
        {"country": "IN"},
        {"country": "IND"},
        {"country": "india"},
        {"address": {"city": "Pune", "country": "India"}},
        {"country_code": "in"},
    ],
)
def test_a_national_number_is_read_in_the_leads_own_country(intake, settings, where):
    answer = post(intake, {"id": "in-1", "name": "Asha", "phone": "98765 43210", **where})

    assert answer["status"] == 202, answer
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.contact_number == "+919876543210"
    assert message.facts["phone_region"] == "IN"
    assert message.facts["phone_region_rule"] == "country"


def test_the_leads_country_wins_over_the_default_region(intake, settings):
    intake.settings = dataclasses.replace(settings, default_phone_region="IN")

    post(intake, {"id": "us-1", "name": "Sam", "phone": "(415) 555-0123", "country": "US"})

    [message] = queued(settings)
    assert message.document is not None
    assert message.document.contact_number == "+14155550123"


def test_a_rejection_says_which_region_was_assumed_and_why(intake, settings):
    answer = post(intake, {"id": "x-1", "name": "Asha", "phone": "98765 43210"})
    assert answer["results"][0]["reason"] == (
        "contact_number: not a valid phone number (a national number is read as US, from DEFAULT_PHONE_REGION)"
    )

    answer = post(intake, {"id": "x-2", "name": "Sam", "phone": "555 0123", "country": "India"})
    assert "read as IN, from the lead's country" in answer["results"][0]["reason"]


def test_a_routes_phone_region_is_the_fallback(intake, settings):
    routing = {"generic": Routing(calling_policy={"phone_region": "GB"})}
    intake.settings = dataclasses.replace(settings, source_routing=routing)

    post(intake, {"id": "gb-1", "name": "Ada", "phone": "020 7946 0018"})

    [message] = queued(settings)
    assert message.document is not None
    assert message.document.contact_number == "+442079460018"
    assert message.facts["phone_region_rule"] == "route"


def test_a_routing_rules_policy_overrides_its_sources_for_the_leads_it_matches(intake, settings):
    """The source's policy is read once per delivery; a lead whose rule carries a calling policy gets
    that one instead, the next lead of the same delivery the source's again."""
    rule = RouteRule("market", ("uk",), None, {"calling_policy": {"phone_region": "GB"}})
    routing = {"generic": Routing(calling_policy={"phone_region": "IN"}, rules=(rule,))}
    intake.settings = dataclasses.replace(settings, source_routing=routing)

    post(
        intake,
        [
            {"id": "uk-1", "name": "Ada", "phone": "020 7946 0018", "market": "UK"},
            {"id": "in-1", "name": "Asha", "phone": "98765 43210"},
        ],
    )

    by_id = {message.record_id: message for message in queued(settings)}
    numbers = {
        record_id: message.document.contact_number if message.document else None for record_id, message in by_id.items()
    }
    assert numbers == {"uk-1": "+442079460018", "in-1": "+919876543210"}
    assert (by_id["uk-1"].facts["phone_region"], by_id["in-1"].facts["phone_region"]) == ("GB", "IN")


@pytest.mark.parametrize(
    ("source", "record", "country", "state"),
    [
        ("salesforce", {"CountryCode": "IN", "StateCode": "MH"}, "IN", "MH"),
        ("salesforce", {"MailingCountry": "Canada", "MailingState": "Ontario"}, "CA", "Ontario"),
        ("hubspot", {"country": "United States", "state": "TX"}, "US", "TX"),
        ("zoho", {"Country": "Australia", "State": "Victoria"}, "AU", "Victoria"),
        ("pipedrive", {"postal_address": {"country": "Brazil", "admin_area_level_1": "SP"}}, "BR", "SP"),
    ],
)
def test_each_crms_country_and_state_properties_are_read(settings, source, record, country, state):
    facts = read_facts(settings, source, record)

    assert (facts["country"], facts["state"], facts["phone_region"]) == (country, state, country)


# --- the lead's time zone ------------------------------------------------------------------


def test_an_explicit_crm_time_zone_wins_hubspot_style_included():
    assert zone_name("america_slash_los_angeles") == "America/Los_Angeles"
    assert zone_name("Europe/paris") == "Europe/Paris"
    assert zone_name("Mars/Olympus") is None
    zone = lead_zone("america_slash_los_angeles", "US", "NY", "+12125550100", "UTC")
    assert (zone.zones, zone.rule) == (("America/Los_Angeles",), "crm_field")


@pytest.mark.parametrize(
    ("country", "state", "zones"),
    [
        ("IN", None, ("Asia/Kolkata",)),
        ("DE", "Bayern", ("Europe/Berlin",)),
        ("US", "CA", ("America/Los_Angeles",)),
        ("US", "New York", ("America/New_York",)),
        ("US", "US-AZ", ("America/Phoenix",)),
        ("US", "TX", ("America/Chicago", "America/Denver")),
        ("CA", "BC", ("America/Vancouver",)),
        ("AU", "Western Australia", ("Australia/Perth",)),
        ("BR", "Amazonas", ("America/Manaus", "America/Eirunepe")),
        ("MX", "Baja California", ("America/Tijuana",)),
        ("RU", "Novosibirskaya oblast'", ("Asia/Novosibirsk",)),
        ("RU", "Sverdlovsk Oblast", ("Asia/Yekaterinburg",)),
        ("RU", "Moscow", ("Europe/Moscow",)),
    ],
)
def test_the_address_decides_the_zone(country, state, zones):
    zone = lead_zone(None, country, state, None, "UTC")

    assert (zone.zones, zone.rule) == (zones, "address")


def test_the_phone_number_decides_when_the_address_cannot():
    zone = lead_zone(None, "US", None, "+14155550123", "UTC")
    assert (zone.zones, zone.rule) == (("America/Los_Angeles",), "phone")
    # libphonenumber's old alias Asia/Calcutta comes back under the country's own name
    zone = lead_zone(None, None, None, "+919876543210", "UTC")
    assert (zone.zones, zone.rule) == (("Asia/Kolkata",), "phone")


def test_the_routes_default_zone_is_the_last_resort():
    zone = lead_zone(None, None, None, None, "Europe/Madrid")

    assert (zone.zones, zone.rule) == (("Europe/Madrid",), "default")


# --- calling hours -------------------------------------------------------------------------


def test_inside_a_window_the_answer_is_now():
    now = at("America/Chicago", 2026, 3, 4, 10, 30)  # a Wednesday

    assert policy().next_opening(now, ["America/Chicago"]) == now


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # US spring forward on Sunday 2026-03-08: Friday night before -> Monday 09:00 in EDT
        ("America/New_York", (2026, 3, 6, 21, 0), "2026-03-09T09:00:00-04:00"),
        # ... the week before, the next opening is still in EST
        ("America/New_York", (2026, 3, 5, 21, 0), "2026-03-06T09:00:00-05:00"),
        # US fall back on Sunday 2026-11-01
        ("America/New_York", (2026, 10, 30, 21, 0), "2026-11-02T09:00:00-05:00"),
        ("America/New_York", (2026, 10, 29, 21, 0), "2026-10-30T09:00:00-04:00"),
        # EU spring forward on Sunday 2026-03-29 and fall back on Sunday 2026-10-25
        ("Europe/Berlin", (2026, 3, 27, 20, 30), "2026-03-30T09:00:00+02:00"),
        ("Europe/Berlin", (2026, 3, 26, 20, 30), "2026-03-27T09:00:00+01:00"),
        ("Europe/Berlin", (2026, 10, 23, 22, 0), "2026-10-26T09:00:00+01:00"),
        ("Europe/Berlin", (2026, 10, 22, 22, 0), "2026-10-23T09:00:00+02:00"),
        # early morning on a weekday: later the same day
        ("Asia/Kolkata", (2026, 3, 9, 6, 15), "2026-03-09T09:00:00+05:30"),
    ],
)
def test_outside_its_window_the_next_opening_has_that_dates_offset(zone, now, expected):
    opening = policy().next_opening(at(zone, *now), [zone])

    assert local(opening, zone) == expected


def test_windows_on_the_dst_sunday_itself():
    rules = policy(windows=["Sun 10:00-12:00"])
    # Saturday 2026-03-28 in Berlin (CET): the Sunday window opens in CEST
    opening = rules.next_opening(at("Europe/Berlin", 2026, 3, 28, 12, 0), ["Europe/Berlin"])
    assert local(opening, "Europe/Berlin") == "2026-03-29T10:00:00+02:00"
    assert opening == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    # Saturday 2026-10-31 in New York (EDT): the Sunday window opens in EST
    opening = rules.next_opening(at("America/New_York", 2026, 10, 31, 12, 0), ["America/New_York"])
    assert opening == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)


def test_several_windows_a_day_and_a_saturday():
    rules = policy(windows=["Mon-Fri 10:00-13:00,14:00-20:00", "Sat 10:00-14:00"])
    zone = "Europe/Paris"
    assert local(rules.next_opening(at(zone, 2026, 6, 3, 13, 30), [zone]), zone) == "2026-06-03T14:00:00+02:00"
    assert local(rules.next_opening(at(zone, 2026, 6, 5, 20, 0), [zone]), zone) == "2026-06-06T10:00:00+02:00"
    assert local(rules.next_opening(at(zone, 2026, 6, 6, 14, 0), [zone]), zone) == "2026-06-08T10:00:00+02:00"


def test_blackout_dates_once_and_every_year():
    zone = "America/New_York"
    rules = policy(blackout_dates=["2026-03-09", "12-25"])
    assert local(rules.next_opening(at(zone, 2026, 3, 6, 21, 0), [zone]), zone) == "2026-03-10T09:00:00-04:00"
    # Christmas 2026 is a Friday, 2027 a Saturday: both years skip it
    assert local(rules.next_opening(at(zone, 2026, 12, 24, 21, 0), [zone]), zone) == "2026-12-28T09:00:00-05:00"
    assert not rules.is_open(at(zone, 2030, 12, 25, 12, 0), zone)  # a Wednesday


def test_a_lead_in_several_zones_is_called_only_when_all_are_open():
    zones = ["America/Chicago", "America/Denver"]  # Texas
    opening = policy().next_opening(at("America/Chicago", 2026, 3, 4, 9, 15), zones)

    assert local(opening, "America/Chicago") == "2026-03-04T10:00:00-06:00"  # 09:00 in Denver


def test_an_opening_a_moment_away_is_pushed_into_the_future():
    zone = "America/New_York"
    opening = policy().next_opening(at(zone, 2026, 3, 4, 8, 59, 30), [zone])

    assert local(opening, zone) == "2026-03-04T09:02:00-05:00"


def test_a_window_across_the_weekend():
    rules = policy(windows=["Fri-Mon 12:00-13:00"])
    zone = "Europe/London"

    assert [window.text() for window in rules.windows] == ["Fri-Mon 12:00-13:00"]
    assert local(rules.next_opening(at(zone, 2026, 6, 2, 14, 0), [zone]), zone) == "2026-06-05T12:00:00+01:00"
    assert local(rules.next_opening(at(zone, 2026, 6, 7, 14, 0), [zone]), zone) == "2026-06-08T12:00:00+01:00"


def test_a_bad_route_policy_names_the_source():
    with pytest.raises(ConfigError, match=r"SOURCE_ROUTING.zoho.calling_policy.windows"):
        Settings.from_env({"SOURCE_ROUTING": json.dumps({"zoho": {"calling_policy": {"windows": "9-5"}}})})


def test_no_window_within_the_horizon():
    rules = policy(windows=["Mon 09:00-10:00"], blackout_dates=["2026-03-09", "2026-03-16"])

    assert rules.next_opening(at("UTC", 2026, 3, 3, 12, 0), ["UTC"]) is None


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"windows": ["Mon-Fri 9-20"]}, "hours must be like 09:00-20:00"),
        ({"windows": ["Xyz 09:00-20:00"]}, "days are Mon"),
        ({"windows": ["Mon 20:00-09:00"]}, "start must be before end"),
        ({"windows": []}, "no call could ever be placed"),
        ({"timezone": "Mars/Base"}, "IANA time zone"),
        ({"blackout_dates": ["25/12"]}, "blackout_dates"),
        ({"phone_region": "XX"}, "phone_region"),
        ({"enforce_hours": "yes"}, "true or false"),
        ({"hours": []}, "unknown keys: hours"),
    ],
)
def test_a_bad_policy_fails_at_start_naming_the_key(layer, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"CALLING_POLICY": json.dumps(layer)})


def test_policies_layer_stack_source_and_routing_rule():
    env = {
        "CALLING_POLICY": json.dumps({"windows": ["Mon-Sat 09:00-18:00"], "timezone": "Europe/London"}),
        "SOURCE_ROUTING": json.dumps(
            {
                "hubspot": {
                    "calling_policy": {"blackout_dates": ["12-25"]},
                    "rules": [
                        {
                            "when": {"path": "hs_lead_status", "equals": "VIP"},
                            "calling_policy": {"enforce_hours": False},
                        }
                    ],
                }
            }
        ),
    }
    settings = Settings.from_env(env)
    vip = settings.routing_for("hubspot").for_record({"hs_lead_status": "VIP"})

    assert policy_for(settings, "generic").blackout_dates == ()
    assert policy_for(settings, "hubspot").blackout_dates == ("12-25",)
    assert policy_for(settings, "hubspot").timezone == "Europe/London"
    assert policy_for(settings, "hubspot").enforce_hours is True
    assert policy_for(settings, "hubspot", vip).enforce_hours is False
    assert [w.text() for w in policy_for(settings, "zoho").windows] == ["Mon-Sat 09:00-18:00"]


# --- through the dispatcher ----------------------------------------------------------------


def lead(record_id: str, phone: str = "+15125550142", source: str = "generic", **facts: Any) -> LeadMessage:
    document = ContactDocument(name=f"Lead {record_id}", contact_number=phone, document_id=f"{source}-{record_id}")
    return LeadMessage(source, record_id, time.time(), document, {}, facts=facts)


def record(message: LeadMessage) -> QueuedRecord:
    return QueuedRecord(str(uuid.uuid4()), message.to_json(), 1)


def with_policy(dispatcher: Dispatcher, **layer: Any) -> Dispatcher:
    base = {"enforce_hours": False, "dedupe_by_phone": False}
    dispatcher.settings = dataclasses.replace(dispatcher.settings, calling_policy={**base, **layer})
    return dispatcher


def closed_today_window() -> str:
    """A one-hour window two days from now (UTC): whatever the hour, the lead is outside it."""
    day = (datetime.now(UTC) + timedelta(days=2)).weekday()
    return f"{DAYS[day].title()} 11:00-12:00"


def test_a_lead_outside_its_hours_is_scheduled_for_the_next_opening(dispatcher, sandbox, store):
    with_policy(dispatcher, enforce_hours=True, windows=[closed_today_window()])
    message = lead("later", timezone="Asia/Kolkata")

    assert dispatcher.dispatch([record(message)]).retry == {}

    [request] = sandbox.requests
    schedule = request["json"]["schedule"]
    assert schedule["type"] == "custom"
    assert schedule["calling_time"] == "11:00:00+05:30"
    expected_day = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    planned_day = datetime.fromisoformat(schedule["calling_date"]).date()
    assert 1 <= (planned_day - expected_day).days <= 3
    item = store.get(message.lead_id)
    assert item["status"] == "call_requested"
    assert (item["timezone"], item["timezone_rule"]) == ("Asia/Kolkata", "crm_field")
    assert item["planned_at"].endswith("05:30:00Z")
    assert item["plan_reason"].startswith("outside calling hours (")
    assert item["phone_hash"] == phone_hash("+15125550142")


def test_a_lead_inside_its_hours_is_called_now(dispatcher, sandbox, store):
    with_policy(dispatcher, enforce_hours=True, windows=["Mon-Sun 00:00-24:00"])
    message = lead("now", country="US", state="TX")

    dispatcher.dispatch([record(message)])

    assert sandbox.requests[0]["json"]["schedule"] == {"type": "now"}
    item = store.get(message.lead_id)
    assert item["timezone"] == "America/Chicago America/Denver"
    assert item["timezone_rule"] == "address"
    assert item["plan_reason"].startswith("inside calling hours")


def test_a_route_with_schedule_auto_keeps_it(dispatcher, sandbox, store):
    with_policy(dispatcher, enforce_hours=True, windows=[closed_today_window()])
    routing = {"generic": Routing(schedule={"type": "auto"})}
    dispatcher.settings = dataclasses.replace(dispatcher.settings, source_routing=routing)

    dispatcher.dispatch([record(lead("auto"))])

    assert sandbox.requests[0]["json"]["schedule"] == {"type": "auto"}
    assert store.get("generic#auto")["plan_reason"] == "route schedule auto"


def test_a_number_on_the_do_not_call_list_is_suppressed_never_called(dispatcher, sandbox, store):
    with_policy(dispatcher)
    dnc = SuppressionList(store.client, store.table_name)
    assert dnc.add("(512) 555-0142", "US") is True
    message = lead("dnc")

    assert dispatcher.dispatch([record(message)]).retry == {}

    assert sandbox.requests == []
    item = store.get(message.lead_id)
    assert item["status"] == "suppressed"
    assert item["reason"] == "suppressed: the number is on the do-not-call list"

    # taken off the list: a new delivery of the same record is checked again and called
    assert dnc.remove("+15125550142") is True
    dispatcher.dispatch([record(message)])
    assert store.get(message.lead_id)["status"] == "call_requested"


def test_a_crm_opt_out_flag_suppresses_unless_the_route_ignores_it(dispatcher, sandbox, store, settings):
    with_policy(dispatcher)
    facts = read_facts(settings, "salesforce", {"DoNotCall": "true", "Country": "United States"})
    assert facts["opt_out"] == "DoNotCall"
    opted_out = dataclasses.replace(lead("sf-1", source="salesforce"), facts=facts)

    dispatcher.dispatch([record(opted_out)])
    assert store.get(opted_out.lead_id)["status"] == "suppressed"
    assert store.get(opted_out.lead_id)["reason"] == "suppressed: CRM opt-out (DoNotCall)"

    with_policy(dispatcher, honour_crm_opt_out=False)
    dispatcher.dispatch([record(opted_out)])
    assert store.get(opted_out.lead_id)["status"] == "call_requested"
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize(
    ("record_", "source", "expected"),
    [
        ({"DoNotCall": True}, "salesforce", "DoNotCall"),
        ({"DoNotCall": "false"}, "salesforce", None),
        ({"do_not_call": "Yes"}, "generic", "do_not_call"),
        ({"dnc": 1}, "generic", "dnc"),
        ({"do_not_call": "true"}, "hubspot", "do_not_call"),
        ({"Do_Not_Call": True}, "zoho", "Do_Not_Call"),
    ],
)
def test_opt_out_flags_of_each_crm(settings, record_, source, expected):
    assert read_facts(settings, source, record_).get("opt_out") == expected


def test_the_consent_gate_rejects_at_the_webhook(intake, settings):
    routing = {"generic": Routing(calling_policy={"consent_field": "marketing_consent"})}
    intake.settings = dataclasses.replace(settings, source_routing=routing)
    base = {"name": "Ada", "phone": "+442079460018"}

    no = post(intake, {**base, "id": "c-1"})
    denied = post(intake, {**base, "id": "c-2", "marketing_consent": "no"})
    given = post(intake, {**base, "id": "c-3", "marketing_consent": True})

    assert no["results"][0] == {
        "index": 0,
        "status": "rejected",
        "lead_id": "generic#c-1",
        "reason": "no consent: marketing_consent is not true",
    }
    assert denied["results"][0]["status"] == "rejected"
    assert given["results"][0]["status"] == "queued"
    store = LeadStore(boto3.client("dynamodb"), settings.table_name)
    item = store.get("generic#c-1")
    assert item is not None
    assert item["reason"] == "no consent: marketing_consent is not true"


def test_the_consent_gate_in_the_dispatcher(dispatcher, sandbox, store):
    with_policy(dispatcher, consent_field="consent")
    message = lead("c-4", consent=False)

    dispatcher.dispatch([record(message)])

    assert sandbox.requests == []
    assert store.get(message.lead_id)["status"] == "rejected"
    assert store.get(message.lead_id)["reason"] == "no consent: consent is not true"


def test_the_same_person_through_two_records_is_called_once(dispatcher, sandbox, store):
    with_policy(dispatcher, dedupe_by_phone=True)
    first, second = lead("p-1"), lead("p-2", source="hubspot")

    dispatcher.dispatch([record(first)])
    dispatcher.dispatch([record(second)])

    assert [task["input"]["document_id"] for task in sandbox.created_tasks] == ["generic-p-1"]
    item = store.get(second.lead_id)
    assert item["status"] == "rejected"
    assert item["reason"] == ("duplicate: the same phone number was taken by lead generic#p-1 within the dedupe window")
    assert (item["error_kind"], item["phone_hash"]) == ("policy", phone_hash("+15125550142"))
    claim = store.client.get_item(TableName=store.table_name, Key={"pk": {"S": "phone#" + phone_hash("+15125550142")}})
    assert claim["Item"]["lead_id"]["S"] == "generic#p-1"
    assert int(claim["Item"]["expires_at"]["N"]) > time.time()
    # a redelivery of the first record is not blocked by its own claim
    assert store.claim_phone(phone_hash("+15125550142"), "generic#p-1", int(time.time()) + 60) is None


def test_within_one_batch_too(dispatcher, sandbox, store):
    with_policy(dispatcher, dedupe_by_phone=True)

    dispatcher.dispatch([record(lead("b-1")), record(lead("b-2"))])

    assert len(sandbox.created_tasks) == 1
    assert store.get("generic#b-2")["status"] == "rejected"


def test_phone_dedupe_can_be_switched_off(dispatcher, sandbox):
    with_policy(dispatcher, dedupe_by_phone=False)

    dispatcher.dispatch([record(lead("d-1")), record(lead("d-2"))])

    assert len(sandbox.created_tasks) == 2


def test_after_the_window_the_number_can_be_claimed_again(store):
    digest = phone_hash("+15125550142")
    assert store.claim_phone(digest, "generic#old", int(time.time()) - 1) is None
    assert store.claim_phone(digest, "generic#new", int(time.time()) + 60) is None
    assert store.claim_phone(digest, "generic#third", int(time.time()) + 60) == "generic#new"


def _count_requests(client: Any) -> Any:
    from collections import Counter

    calls: Counter[str] = Counter()
    client.meta.events.register(
        "before-call.dynamodb.*", lambda event_name, **_: calls.update([event_name.split(".")[2]])
    )
    return calls


def test_a_batch_of_numbers_is_claimed_in_one_transaction(store):
    calls = _count_requests(store.client)
    until = int(time.time()) + 60
    digests = [phone_hash(f"+1512555{n:04d}") for n in range(20)]

    holders = store.claim_phones([(digest, f"generic#n-{i}", until) for i, digest in enumerate(digests)])

    assert holders == [None] * 20
    assert dict(calls) == {"TransactWriteItems": 1}
    assert store.claim_phone(digests[7], "generic#other", until) == "generic#n-7"


def test_batch_phone_claims_answer_as_one_claim_after_another(store):
    """Held numbers name their holder, the others are still claimed; a number twice in the batch
    goes to its first lead; a lead's own number and an expired claim are free."""
    now = int(time.time())
    held, own, expired, fresh, twice = (phone_hash(f"+1512555010{n}") for n in range(5))
    assert store.claim_phone(held, "generic#holder", now + 60) is None
    assert store.claim_phone(own, "generic#me", now + 60) is None
    assert store.claim_phone(expired, "generic#gone", now - 1) is None
    calls = _count_requests(store.client)

    holders = store.claim_phones(
        [
            (held, "generic#a", now + 60),
            (own, "generic#me", now + 60),
            (expired, "generic#b", now + 60),
            (fresh, "generic#c", now + 60),
            (twice, "generic#d", now + 60),
            (twice, "generic#e", now + 60),
        ]
    )

    assert holders == ["generic#holder", None, None, None, None, "generic#d"]
    # the first transaction is cancelled by the held number, the rest go again together, the
    # number's second lead alone: three requests, not six
    assert sum(calls.values()) == 3, dict(calls)
    assert store.claim_phone(expired, "generic#x", now + 60) == "generic#b"
    assert store.claim_phone(fresh, "generic#x", now + 60) == "generic#c"


def test_enriched_leads_get_their_facts_from_the_fetched_record(settings):
    facts = read_facts(settings, "hubspot", {"country": "India", "hs_timezone": "asia_slash_kolkata"})

    assert facts == {
        "country": "IN",
        "timezone": "asia_slash_kolkata",
        "phone_region": "IN",
        "phone_region_rule": "country",
    }


@pytest.mark.parametrize(
    ("facts", "now", "calling_date", "calling_time"),
    [
        # US: seen Friday evening before / a week before the spring-forward Sunday (2026-03-08)
        ({"country": "US", "state": "NY"}, at("America/New_York", 2026, 3, 6, 21), "2026-03-09", "09:00:00-04:00"),
        ({"country": "US", "state": "NY"}, at("America/New_York", 2026, 2, 27, 21), "2026-03-02", "09:00:00-05:00"),
        # EU: the fall-back Sunday (2026-10-25) in Berlin, from either side
        ({"country": "DE"}, at("Europe/Berlin", 2026, 10, 23, 21), "2026-10-26", "09:00:00+01:00"),
        ({"country": "DE"}, at("Europe/Berlin", 2026, 10, 16, 21), "2026-10-19", "09:00:00+02:00"),
    ],
)
def test_the_unpod_schedule_on_both_sides_of_a_dst_change(settings, store, facts, now, calling_date, calling_time):
    from lead_caller.policy import Planner

    settings = dataclasses.replace(settings, calling_policy={"dedupe_by_phone": False})
    planner = Planner(settings, store, clock=now.timestamp)

    plan = planner.decide(lead("dst", phone="+12125550100", **facts))

    assert plan.action == "call"
    assert plan.message is not None
    assert plan.message.routing["schedule"] == {
        "type": "custom",
        "calling_date": calling_date,
        "calling_time": calling_time,
    }
    planned = datetime.fromisoformat(f"{calling_date}T{calling_time}")
    assert plan.fields is not None
    assert plan.fields["planned_at"] == planned.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert plan.fields["timezone_rule"] == "address"


class RecordsEnricher:
    """Our Enricher interface answering from a dict (the CRM clients are tested on their own)."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records

    def fetch(self, credentials: Any, requests: Any) -> list[Any]:
        from lead_caller.enrichment import Fetched

        return [Fetched("ok", self.records[str(request["id"])]) for request in requests]


def thin(record_id: str) -> LeadMessage:
    return LeadMessage("hubspot", record_id, time.time(), None, {}, {"kind": "records", "id": record_id})


def test_a_thin_events_record_gives_the_country_zone_and_opt_out(dispatcher, sandbox, store):
    with_policy(dispatcher, enforce_hours=True, windows=["Mon-Sun 00:00-24:00"])
    enricher = RecordsEnricher(
        {
            "1": {"firstname": "Asha", "phone": "98765 43210", "country": "India", "hs_timezone": "asia_slash_kolkata"},
            "2": {"firstname": "Ravi", "phone": "98765 43211", "country": "IND", "do_not_call": "true"},
        }
    )
    dispatcher.enrichers = {"records": enricher}

    dispatcher.dispatch([record(thin("1")), record(thin("2"))])

    [request] = sandbox.requests
    assert [document["contact_number"] for document in request["json"]["documents"]] == ["+919876543210"]
    called = store.get("hubspot#1")
    assert called is not None
    assert (called["timezone"], called["timezone_rule"], called["phone_region_rule"]) == (
        "Asia/Kolkata",
        "crm_field",
        "country",
    )
    suppressed = store.get("hubspot#2")
    assert suppressed is not None
    assert (suppressed["status"], suppressed["reason"]) == ("suppressed", "suppressed: CRM opt-out (do_not_call)")
