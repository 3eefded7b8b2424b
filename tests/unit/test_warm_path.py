"""The webhook's per-lead shortcuts find exactly what the full evaluation finds (behaviour, never timings)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from lead_caller.config import Settings
from lead_caller.contacts import ContactDocument
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping, FoldIndex, Rule, _scalar_text, compile_rule, head, lookup
from lead_caller.observability import mask_secrets, register_secrets
from lead_caller.policy import read_facts
from lead_caller.sources import SOURCES

RECORDS: list[dict[str, Any]] = [
    {},
    {"id": "r1", "name": "Ada", "phone": "+1 512 555 0142", "email": "ada@example.com", "company": "Co"},
    {"First_Name": "Ada", "LAST-NAME": "Lovelace", "Mobile Phone": "+44 20 7946 0958", "Tags": "a,b"},
    {"address": {"City": "Austin", "zip": 78701}, "properties": {"phone": "5125550142", "firstname": "Ada"}},
    {"Phone": "+1 512 555 0142", "phone": "+1 512 555 0199", "notes": ["x", {"y": 1}], "labels": ["vip", ""]},
    {"data": {"current": {"name": {"value": "Ada"}}}, "person": {"phone": [{"value": "+15125550142"}]}},
    {"Country": "Germany", "STATE_CODE": "BY", "Time_Zone": "Europe/Berlin", "DNC": "yes", "id": 7},
    {"title": 3.5, "description": True, "context": None, "about": "", "cell": "+1 512 555 0100"},
]

OVERRIDES: list[dict[str, Any]] = [
    {},
    {"context": {"path": "custom.deep.value", "format": "Note: {value}"}},
    {"about": {"first_of": ["nothing", "missing.x"], "default": "no notes"}},
    {"labels": {"labels": [{"value": "web"}, "tags"]}},
    {"occupation": {"join": ["role", {"first_of": ["dept", "department"]}], "separator": " / "}},
]


def evaluating_every_rule(mapping: FieldMapping) -> FieldMapping:
    """The same mapping with the skip turned off: every rule evaluated, as before the shortcut."""
    rules = {
        name: Rule(rule.kind, rule.argument, rule.default, rule.format, rule.separator)
        for name, rule in mapping.rules.items()
    }
    for rule in rules.values():
        rule.__dict__["top_keys"] = None  # the cached property's slot: never skip
    return FieldMapping(rules)


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("override", OVERRIDES)
def test_skipping_rules_whose_keys_are_absent_maps_every_record_alike(source: str, override: dict[str, Any]) -> None:
    mapping = FieldMapping.compile(SOURCES[source].default_mapping, override)
    reference = evaluating_every_rule(mapping)
    for record in RECORDS + [{"properties": record} for record in RECORDS]:
        assert mapping.apply(record) == reference.apply(record), (source, record)


def test_top_keys_names_the_first_folded_segments_or_none_when_a_rule_yields_without_the_record() -> None:
    assert compile_rule("Properties.First_Name", "t").top_keys == frozenset({"properties"})
    assert compile_rule({"first_of": ["a_b", "c.d", {"join": ["E", "f"]}]}, "t").top_keys == frozenset(
        {"ab", "c", "e", "f"}
    )
    assert compile_rule({"value": "x"}, "t").top_keys is None
    assert compile_rule({"path": "a", "default": "x"}, "t").top_keys is None
    assert compile_rule({"first_of": ["a", {"path": "b", "default": "x"}]}, "t").top_keys is None


def test_scalar_text_fast_path_reads_strings_as_before() -> None:
    assert _scalar_text("  Ada ") == "Ada"
    assert _scalar_text("   ") is None
    assert _scalar_text(42) == "42"
    assert _scalar_text(True) is None
    assert _scalar_text({"a": 1}) is None


def test_facts_read_with_folded_keys_once_find_what_each_lookup_finds() -> None:
    settings = Settings()
    record = {"Country": "Germany", "country": "France", "State-Code": "BY", "TZ": "Europe/Berlin", "D_N_C": "yes"}
    facts = read_facts(settings, "generic", record)
    assert facts["country"] == "FR"  # the exact key "country" first, then folded ones
    assert facts["state"] == "BY"
    assert facts["timezone"] == "Europe/Berlin"
    assert facts["opt_out"] == "dnc"


@pytest.mark.parametrize("record", RECORDS)
def test_a_path_whose_head_the_record_lacks_finds_nothing(record: dict[str, Any]) -> None:
    index = FoldIndex()
    paths = ["id", "Name", "first_name", "address.city", "properties.phone", "person.phone.0.value", "x.y", "tags"]
    for path in paths:
        if head(path) not in index.keys(record):
            assert lookup(record, path) is None, path


def test_a_lead_message_is_serialised_once_and_a_changed_copy_anew() -> None:
    document = ContactDocument("Ada", "+15125550142", document_id="generic-1")
    message = LeadMessage("generic", "1", 1.0, document, {"pilot": "p"}, facts={"country": "US"})
    body = message.to_json()
    assert message.to_json() is body  # the intake sizes it, the queue sends it: one json.dumps
    assert LeadMessage.from_json(body) == message
    again = dataclasses.replace(message, attempt=2)
    assert json.loads(again.to_json())["attempt"] == 2


def test_a_cached_secret_document_is_registered_for_masking_once_and_a_fetched_one_again(monkeypatch):
    from lead_caller import secrets

    documents = [{"generic": {"bearer_token": "tok-warm-zz01"}}]
    registered: list[Any] = []
    monkeypatch.setattr("aws_lambda_powertools.utilities.parameters.get_secret", lambda *_, **__: documents[-1])
    monkeypatch.setattr(secrets, "register_secret_document", registered.append)
    monkeypatch.setattr(secrets, "_registered", {})
    settings = Settings()

    for _ in range(3):  # warm requests: Powertools hands back the cached object
        assert secrets.webhook_credentials(settings, "generic") == {"bearer_token": "tok-warm-zz01"}
    documents.append({"generic": {"bearer_token": "tok-rotated-zz02"}})  # past max_age: fetched anew
    assert secrets.webhook_credentials(settings, "generic") == {"bearer_token": "tok-rotated-zz02"}

    assert registered == documents


def test_secrets_are_masked_longest_first_registered_or_given():
    register_secrets("warm-zz03-secret", "warm-zz03-secret-longer")
    assert mask_secrets("a warm-zz03-secret-longer b") == "a [redacted] b"
    assert mask_secrets("x given-zz04-value-long y", ["given-zz04-value", "given-zz04-value-long"]) == "x [redacted] y"
    assert mask_secrets("x given-zz04-value y") == "x given-zz04-value y"  # given ones are not remembered
