"""Unit tests for lead_caller.config: Settings.from_env, SOURCE_ROUTING and routing_for."""

import dataclasses
import json
from typing import Any

import pytest

from lead_caller.config import (
    DEFAULT_CONTEXT,
    DEFAULT_CREATE_TASK_PATH,
    DEFAULT_UNPOD_BASE_URL,
    ConfigError,
    Routing,
    Settings,
)

# variable -> (Settings attribute, default, type, minimum)
NUMERIC: dict[str, tuple[str, float, type, float]] = {
    "UNPOD_CONNECT_TIMEOUT": ("unpod_connect_timeout", 3.05, float, 0.1),
    "UNPOD_READ_TIMEOUT": ("unpod_read_timeout", 15.0, float, 0.1),
    "UNPOD_MAX_RETRIES": ("unpod_max_retries", 2, int, 0),
    "UNPOD_MAX_RETRY_AFTER": ("unpod_max_retry_after", 2.0, float, 0),
    "MAX_DOCUMENTS_PER_REQUEST": ("max_documents_per_request", 20, int, 1),
    "DEDUPE_WINDOW_SECONDS": ("dedupe_window_seconds", 86_400, int, 0),
    "LEAD_RETENTION_DAYS": ("lead_retention_days", 365, int, 0),
    "MAX_RECEIVE_COUNT": ("max_receive_count", 1000, int, 1),
    "MAX_BODY_BYTES": ("max_body_bytes", 1_048_576, int, 1),
    "SECRETS_MAX_AGE_SECONDS": ("secrets_max_age_seconds", 300, int, 0),
    "RETRY_HORIZON_SECONDS": ("retry_horizon_seconds", 86_400.0, float, 1),
    "CIRCUIT_FAILURE_THRESHOLD": ("circuit_failure_threshold", 5, int, 1),
    "CIRCUIT_OPEN_SECONDS": ("circuit_open_seconds", 30.0, float, 1),
    "CIRCUIT_MAX_OPEN_SECONDS": ("circuit_max_open_seconds", 3_600.0, float, 1),
    "UNPOD_REQUESTS_PER_SECOND": ("unpod_requests_per_second", 10, int, 0),
    "PACING_MAX_WAIT_SECONDS": ("pacing_max_wait_seconds", 2.0, float, 0),
}
FLOAT_VARS = [name for name, spec in NUMERIC.items() if spec[2] is float]
INT_VARS = [name for name, spec in NUMERIC.items() if spec[2] is int]


def routing_env(value: Any) -> dict[str, str]:
    return {"SOURCE_ROUTING": value if isinstance(value, str) else json.dumps(value)}


# --- defaults --------------------------------------------------------------------------------


def test_defaults_from_empty_env() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.table_name == "lead-caller-leads"
    assert settings.queue_url == ""
    assert settings.unpod_secret_id == "lead-caller/unpod"
    assert settings.webhook_secret_id == "lead-caller/webhooks"
    assert settings.unpod_base_url == DEFAULT_UNPOD_BASE_URL == "https://unpod.ai/api/v2/platform"
    assert settings.unpod_create_task_path == DEFAULT_CREATE_TASK_PATH
    assert settings.default_context == DEFAULT_CONTEXT
    assert settings.default_schedule == {"type": "now"}
    assert settings.default_phone_region == "US"
    assert settings.public_base_url is None
    assert settings.source_routing == {}
    for attribute, default, kind, _ in NUMERIC.values():
        value = getattr(settings, attribute)
        assert value == default
        assert type(value) is kind


def test_blank_values_fall_back_to_defaults() -> None:
    env = dict.fromkeys(NUMERIC, "   ")
    env.update({"LEADS_TABLE_NAME": " ", "DEFAULT_SCHEDULE": "  ", "SOURCE_ROUTING": "", "PUBLIC_BASE_URL": " "})
    assert Settings.from_env(env) == Settings()


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*NUMERIC, "DEFAULT_SCHEDULE", "SOURCE_ROUTING", "DEFAULT_PHONE_REGION"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADS_TABLE_NAME", "table-from-os-environ")
    monkeypatch.setenv("UNPOD_MAX_RETRIES", "4")
    settings = Settings.from_env()
    assert settings.table_name == "table-from-os-environ"
    assert settings.unpod_max_retries == 4


