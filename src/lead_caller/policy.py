"""The calling policy: may this lead be called, and when (docs/calling-policy.md).

A policy is the stack default (built-in `DEFAULT_POLICY`, then env `CALLING_POLICY`), then
the source's `SOURCE_ROUTING.<source>.calling_policy`, then a matching routing rule's
`calling_policy`, each overriding the previous key by key.

Facts about the lead (country, state, time-zone field, CRM opt-out flag, consent) are read
from the CRM record where it is available (the webhook for full payloads, the dispatcher
after enrichment) and travel on the queue message (`LeadMessage.facts`). The dispatcher then
asks `Planner.plan` for each lead, in order:

1. consent gate (optional): the configured field must be true, else `rejected: no consent`;
2. the do-not-call list (`suppression.py`), then the CRM's opt-out flag: `suppressed`;
3. the lead's time zone (`timezones.py`) and calling hours: inside a window the call is
   `now`; outside it Unpod gets `{"type": "custom", "calling_date", "calling_time"}` at the
   next opening, written in the lead's zone with that zone's offset on that date (DST
   included). A route whose schedule is `auto` or `custom` keeps it;
4. one call per person: a conditional claim of `phone#<sha256>` for the dedupe window; a
   second record with the same number is recorded `rejected` naming the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers

from lead_caller.config import ConfigError
from lead_caller.mapping import FoldIndex, head, lookup
from lead_caller.suppression import SuppressionList, phone_hash
from lead_caller.timezones import country_code, lead_zone, zone_name

if TYPE_CHECKING:
    from lead_caller.config import Settings
    from lead_caller.leads import LeadMessage
    from lead_caller.store import LeadStore

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: how far ahead the next opening is searched; beyond it the lead is rejected
HORIZON_DAYS = 14
#: a custom schedule must be in the future when Unpod receives it: never closer than this
MIN_SCHEDULE_LEAD = timedelta(minutes=2)

#: The default: weekdays 09:00-20:00 in the lead's own time zone, no weekends. It sits inside
#: the common legal windows (US TCPA 08:00-21:00, India 09:00-21:00, UK/Ofcom and Australian
#: telemarketing standards); France and others are stricter: configure them (see the docs).
DEFAULT_POLICY: dict[str, Any] = {
    "windows": ["Mon-Fri 09:00-20:00"],
    "blackout_dates": [],
    "timezone": "UTC",
    "phone_region": None,
    "enforce_hours": True,
    "honour_crm_opt_out": True,
    "opt_out_fields": None,
    "consent_field": None,
    "dedupe_by_phone": True,
    "country_fields": None,
    "state_fields": None,
    "timezone_fields": None,
}

#: Where each source's records keep the facts the policy reads (overridable per route with
#: `country_fields`, `state_fields`, `timezone_fields`, `opt_out_fields`).
_GENERIC_FIELDS: dict[str, tuple[str, ...]] = {
    "country": ("country", "country_code", "address.country", "address.country_code", "location.country"),
    "state": ("state", "state_code", "region", "province", "address.state", "address.region", "address.province"),
    "timezone": ("timezone", "time_zone", "tz", "address.timezone"),
    "opt_out": ("do_not_call", "dnc", "phone_opt_out", "call_opt_out"),
}
SOURCE_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "generic": _GENERIC_FIELDS,
    "eventbridge": _GENERIC_FIELDS,
    # HubSpot: standard `country`/`state` and the `hs_timezone` property; no standard
    # do-not-call property exists (hs_email_optout is e-mail only): a custom one is read.
    "hubspot": {
        "country": ("country",),
        "state": ("state",),
        "timezone": ("hs_timezone",),
        "opt_out": ("do_not_call", "hs_do_not_call"),
    },
    # Salesforce Lead/Contact: DoNotCall is a standard field (add it to the Outbound Message).
    "salesforce": {
        "country": ("CountryCode", "Country", "MailingCountryCode", "MailingCountry"),
        "state": ("StateCode", "State", "MailingStateCode", "MailingState"),
        "timezone": ("TimeZone__c", "Time_Zone__c"),
        "opt_out": ("DoNotCall",),
    },
    # Zoho Leads/Contacts: no standard call opt-out (Email_Opt_Out is e-mail only) nor time
    # zone; the custom fields below are read when an organisation adds them.
    "zoho": {
        "country": ("Country", "Mailing_Country"),
        "state": ("State", "Mailing_State"),
        "timezone": ("Time_Zone", "Timezone"),
        "opt_out": ("Do_Not_Call", "Do_Not_Call_Flag"),
    },
    # Pipedrive persons: the postal address's components; no standard call opt-out
    # (marketing_status is e-mail only): a custom field can be named in opt_out_fields.
    "pipedrive": {
        "country": ("postal_address.country",),
        "state": ("postal_address.admin_area_level_1",),
        "timezone": (),
        "opt_out": ("do_not_call",),
    },
}
_TRUE = {"true", "yes", "y", "1", "on", "checked", "opted_in", "granted", "given", "x"}
_WINDOW = re.compile(r"^\s*([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?\s+(.+)$")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^(?:\d{4}-)?\d{2}-\d{2}$")


@dataclass(frozen=True)
class Window:
    """Open on `days` (0 = Monday) from `start` to `end`, minutes after local midnight."""

    days: frozenset[int]
    start: int
    end: int
    span: str = ""  # the days as configured, e.g. "Mon-Fri" or "Fri-Mon"

    def text(self) -> str:
        """e.g. "Mon-Fri 09:00-20:00"."""
        return f"{self.span} {self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True)
class CallingPolicy:
    """One route's compiled policy."""

    windows: tuple[Window, ...]
    blackout_dates: tuple[str, ...]
    timezone: str
    phone_region: str | None
    enforce_hours: bool
    honour_crm_opt_out: bool
    opt_out_fields: tuple[str, ...] | None
    consent_field: str | None
    dedupe_by_phone: bool
    country_fields: tuple[str, ...] | None
    state_fields: tuple[str, ...] | None
    timezone_fields: tuple[str, ...] | None

    def fields(self, source: str, fact: str) -> tuple[str, ...]:
        """The record paths read for a fact: the route's list, else the source's built-in one."""
        configured = getattr(self, f"{fact}_fields")
        if configured is not None:
            return tuple(configured)
        return SOURCE_FIELDS.get(source, _GENERIC_FIELDS).get(fact, ())

    def is_blackout(self, day: date) -> bool:
        """True on a blackout date ("YYYY-MM-DD" once, "MM-DD" every year)."""
        return day.isoformat() in self.blackout_dates or day.isoformat()[5:] in self.blackout_dates

    def is_open(self, moment: datetime, zone: str) -> bool:
        """True when `moment` is inside a window in `zone`'s local time."""
        local = moment.astimezone(ZoneInfo(zone))
        if self.is_blackout(local.date()):
            return False
        minute = local.hour * 60 + local.minute
        return any(local.weekday() in w.days and w.start <= minute < w.end for w in self.windows)

    def next_opening(self, now: datetime, zones: Sequence[str]) -> datetime | None:
        """`now` when every zone is inside a window, else the first instant when all are
        (at least MIN_SCHEDULE_LEAD ahead), None when there is none within HORIZON_DAYS."""
        if all(self.is_open(now, zone) for zone in zones):
            return now
        earliest = _ceil_minute(now + MIN_SCHEDULE_LEAD)
        candidates: set[datetime] = set()
        for zone in zones:
            info = ZoneInfo(zone)
            today = now.astimezone(info).date()
            for offset in range(HORIZON_DAYS + 1):
                day = today + timedelta(days=offset)
                for window in self.windows:
                    if day.weekday() in window.days:
                        # aware + timedelta is wall-clock arithmetic: the offset is that date's (DST)
                        local = datetime(day.year, day.month, day.day, tzinfo=info) + timedelta(minutes=window.start)
                        candidates.add(max(local.astimezone(UTC), earliest))
        for moment in sorted(candidates):
            if moment >= earliest and all(self.is_open(moment, zone) for zone in zones):
                return moment
        return None


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _parse_windows(raw: Any, where: str) -> tuple[Window, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f'{where} must be a list like ["Mon-Fri 09:00-20:00", "Sat 10:00-14:00"]')
    windows: list[Window] = []
    for item in raw:
        match = _WINDOW.match(item)
        if not match:
            raise ConfigError(f"{where}: {item!r} is not like 'Mon-Fri 09:00-20:00'")
        first, last, ranges = match.group(1).lower(), (match.group(2) or match.group(1)).lower(), match.group(3)
        if first not in DAYS or last not in DAYS:
            raise ConfigError(f"{where}: {item!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        start_day, end_day = DAYS.index(first), DAYS.index(last)
        days = frozenset((start_day + step) % 7 for step in range((end_day - start_day) % 7 + 1))
        for part in ranges.split(","):
            found = _RANGE.match(part.strip())
            if not found:
                raise ConfigError(f"{where}: {item!r}: hours must be like 09:00-20:00")
            h1, m1, h2, m2 = (int(value) for value in found.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if m1 > 59 or m2 > 59 or not 0 <= start < end <= 24 * 60:
                raise ConfigError(f"{where}: {item!r}: start must be before end, within 00:00-24:00")
            span = first.title() if first == last else f"{first.title()}-{last.title()}"
            windows.append(Window(days, start, end, span))
    return tuple(windows)


def _paths(raw: Any, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) and item.strip() for item in raw):
        raise ConfigError(f"{where} must be a list of record paths")
    return tuple(item.strip() for item in raw)


def compile_policy(raw: Mapping[str, Any], where: str) -> CallingPolicy:
    """Compile a full policy document (DEFAULT_POLICY keys); ConfigError naming `where` and the key."""
    unknown = set(raw) - set(DEFAULT_POLICY)
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys: {', '.join(sorted(unknown))} (known: {', '.join(DEFAULT_POLICY)})"
        )
    blackout = raw.get("blackout_dates") or []
    if not isinstance(blackout, list) or not all(isinstance(d, str) and _DATE.match(d) for d in blackout):
        raise ConfigError(f'{where}.blackout_dates must be a list of "YYYY-MM-DD" or "MM-DD" (every year)')
    timezone = zone_name(raw.get("timezone"))
    if timezone is None:
        raise ConfigError(f"{where}.timezone must be an IANA time zone such as America/New_York")
    region = raw.get("phone_region")
    if region is not None and (not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS):
        raise ConfigError(f"{where}.phone_region must be an ISO 3166 region such as US or IN")
    flags = {}
    for key in ("enforce_hours", "honour_crm_opt_out", "dedupe_by_phone"):
        if not isinstance(raw.get(key), bool):
            raise ConfigError(f"{where}.{key} must be true or false")
        flags[key] = bool(raw[key])
    consent = raw.get("consent_field")
    if consent is not None and not (isinstance(consent, str) and consent.strip()):
        raise ConfigError(f"{where}.consent_field must be a record path or null")
    windows = _parse_windows(raw.get("windows"), f"{where}.windows")
    if flags["enforce_hours"] and not windows:
        raise ConfigError(f"{where}.windows is empty: no call could ever be placed (set enforce_hours false)")
    return CallingPolicy(
        windows=windows,
        blackout_dates=tuple(blackout),
        timezone=timezone,
        phone_region=region.upper() if isinstance(region, str) else None,
        enforce_hours=flags["enforce_hours"],
        honour_crm_opt_out=flags["honour_crm_opt_out"],
        opt_out_fields=_paths(raw.get("opt_out_fields"), f"{where}.opt_out_fields"),
        consent_field=consent.strip() if isinstance(consent, str) else None,
        dedupe_by_phone=flags["dedupe_by_phone"],
        country_fields=_paths(raw.get("country_fields"), f"{where}.country_fields"),
        state_fields=_paths(raw.get("state_fields"), f"{where}.state_fields"),
        timezone_fields=_paths(raw.get("timezone_fields"), f"{where}.timezone_fields"),
    )


