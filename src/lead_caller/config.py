"""All of lead-caller's configuration, read from environment variables in one place.

Every setting has a safe default except the resource names that the SAM template
injects (table, queue, secrets). `Settings.from_env()` fails fast with a message
naming the variable when a value cannot be parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import phonenumbers

DEFAULT_UNPOD_BASE_URL = "https://unpod.ai/api/v2/platform"
DEFAULT_CREATE_TASK_PATH = "/spaces/{space_token}/tasks/create/"
DEFAULT_CONTEXT = (
    "Call this new lead, introduce yourself on behalf of our sales team, "
    "understand what they need and offer to book a meeting."
)


def space_ref(space_token: str) -> str:
    """A stand-in for a space token in stored items: the token is a credential, its hash is not."""
    return "sha256:" + hashlib.sha256(space_token.encode()).hexdigest()[:24]


def stored_routing(routing: Mapping[str, Any]) -> dict[str, Any]:
    """A lead's routing as stored in its item: the space token replaced by its `space_ref`."""
    stored = dict(routing)
    token = stored.pop("space_token", None)
    if token:
        stored["space_ref"] = space_ref(str(token))
    return stored


_T = TypeVar("_T")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True)
class RouteRule:
    """A per-value routing rule: when the record's `path` matches, use these overrides."""

    path: str
    equals: tuple[str, ...] | None
    exists: bool | None
    overrides: Mapping[str, Any]

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True when the record's value at `path` satisfies the rule."""
        from lead_caller.mapping import fold, lookup

        value = lookup(record, self.path)
        values = value if isinstance(value, list) else [value]
        present = [str(v).strip() for v in values if v not in (None, "", [])]
        if self.exists is not None:
            return bool(present) == self.exists
        wanted = {fold(text) for text in self.equals or ()}
        return any(fold(text) in wanted for text in present)


@dataclass(frozen=True)
class Routing:
    """Where and how a lead is called: Unpod pilot (agent), context and schedule.

    `None` means "use the default": the pilot/space from the Unpod secret,
    the context and schedule from the settings. `rules` pick other values per
    lead from the CRM record (e.g. a HubSpot pipeline or a Pipedrive label).
    """

    pilot: str | None = None
    space_token: str | None = None
    context: str | None = None
    schedule: Mapping[str, Any] | None = None
    rules: tuple[RouteRule, ...] = ()
    #: this route's calling-policy layer over CALLING_POLICY (policy.py, docs/calling-policy.md)
    calling_policy: Mapping[str, Any] | None = None

    def for_record(self, record: Mapping[str, Any] | None) -> dict[str, Any]:
        """The overrides of the first rule that matches the record ({} when none does)."""
        if record is None:
            return {}
        for rule in self.rules:
            if rule.matches(record):
                return dict(rule.overrides)
        return {}