def test_text_values_are_read_and_normalised() -> None:
    settings = Settings.from_env(
        {
            "LEADS_TABLE_NAME": " my-table ",
            "LEADS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/leads",
            "UNPOD_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:unpod",
            "WEBHOOK_SECRET_ID": "prod/webhooks",
            "UNPOD_BASE_URL": "https://sandbox.example/api/v2/platform///",
            "UNPOD_CREATE_TASK_PATH": "/custom/{space_token}/",
            "DEFAULT_CONTEXT": "Say hello.",
            "DEFAULT_PHONE_REGION": " gb ",
            "PUBLIC_BASE_URL": " https://leads.example.com/ ",
        }
    )
    assert settings.table_name == "my-table"
    assert settings.queue_url == "https://sqs.eu-west-1.amazonaws.com/123456789012/leads"
    assert settings.unpod_secret_id == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:unpod"
    assert settings.webhook_secret_id == "prod/webhooks"
    assert settings.unpod_base_url == "https://sandbox.example/api/v2/platform"
    assert settings.unpod_create_task_path == "/custom/{space_token}/"
    assert settings.default_context == "Say hello."
    assert settings.default_phone_region == "GB"
    assert settings.public_base_url == "https://leads.example.com"


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INT_VARS)
def test_int_variable_is_parsed(name: str) -> None:
    attribute = NUMERIC[name][0]
    value = getattr(Settings.from_env({name: " 7 "}), attribute)
    assert value == 7
    assert type(value) is int
    # Only this variable changed.
    others = {n: getattr(Settings(), spec[0]) for n, spec in NUMERIC.items() if n != name}
    settings = Settings.from_env({name: "7"})
    assert {n: getattr(settings, NUMERIC[n][0]) for n in others} == others


@pytest.mark.parametrize("name", FLOAT_VARS)
def test_float_variable_is_parsed(name: str) -> None:
    attribute = NUMERIC[name][0]
    value = getattr(Settings.from_env({name: "2.5"}), attribute)
    assert value == 2.5
    assert type(value) is float
    assert getattr(Settings.from_env({name: "4"}), attribute) == 4.0


@pytest.mark.parametrize("name", list(NUMERIC))
@pytest.mark.parametrize("raw", ["abc", "1,5", "ten", "--1"])
def test_bad_number_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: raw})
    assert repr(raw) in str(caught.value)


@pytest.mark.parametrize("name", INT_VARS)
def test_fractional_value_for_int_variable_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be a int, got '1\.5'$"):
        Settings.from_env({name: "1.5"})


@pytest.mark.parametrize("name", list(NUMERIC))
def test_value_below_minimum_names_the_variable(name: str) -> None:
    minimum = NUMERIC[name][3]
    below = "-1" if minimum == 0 else ("0.05" if NUMERIC[name][2] is float else "0")
    with pytest.raises(ConfigError, match=rf"^{name} must be >= "):
        Settings.from_env({name: below})


@pytest.mark.parametrize("name", list(NUMERIC))
def test_value_at_minimum_is_accepted(name: str) -> None:
    attribute, _, kind, minimum = NUMERIC[name]
    raw = str(kind(minimum))
    assert getattr(Settings.from_env({name: raw}), attribute) == kind(minimum)


@pytest.mark.parametrize("name", ["UNPOD_CONNECT_TIMEOUT", "UNPOD_READ_TIMEOUT"])
def test_nan_timeout_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: "nan"})


# --- DEFAULT_SCHEDULE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "now"},
        {"type": "auto"},
        {"type": "custom", "calling_date": "2026-01-02", "calling_time": "10:00"},
    ],
)
def test_default_schedule_is_parsed(schedule: dict[str, str]) -> None:
    settings = Settings.from_env({"DEFAULT_SCHEDULE": json.dumps(schedule)})
    assert settings.default_schedule == schedule


def test_default_schedule_invalid_json() -> None:
    with pytest.raises(ConfigError, match=r"^DEFAULT_SCHEDULE is not valid JSON"):
        Settings.from_env({"DEFAULT_SCHEDULE": "{type: now}"})