def check_layer(raw: Any, where: str) -> dict[str, Any]:
    """Validate one layer (CALLING_POLICY or a route's calling_policy) on top of the default."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a JSON object")
    compile_policy({**DEFAULT_POLICY, **raw}, where)
    return dict(raw)


@lru_cache(maxsize=64)
def _compiled(layers_json: str) -> CallingPolicy:
    merged: dict[str, Any] = dict(DEFAULT_POLICY)
    for layer in json.loads(layers_json):
        merged.update(layer)
    return compile_policy(merged, "calling policy")


def policy_for(settings: Settings, source: str, overrides: Mapping[str, Any] | None = None) -> CallingPolicy:
    """The effective policy of a lead: stack default, source, then its routing rule's override."""
    if not (overrides and isinstance(overrides.get("calling_policy"), Mapping)):  # most leads: the source's
        return settings.derived(("calling_policy", source), lambda: _policy_for(settings, source, None))
    return _policy_for(settings, source, overrides)


def _policy_for(settings: Settings, source: str, overrides: Mapping[str, Any] | None) -> CallingPolicy:
    layers: list[Any] = [settings.calling_policy]
    source_routing = settings.source_routing.get(source)
    if source_routing is not None and source_routing.calling_policy:
        layers.append(source_routing.calling_policy)
    if overrides and isinstance(overrides.get("calling_policy"), Mapping):
        layers.append(overrides["calling_policy"])
    return _compiled(json.dumps(layers, sort_keys=True, default=str))