@dataclass(frozen=True)
class Settings:
    """Runtime settings of both functions (see README "Configuration reference")."""

    table_name: str = "lead-caller-leads"
    queue_url: str = ""
    unpod_secret_id: str = "lead-caller/unpod"  # noqa: S105 - a secret name, not a secret
    webhook_secret_id: str = "lead-caller/webhooks"  # noqa: S105 - a secret name, not a secret
    unpod_base_url: str = DEFAULT_UNPOD_BASE_URL
    unpod_create_task_path: str = DEFAULT_CREATE_TASK_PATH
    unpod_connect_timeout: float = 3.05
    unpod_read_timeout: float = 15.0
    unpod_max_retries: int = 2
    #: longest Retry-After waited inside one request; a longer one goes back to the queue for that long
    unpod_max_retry_after: float = 2.0
    default_context: str = DEFAULT_CONTEXT
    default_schedule: Mapping[str, Any] = field(default_factory=lambda: {"type": "now"})
    default_phone_region: str = "US"
    max_documents_per_request: int = 20
    dedupe_window_seconds: int = 86_400
    lead_retention_days: int = 365
    max_receive_count: int = 1000  # a safety net: the retry schedule decides (docs/resilience.md)
    max_body_bytes: int = 1_048_576
    public_base_url: str | None = None
    secrets_max_age_seconds: int = 300
    source_routing: Mapping[str, Routing] = field(default_factory=dict)
    field_mappings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    crm_secret_id: str = "lead-caller/crm"  # noqa: S105 - a secret name, not a secret
    hubspot_api_base_url: str = "https://api.hubapi.com"
    pipedrive_api_base_url: str = "https://api.pipedrive.com"
    lead_created_source: str = "lead-caller"
    #: Zoho accounts/API base URLs; None = the data centre's (from the CRM secret's "dc")
    zoho_accounts_base_url: str | None = None
    zoho_api_base_url: str | None = None
    #: write-back per source (WRITEBACK; docs/writeback.md): a source listed (and not "enabled": false) opts in
    writeback: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: receives of a write-back message after which a transient failure is recorded as failed (the queue's DLQ count)
    writeback_max_receive_count: int = 8
    #: how long one write-back attempt holds its per-task lease (longer than the function's timeout)
    writeback_lease_seconds: int = 300
    # Call outcomes and re-calls (docs/outcomes.md)
    #: header carrying the token of Unpod's agent webhook (value: webhooks secret "unpod.agent_webhook_token")
    agent_webhook_header: str = "x-lead-caller-token"
    #: S3 bucket for call transcripts; empty = transcripts are not kept
    transcript_bucket: str = ""
    #: EventBridge bus of "Call Completed" events; empty = none are sent
    event_bus_name: str = ""
    #: first wait between two polls of an open lead (doubles per poll up to outcome_poll_max_seconds)
    outcome_poll_backoff_seconds: int = 300
    outcome_poll_max_seconds: int = 3600
    #: after this long without a final report the poller records outcome_unknown
    outcome_horizon_seconds: int = 172_800
    #: call attempts per lead, the first included (1 = never re-call)
    max_call_attempts: int = 3
    #: wait before attempt 2, 3, ... (the last value repeats)
    recall_delays_seconds: tuple[int, ...] = (14_400, 86_400)
    #: the stack's calling-policy layer over policy.DEFAULT_POLICY (env CALLING_POLICY)
    calling_policy: Mapping[str, Any] = field(default_factory=dict)

    #: retry schedule (docs/resilience.md): delays after each per-lead failure, the last one repeats
    retry_schedule_seconds: tuple[float, ...] = (30.0, 120.0, 600.0, 1_800.0, 3_600.0)
    retry_horizon_seconds: float = 86_400.0
    #: multiplies every retry/circuit delay and the horizon (time compression for the fault matrix)
    retry_time_scale: float = 1.0
    circuit_failure_threshold: int = 5
    circuit_open_seconds: float = 30.0
    circuit_max_open_seconds: float = 3_600.0
    #: Create Task requests per second per Unpod space, shared by all dispatchers (0 = no ceiling)
    unpod_requests_per_second: int = 10
    pacing_max_wait_seconds: float = 2.0
    dead_letter_queue_url: str = ""

    #: the webhook reads DynamoDB to answer "duplicate" for leads already called (one more round trip
    #: per delivery); off, they are queued and the dispatcher's claim skips them. The template sets
    #: it from IntakeDuplicateCheck (default false); constructed directly, it keeps the old behaviour.
    intake_duplicate_check: bool = True

    #: values derived from these settings once and kept (a source's routing and calling policy): the
    #: settings never change after they are built; `dataclasses.replace` starts an empty memo
    _derived: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """`build()`, computed once per settings object and `key` (values the settings alone decide)."""
        try:
            value: _T = self._derived[key]
        except KeyError:
            value = self._derived[key] = build()
        return value

    def space_for(self, routing: Mapping[str, Any], default: str) -> str:
        """The space token of a stored routing (`stored_routing`): a configured token with that
        `space_ref`, else `default` (the Unpod secret's space)."""
        if routing.get("space_token"):
            return str(routing["space_token"])
        wanted = routing.get("space_ref")
        if wanted:
            for route in self.source_routing.values():
                overrides = [route.space_token, *(rule.overrides.get("space_token") for rule in route.rules)]
                for token in overrides:
                    if token and space_ref(str(token)) == wanted:
                        return str(token)
        return default

    def routing_for(self, source: str) -> Routing:
        """The routing of a source, with the global defaults filled in (built once per source)."""
        return self.derived(("routing", source), lambda: self._routing_for(source))

    def _routing_for(self, source: str) -> Routing:
        override = self.source_routing.get(source, Routing())
        return Routing(
            pilot=override.pilot,
            space_token=override.space_token,
            context=override.context or self.default_context,
            schedule=override.schedule or self.default_schedule,
            rules=override.rules,
            calling_policy=override.calling_policy,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (`os.environ` by default)."""
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        def number(name: str, default: float, kind: type = int, minimum: float = 0) -> Any:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError as error:
                raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from error
            if not math.isfinite(value) or value < minimum:
                raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
            return value

        region = text("DEFAULT_PHONE_REGION", defaults.default_phone_region).upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"DEFAULT_PHONE_REGION must be an ISO 3166 region such as US or GB, got {region!r}")
        schedule = _json_object(env, "DEFAULT_SCHEDULE", defaults.default_schedule)
        _check_schedule("DEFAULT_SCHEDULE", schedule)
        return cls(
            table_name=text("LEADS_TABLE_NAME", defaults.table_name),
            queue_url=text("LEADS_QUEUE_URL", defaults.queue_url),
            unpod_secret_id=text("UNPOD_SECRET_ID", defaults.unpod_secret_id),
            webhook_secret_id=text("WEBHOOK_SECRET_ID", defaults.webhook_secret_id),
            unpod_base_url=text("UNPOD_BASE_URL", defaults.unpod_base_url).rstrip("/"),
            unpod_create_task_path=text("UNPOD_CREATE_TASK_PATH", defaults.unpod_create_task_path),
            unpod_connect_timeout=number("UNPOD_CONNECT_TIMEOUT", defaults.unpod_connect_timeout, float, 0.1),
            unpod_read_timeout=number("UNPOD_READ_TIMEOUT", defaults.unpod_read_timeout, float, 0.1),
            unpod_max_retries=number("UNPOD_MAX_RETRIES", defaults.unpod_max_retries),
            unpod_max_retry_after=number("UNPOD_MAX_RETRY_AFTER", defaults.unpod_max_retry_after, float),
            default_context=text("DEFAULT_CONTEXT", defaults.default_context),
            default_schedule=schedule,
            default_phone_region=region,
            max_documents_per_request=number("MAX_DOCUMENTS_PER_REQUEST", defaults.max_documents_per_request, int, 1),
            dedupe_window_seconds=number("DEDUPE_WINDOW_SECONDS", defaults.dedupe_window_seconds),
            lead_retention_days=number("LEAD_RETENTION_DAYS", defaults.lead_retention_days),
            max_receive_count=number("MAX_RECEIVE_COUNT", defaults.max_receive_count, int, 1),
            max_body_bytes=number("MAX_BODY_BYTES", defaults.max_body_bytes, int, 1),
            public_base_url=(env.get("PUBLIC_BASE_URL", "").strip().rstrip("/") or None),
            secrets_max_age_seconds=number("SECRETS_MAX_AGE_SECONDS", defaults.secrets_max_age_seconds),
            source_routing=_source_routing(env),
            field_mappings=_field_mappings(env),
            crm_secret_id=text("CRM_SECRET_ID", defaults.crm_secret_id),
            hubspot_api_base_url=text("HUBSPOT_API_BASE_URL", defaults.hubspot_api_base_url).rstrip("/"),
            pipedrive_api_base_url=text("PIPEDRIVE_API_BASE_URL", defaults.pipedrive_api_base_url).rstrip("/"),
            lead_created_source=text("LEAD_CREATED_SOURCE", defaults.lead_created_source),
            zoho_accounts_base_url=env.get("ZOHO_ACCOUNTS_BASE_URL", "").strip().rstrip("/") or None,
            zoho_api_base_url=env.get("ZOHO_API_BASE_URL", "").strip().rstrip("/") or None,
            writeback=_writeback(env),
            writeback_max_receive_count=number(
                "WRITEBACK_MAX_RECEIVE_COUNT", defaults.writeback_max_receive_count, int, 1
            ),
            writeback_lease_seconds=number("WRITEBACK_LEASE_SECONDS", defaults.writeback_lease_seconds, int, 1),
            agent_webhook_header=text("AGENT_WEBHOOK_HEADER", defaults.agent_webhook_header).lower(),
            transcript_bucket=env.get("TRANSCRIPT_BUCKET", "").strip(),
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip(),
            outcome_poll_backoff_seconds=number(
                "OUTCOME_POLL_BACKOFF_SECONDS", defaults.outcome_poll_backoff_seconds, int, 1
            ),
            outcome_poll_max_seconds=number("OUTCOME_POLL_MAX_SECONDS", defaults.outcome_poll_max_seconds, int, 1),
            outcome_horizon_seconds=number("OUTCOME_HORIZON_SECONDS", defaults.outcome_horizon_seconds, int, 1),
            max_call_attempts=number("MAX_CALL_ATTEMPTS", defaults.max_call_attempts, int, 1),
            recall_delays_seconds=_delays(env, "RECALL_DELAYS_SECONDS", defaults.recall_delays_seconds),
            calling_policy=_calling_policy(env),
            retry_schedule_seconds=_retry_steps(env, defaults.retry_schedule_seconds),
            retry_horizon_seconds=number("RETRY_HORIZON_SECONDS", defaults.retry_horizon_seconds, float, 1),
            retry_time_scale=number("RETRY_TIME_SCALE", defaults.retry_time_scale, float, 1e-6),
            circuit_failure_threshold=number("CIRCUIT_FAILURE_THRESHOLD", defaults.circuit_failure_threshold, int, 1),
            circuit_open_seconds=number("CIRCUIT_OPEN_SECONDS", defaults.circuit_open_seconds, float, 1),
            circuit_max_open_seconds=number("CIRCUIT_MAX_OPEN_SECONDS", defaults.circuit_max_open_seconds, float, 1),
            unpod_requests_per_second=number("UNPOD_REQUESTS_PER_SECOND", defaults.unpod_requests_per_second),
            pacing_max_wait_seconds=number("PACING_MAX_WAIT_SECONDS", defaults.pacing_max_wait_seconds, float),
            dead_letter_queue_url=text("DEAD_LETTER_QUEUE_URL", defaults.dead_letter_queue_url),
            intake_duplicate_check=_flag(env, "INTAKE_DUPLICATE_CHECK", defaults.intake_duplicate_check),
        )


def _delays(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of whole seconds, e.g. "14400,86400"."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        delays = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated whole seconds, e.g. 14400,86400; got {raw!r}") from None
    if not delays or any(delay < 0 for delay in delays):
        raise ConfigError(f"{name} must list at least one delay >= 0, got {raw!r}")
    return delays


def _retry_steps(env: Mapping[str, str], default: tuple[float, ...]) -> tuple[float, ...]:
    from lead_caller.retry_schedule import parse_steps

    raw = env.get("RETRY_SCHEDULE_SECONDS", "").strip()
    if not raw:
        return default
    try:
        return parse_steps(raw)
    except ValueError as error:
        raise ConfigError(f"RETRY_SCHEDULE_SECONDS: {error}, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _json_object(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{name} is not valid JSON: {error.msg} at position {error.pos}") from error
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return value


def _check_schedule(name: str, schedule: Mapping[str, Any]) -> None:
    kind = schedule.get("type")
    if kind not in ("now", "auto", "custom"):
        raise ConfigError(f"{name}.type must be one of now, auto, custom; got {kind!r}")
    if kind == "custom" and not (schedule.get("calling_date") and schedule.get("calling_time")):
        raise ConfigError(f"{name} of type custom needs calling_date and calling_time")


_ROUTE_KEYS = ("pilot", "space_token", "context", "schedule", "calling_policy")


def _route_values(values: Mapping[str, Any], where: str, allowed: set[str]) -> dict[str, Any]:
    unknown = set(values) - allowed
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    for key in ("pilot", "space_token", "context"):
        if key in values and not (isinstance(values[key], str) and values[key].strip()):
            raise ConfigError(f"{where}.{key} must be a non-empty string")
    schedule = values.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise ConfigError(f"{where}.schedule must be an object")
        _check_schedule(f"{where}.schedule", schedule)
    if values.get("calling_policy") is not None:
        from lead_caller.policy import check_layer

        check_layer(values["calling_policy"], f"{where}.calling_policy")
    return {key: values[key] for key in _ROUTE_KEYS if key in values}


def _route_rule(raw: Any, where: str) -> RouteRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("when"), dict):
        raise ConfigError(f'{where} must be an object with "when" and overrides')
    when = raw["when"]
    path = when.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}.when.path must be a non-empty path")
    tests = [key for key in ("equals", "in", "exists") if key in when]
    if len(tests) != 1 or set(when) - {"path", "equals", "in", "exists"}:
        raise ConfigError(f"{where}.when needs path and exactly one of equals, in, exists")
    equals: tuple[str, ...] | None = None
    exists: bool | None = None
    if "exists" in when:
        if not isinstance(when["exists"], bool):
            raise ConfigError(f"{where}.when.exists must be true or false")
        exists = when["exists"]
    else:
        wanted = when.get("equals", when.get("in"))
        items = wanted if isinstance(wanted, list) else [wanted]
        if not items or any(isinstance(item, (dict, list)) or item is None for item in items):
            raise ConfigError(f"{where}.when.{tests[0]} must be a value or a list of values")
        equals = tuple(str(item) for item in items)
    overrides = _route_values({k: v for k, v in raw.items() if k != "when"}, where, set(_ROUTE_KEYS))
    if not overrides:
        raise ConfigError(f"{where} sets none of {', '.join(_ROUTE_KEYS)}")
    return RouteRule(path=path.strip(), equals=equals, exists=exists, overrides=overrides)


def _source_routing(env: Mapping[str, str]) -> dict[str, Routing]:
    """Parse SOURCE_ROUTING: {"<source>": {"pilot", "space_token", "context", "schedule", "rules": [...]}}."""
    raw = _json_object(env, "SOURCE_ROUTING", {})
    routing: dict[str, Routing] = {}
    for source, values in raw.items():
        where = f"SOURCE_ROUTING.{source}"
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be an object")
        base = _route_values({k: v for k, v in values.items() if k != "rules"}, where, set(_ROUTE_KEYS))
        rules_raw = values.get("rules", [])
        if not isinstance(rules_raw, list):
            raise ConfigError(f"{where}.rules must be a list")
        rules = tuple(_route_rule(rule, f"{where}.rules[{index}]") for index, rule in enumerate(rules_raw))
        routing[source] = Routing(
            pilot=base.get("pilot"),
            space_token=base.get("space_token"),
            context=base.get("context"),
            schedule=base.get("schedule"),
            rules=rules,
            calling_policy=base.get("calling_policy"),
        )
    return routing


def _calling_policy(env: Mapping[str, str]) -> dict[str, Any]:
    """CALLING_POLICY: the stack's calling-policy layer (validated; see docs/calling-policy.md)."""
    from lead_caller.policy import check_layer

    return check_layer(_json_object(env, "CALLING_POLICY", {}), "CALLING_POLICY")


def _field_mappings(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """FIELD_MAPPINGS (JSON) merged over FIELD_MAPPINGS_FILE (a JSON file), validated."""
    from lead_caller.mapping import parse_mappings

    merged: dict[str, dict[str, Any]] = {}
    path = env.get("FIELD_MAPPINGS_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except OSError as error:
            raise ConfigError(f"FIELD_MAPPINGS_FILE {path} cannot be read: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"FIELD_MAPPINGS_FILE {path} is not valid JSON: {error.msg} (line {error.lineno})"
            ) from None
        for source, fields in parse_mappings(document, "FIELD_MAPPINGS_FILE").items():
            merged.setdefault(source, {}).update(fields)
    inline = _json_object(env, "FIELD_MAPPINGS", {})
    for source, fields in parse_mappings(inline, "FIELD_MAPPINGS").items():
        merged.setdefault(source, {}).update(fields)
    return merged


#: write-back options per source (docs/writeback.md); "enabled" is accepted by all
WRITEBACK_OPTIONS: dict[str, frozenset[str]] = {
    "hubspot": frozenset({"enabled", "note", "outcome_property"}),
    "pipedrive": frozenset({"enabled", "as", "activity_type"}),
    "salesforce": frozenset({"enabled", "api_version", "task_status"}),
    "zoho": frozenset({"enabled", "module"}),
}


def _writeback(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Parse WRITEBACK: {"hubspot": {...}, "pipedrive": {...}, "salesforce": {...}, "zoho": {...}}."""
    raw = _json_object(env, "WRITEBACK", {})
    parsed: dict[str, dict[str, Any]] = {}
    for source, options in raw.items():
        where = f"WRITEBACK.{source}"
        if source not in WRITEBACK_OPTIONS:
            raise ConfigError(f"{where}: write-back exists for {', '.join(WRITEBACK_OPTIONS)} only")
        if options is True:
            options = {}
        if not isinstance(options, dict):
            raise ConfigError(f"{where} must be an object (or true)")
        unknown = set(options) - WRITEBACK_OPTIONS[source]
        if unknown:
            raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for key in ("enabled", "note"):
            if key in options and not isinstance(options[key], bool):
                raise ConfigError(f"{where}.{key} must be true or false")
        for key in set(options) - {"enabled", "note"}:
            if not isinstance(options[key], str) or not options[key].strip():
                raise ConfigError(f"{where}.{key} must be a non-empty string")
        if options.get("as", "note") not in ("note", "activity"):
            raise ConfigError(f'{where}.as must be "note" or "activity"')
        prop = options.get("outcome_property")
        if prop is not None and not all(ch.isalnum() or ch == "_" for ch in prop):
            raise ConfigError(f"{where}.outcome_property must be a property's internal name (letters, digits, _)")
        if options.get("enabled", True):
            parsed[source] = dict(options)
    return parsed