@pytest.mark.parametrize("raw", ['"now"', '["now"]', "42", "null", "true"])
def test_default_schedule_must_be_object(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^DEFAULT_SCHEDULE must be a JSON object$"):
        Settings.from_env({"DEFAULT_SCHEDULE": raw})


@pytest.mark.parametrize("schedule", [{}, {"type": "later"}, {"type": None}, {"type": "NOW"}])
def test_default_schedule_wrong_type(schedule: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^DEFAULT_SCHEDULE\.type must be one of now, auto, custom"):
        Settings.from_env({"DEFAULT_SCHEDULE": json.dumps(schedule)})


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "custom"},
        {"type": "custom", "calling_time": "10:00"},
        {"type": "custom", "calling_date": "2026-01-02"},
        {"type": "custom", "calling_date": "", "calling_time": "10:00"},
    ],
)
def test_default_schedule_custom_needs_date_and_time(schedule: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"DEFAULT_SCHEDULE of type custom needs calling_date and calling_time"):
        Settings.from_env({"DEFAULT_SCHEDULE": json.dumps(schedule)})


# --- SOURCE_ROUTING --------------------------------------------------------------------------


def test_source_routing_is_parsed() -> None:
    settings = Settings.from_env(
        routing_env(
            {
                "hubspot": {
                    "pilot": "sales-agent",
                    "space_token": "SPACE123",
                    "context": "HubSpot lead.",
                    "schedule": {"type": "auto"},
                },
                "generic": {"pilot": "generic-agent"},
                "zoho": {},
            }
        )
    )
    assert settings.source_routing == {
        "hubspot": Routing(
            pilot="sales-agent", space_token="SPACE123", context="HubSpot lead.", schedule={"type": "auto"}
        ),
        "generic": Routing(pilot="generic-agent"),
        "zoho": Routing(),
    }


def test_source_routing_unknown_keys_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_ROUTING\.hubspot has unknown keys: agent, queue$"):
        Settings.from_env(routing_env({"hubspot": {"pilot": "p", "queue": "x", "agent": "y"}}))