def truthy(value: Any) -> bool:
    """A CRM checkbox/consent value as a boolean (true, "true", "Yes", 1, "on"...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, list):
        return any(truthy(item) for item in value)
    return isinstance(value, str) and value.strip().lower() in _TRUE


def _first_text(record: Mapping[str, Any], paths: Sequence[str], index: FoldIndex) -> tuple[str | None, str | None]:
    present = index.keys(record)
    for path in paths:
        if head(path) not in present:  # most paths: the record has no such key, nothing to look up
            continue
        value = lookup(record, path, index)
        if isinstance(value, Mapping):  # e.g. Salesforce picklists {"value": ...}
            value = value.get("value") or value.get("code")
        if value not in (None, "", []) and not isinstance(value, (list, Mapping, bool)):
            return str(value).strip(), path
    return None, None


def read_facts(
    settings: Settings,
    source: str,
    record: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
    policy: CallingPolicy | None = None,
) -> dict[str, Any]:
    """What the policy needs to know about a lead, read from its CRM record (no phone numbers).

    `policy`: the lead's `policy_for(settings, source, overrides)` when the caller has it already.
    """
    policy = policy_for(settings, source, overrides) if policy is None else policy
    facts: dict[str, Any] = {}
    if record is not None:
        index = FoldIndex()  # ~20 paths are tried against the record: fold its keys once, not per miss
        country_text, _ = _first_text(record, policy.fields(source, "country"), index)
        state, _ = _first_text(record, policy.fields(source, "state"), index)
        zone_text, _ = _first_text(record, policy.fields(source, "timezone"), index)
        country = country_code(country_text)
        if country:
            facts["country"] = country
        elif country_text:
            facts["country_unknown"] = country_text[:60]
        if state:
            facts["state"] = state[:80]
        if zone_text:
            facts["timezone"] = zone_text[:80]
        present = index.keys(record)
        for path in policy.fields(source, "opt_out"):
            if head(path) in present and truthy(lookup(record, path, index)):
                facts["opt_out"] = path
                break
        if policy.consent_field:
            facts["consent"] = truthy(lookup(record, policy.consent_field, index))
    region, rule = phone_region(settings, policy, facts)
    facts["phone_region"], facts["phone_region_rule"] = region, rule
    return facts


def phone_region(settings: Settings, policy: CallingPolicy, facts: Mapping[str, Any]) -> tuple[str, str]:
    """Where a national number is read: the lead's country, else the route's, else the stack's region."""
    country = facts.get("country")
    if isinstance(country, str) and country in phonenumbers.SUPPORTED_REGIONS:
        return country, "country"
    if policy.phone_region:
        return policy.phone_region, "route"
    return settings.default_phone_region, "default"