@pytest.mark.parametrize("key", ["pilot", "space_token", "context"])
@pytest.mark.parametrize("value", ["", "   ", None, 5, ["p"]])
def test_source_routing_blank_or_non_string_values_rejected(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^SOURCE_ROUTING\.generic\.{key} must be a non-empty string$"):
        Settings.from_env(routing_env({"generic": {key: value}}))


@pytest.mark.parametrize("raw", ["[]", '"generic"', "1"])
def test_source_routing_must_be_object(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_ROUTING must be a JSON object$"):
        Settings.from_env(routing_env(raw))


def test_source_routing_invalid_json() -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_ROUTING is not valid JSON"):
        Settings.from_env(routing_env('{"generic": {'))


@pytest.mark.parametrize("value", ["agent", ["agent"], None, 1])
def test_source_routing_entry_must_be_object(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_ROUTING\.generic must be an object$"):
        Settings.from_env(routing_env({"generic": value}))


def test_source_routing_schedule_must_be_object() -> None:
    with pytest.raises(ConfigError, match=r"^SOURCE_ROUTING\.generic\.schedule must be an object$"):
        Settings.from_env(routing_env({"generic": {"schedule": "now"}}))


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"type": "soon"}, r"^SOURCE_ROUTING\.generic\.schedule\.type must be one of now, auto, custom"),
        ({}, r"^SOURCE_ROUTING\.generic\.schedule\.type must be one of"),
        ({"type": "custom", "calling_time": "09:00"}, r"^SOURCE_ROUTING\.generic\.schedule of type custom needs"),
    ],
)
def test_source_routing_schedule_is_checked(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(routing_env({"generic": {"schedule": schedule}}))


# --- routing_for -----------------------------------------------------------------------------


def test_routing_for_unknown_source_uses_defaults() -> None:
    settings = Settings.from_env(
        {"DEFAULT_CONTEXT": "Default context.", "DEFAULT_SCHEDULE": json.dumps({"type": "auto"})}
    )
    assert settings.routing_for("generic") == Routing(
        pilot=None, space_token=None, context="Default context.", schedule={"type": "auto"}
    )


def test_routing_for_fills_missing_values_with_defaults() -> None:
    settings = Settings.from_env(
        {
            "DEFAULT_CONTEXT": "Default context.",
            "SOURCE_ROUTING": json.dumps({"generic": {"pilot": "generic-agent"}}),
        }
    )
    assert settings.routing_for("generic") == Routing(
        pilot="generic-agent", space_token=None, context="Default context.", schedule={"type": "now"}
    )


def test_routing_for_keeps_overrides() -> None:
    custom = {"type": "custom", "calling_date": "2026-01-02", "calling_time": "10:00"}
    settings = Settings.from_env(
        routing_env(
            {
                "hubspot": {
                    "pilot": "hs-agent",
                    "space_token": "SPACE-HS",
                    "context": "HubSpot context.",
                    "schedule": custom,
                }
            }
        )
    )
    assert settings.routing_for("hubspot") == Routing(
        pilot="hs-agent", space_token="SPACE-HS", context="HubSpot context.", schedule=custom
    )
    # Another source is not affected by the override.
    assert settings.routing_for("generic") == Routing(context=DEFAULT_CONTEXT, schedule={"type": "now"})


def test_routing_for_on_plain_settings() -> None:
    settings = Settings(default_context="Ctx", source_routing={"a": Routing(context="A ctx")})
    assert settings.routing_for("a") == Routing(context="A ctx", schedule={"type": "now"})
    assert settings.routing_for("b") == Routing(context="Ctx", schedule={"type": "now"})


def test_a_stored_routing_keeps_a_hash_of_the_space_token_and_resolves_it_back():
    from lead_caller.config import space_ref, stored_routing

    settings = Settings.from_env(
        {
            "SOURCE_ROUTING": json.dumps(
                {"hubspot": {"rules": [{"when": {"path": "x", "equals": "y"}, "space_token": "S-RULE"}]}}
            )
        }
    )
    stored = stored_routing({"space_token": "S-RULE", "pilot": "p"})
    assert stored == {"space_ref": space_ref("S-RULE"), "pilot": "p"}
    assert "S-RULE" not in json.dumps(stored)
    assert settings.space_for(stored, "S-DEFAULT") == "S-RULE"
    assert settings.space_for({"space_ref": space_ref("S-GONE")}, "S-DEFAULT") == "S-DEFAULT"
    assert settings.space_for({}, "S-DEFAULT") == "S-DEFAULT"


def test_retry_schedule_and_time_scale_are_read() -> None:
    settings = Settings.from_env({"RETRY_SCHEDULE_SECONDS": "1, 2,3.5", "RETRY_TIME_SCALE": "0.001"})
    assert settings.retry_schedule_seconds == (1.0, 2.0, 3.5)
    assert settings.retry_time_scale == 0.001
    assert Settings().retry_schedule_seconds == (30.0, 120.0, 600.0, 1_800.0, 3_600.0)
    with pytest.raises(ConfigError, match="RETRY_SCHEDULE_SECONDS"):
        Settings.from_env({"RETRY_SCHEDULE_SECONDS": "30,0"})
    with pytest.raises(ConfigError, match="RETRY_SCHEDULE_SECONDS"):
        Settings.from_env({"RETRY_SCHEDULE_SECONDS": "30,50000"})  # beyond SQS's 12 h visibility limit
    with pytest.raises(ConfigError, match="RETRY_TIME_SCALE"):
        Settings.from_env({"RETRY_TIME_SCALE": "0"})


def test_a_sources_routing_and_policy_are_built_once_and_a_replaced_settings_builds_its_own():
    from lead_caller.policy import policy_for

    settings = Settings(source_routing={"generic": Routing(context="Pitch A", calling_policy={"phone_region": "GB"})})

    assert settings.routing_for("generic") is settings.routing_for("generic")
    assert policy_for(settings, "generic") is policy_for(settings, "generic", {"pilot": "x"})

    replaced = dataclasses.replace(settings, source_routing={"generic": Routing(context="Pitch B")})

    assert replaced.routing_for("generic").context == "Pitch B"
    assert settings.routing_for("generic").context == "Pitch A"
    assert policy_for(replaced, "generic").phone_region != policy_for(settings, "generic").phone_region
    assert replaced == dataclasses.replace(replaced)  # the memo is not part of the settings' value