def consent_rejection(
    settings: Settings,
    source: str,
    facts: Mapping[str, Any],
    overrides: Mapping[str, Any],
    policy: CallingPolicy | None = None,
) -> str | None:
    """The rejection reason when the route's consent gate is on and the lead has not consented."""
    policy = policy_for(settings, source, overrides) if policy is None else policy
    if policy.consent_field and not facts.get("consent"):
        return f"no consent: {policy.consent_field} is not true"
    return None


@dataclass(frozen=True)
class Plan:
    """What to do with one lead. `message` is the lead to send (with its schedule) when `action` is call."""

    action: Literal["call", "suppressed", "rejected"]
    reason: str
    message: LeadMessage | None = None
    fields: Mapping[str, Any] | None = None
    #: a lead to call under phone dedupe: its number must be claimed until then (epoch s)
    phone_claim_until: int | None = None


class Planner:
    """Applies the calling policy to claimed leads in the dispatcher (one `plan` per lead)."""

    def __init__(self, settings: Settings, store: LeadStore, clock: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.suppression = SuppressionList(store.client, store.table_name)
        self.clock = clock or store.clock

    def plan(self, message: LeadMessage, claim_id: str) -> Plan:
        """Decide and record one lead (see `plan_many`)."""
        return self.plan_many([(message, claim_id)])[0]

    def plan_many(self, leads: Sequence[tuple[LeadMessage, str]]) -> list[Plan]:
        """Decide for a batch: one read of the do-not-call list for all of it; suppressed and
        rejected leads are recorded here, a lead to call carries its plan fields to the
        call-requested write (`Plan.fields`). DynamoDB errors propagate."""
        listed = self.suppression.contains_many(
            phone_hash(message.document.contact_number) for message, _ in leads if message.document is not None
        )
        plans = [self.decide(message, listed) for message, _ in leads]
        self._claim_phones([message for message, _ in leads], plans)
        for (message, claim_id), plan in zip(leads, plans, strict=True):
            if plan.action == "suppressed":
                self.store.mark_suppressed(message.lead_id, claim_id, plan.reason, plan.fields or {})
            elif plan.action == "rejected":
                self.store.mark_policy_rejected(message.lead_id, claim_id, plan.reason, plan.fields or {})
        return plans

    def _claim_phones(self, messages: Sequence[LeadMessage], plans: list[Plan]) -> None:
        """Claim the numbers of the leads to call (one transaction for the batch); a number held
        by another lead within the dedupe window turns that plan into a rejection."""
        wanted: list[int] = []
        claims: list[tuple[str, str, int]] = []
        for i, plan in enumerate(plans):
            if plan.action == "call" and plan.phone_claim_until is not None:
                wanted.append(i)
                claims.append((str((plan.fields or {})["phone_hash"]), messages[i].lead_id, plan.phone_claim_until))
        holders = self.store.claim_phones(claims)
        for i, holder in zip(wanted, holders, strict=True):
            if holder is not None:
                plans[i] = Plan(
                    "rejected",
                    f"duplicate: the same phone number was taken by lead {holder} within the dedupe window",
                    fields=plans[i].fields,
                )

    def decide(self, message: LeadMessage, listed: set[str] | None = None) -> Plan:
        """The decision for one lead (`listed`: the suppressed hashes of its batch, else read here).

        Writes nothing: a lead to call under phone dedupe carries `phone_claim_until`, and
        `plan_many` claims the numbers (a number already held turns the plan into a rejection)."""
        assert message.document is not None
        facts = dict(message.facts)
        routing = message.routing
        policy = policy_for(self.settings, message.source, routing)
        e164 = message.document.contact_number
        digest = phone_hash(e164)
        fields: dict[str, Any] = {
            "phone_hash": digest,
            "phone_region": str(facts.get("phone_region") or self.settings.default_phone_region),
            "phone_region_rule": str(facts.get("phone_region_rule") or "default"),
        }
        no_consent = consent_rejection(self.settings, message.source, facts, routing)
        if no_consent:
            return Plan("rejected", no_consent, fields=fields)
        if digest in listed if listed is not None else self.suppression.contains_hash(digest):
            return Plan("suppressed", "suppressed: the number is on the do-not-call list", fields=fields)
        if policy.honour_crm_opt_out and facts.get("opt_out"):
            return Plan("suppressed", f"suppressed: CRM opt-out ({facts['opt_out']})", fields=fields)

        zone = lead_zone(facts.get("timezone"), facts.get("country"), facts.get("state"), e164, policy.timezone)
        fields["timezone"] = " ".join(zone.zones)
        fields["timezone_rule"] = zone.rule
        now = datetime.fromtimestamp(self.clock(), UTC)
        route_schedule = routing.get("schedule") or self.settings.routing_for(message.source).schedule or {}
        schedule: dict[str, Any]
        if route_schedule.get("type") in ("auto", "custom"):
            schedule = dict(route_schedule)
            planned, reason = now, f"route schedule {route_schedule.get('type')}"
        elif not policy.enforce_hours:
            schedule, planned, reason = {"type": "now"}, now, "calling hours not enforced on this route"
        else:
            opening = policy.next_opening(now, zone.zones)
            hours = ", ".join(window.text() for window in policy.windows)
            if opening is None:
                return Plan("rejected", f"no calling window within {HORIZON_DAYS} days ({hours})", fields=fields)
            if opening == now:
                schedule, planned = {"type": "now"}, now
                reason = f"inside calling hours ({hours}, {zone.name})"
            else:
                local = opening.astimezone(ZoneInfo(zone.name)).isoformat(timespec="seconds")
                calling_date, calling_time = local.split("T")
                schedule = {"type": "custom", "calling_date": calling_date, "calling_time": calling_time}
                planned = opening
                reason = f"outside calling hours ({hours}, {zone.name}): next opening {local}"
        fields["planned_at"] = planned.isoformat(timespec="seconds").replace("+00:00", "Z")
        fields["plan_reason"] = reason
        claim_until = None
        if policy.dedupe_by_phone:
            claim_until = int(max(planned.timestamp(), now.timestamp()) + self.settings.dedupe_window_seconds)
        routed = replace(message, routing={**routing, "schedule": schedule})
        return Plan("call", reason, message=routed, fields=fields, phone_claim_until=claim_until)
