"""The generic source for no-code tools: form bodies, Zapier's unflatten keys, HTTP Basic auth,
user-defined field mappings and per-value routing, through the intake on moto."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from lead_caller.config import ConfigError, Settings
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping, lookup
from lead_caller.queue import LeadQueue
from lead_caller.sources import compile_mappings
from lead_caller.sources.base import WebhookRequest
from lead_caller.sources.generic import GENERIC_MAPPING, GenericSource, unflatten
from lead_caller.store import LeadStore
from local.signing import basic_authorization

FORM = "application/x-www-form-urlencoded"
CREDENTIALS = {"bearer_token": "zap-token", "basic_username": "zapier", "basic_password": "p@ss:word"}
ZAPIER_FORM = {
    "event": "new_lead",
    "id": "zap-lead-20260101-0001",
    "first_name": "Maria",
    "last_name": "Gonzalez",
    "email": "maria.gonzalez@acme-logistics.example",
    "phone": "+1 (512) 555-0142",
    "alternate_phone": "+1 512 555 0199",
    "job_title": "Director of Operations",
    "company": "Acme Logistics",
    "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
    "notes": "Requested a callback about fleet pricing.",
    "labels": "inbound,pricing",
}


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(
        "generic", "POST", "/webhooks/generic", "", headers, body, "https://x/webhooks/generic", time.time()
    )


def make_intake(settings: Settings) -> Intake:
    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda _source: CREDENTIALS,
    )


def queued(settings: Settings) -> list[LeadMessage]:
    response = boto3.client("sqs").receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)
    return [LeadMessage.from_json(message["Body"]) for message in response.get("Messages", [])]


def test_zapier_form_body_maps_every_field(settings):
    body = urlencode(ZAPIER_FORM).encode()

    reply = make_intake(settings).handle(
        request(body, {"content-type": f"{FORM}; charset=utf-8", **basic_authorization("zapier", "p@ss:word")})
    )

    assert reply.status == 202, reply.body
    [message] = queued(settings)
    assert message.document is not None
    assert message.document.to_unpod() == {
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "contact_number": "+15125550142",
        "alternate_number": "+15125550199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "labels": ["inbound", "pricing"],
        "document_id": "generic-zap-lead-20260101-0001",
    }


def test_repeated_form_keys_become_a_list_of_labels(settings):
    body = urlencode([("name", "Ana"), ("phone", "+15125550142"), ("tags", "vip"), ("tags", "webinar")]).encode()

    make_intake(settings).handle(request(body, {"content-type": FORM, "authorization": "Bearer zap-token"}))

    [message] = queued(settings)
    assert message.document is not None
    assert message.document.labels == ("vip", "webinar")


def test_zapier_unflatten_keys_become_nested_objects():
    assert unflatten({"address__city": "Austin", "address__zip": "78701", "name": "Ana", "__weird": "x"}) == {
        "address": {"city": "Austin", "zip": "78701"},
        "name": "Ana",
        "__weird": "x",
    }


def test_unflattened_address_parts_are_joined(settings):
    form = {
        "name": "Ana",
        "phone": "+15125550142",
        "address__street": "1 Main St",
        "address__city": "Austin",
        "address__country": "US",
    }

    make_intake(settings).handle(
        request(urlencode(form).encode(), {"content-type": FORM, "authorization": "Bearer zap-token"})
    )

    [message] = queued(settings)
    assert message.document is not None
    assert message.document.address == "1 Main St, Austin, US"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "holds no fields"),
        (b"\xff\xfe=1", "not UTF-8"),
        (b"novalue", "not a valid form"),
    ],
)
def test_malformed_forms_get_400_naming_the_problem(settings, body, words):
    reply = make_intake(settings).handle(request(body, {"content-type": FORM, "authorization": "Bearer zap-token"}))

    assert reply.status == 400
    assert words in json.loads(reply.body)["message"]


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        (basic_authorization("zapier", "p@ss:word"), True),
        (basic_authorization("zapier", "p@ss"), False),
        (basic_authorization("other", "p@ss:word"), False),
        ({"authorization": "Basic not-base64!"}, False),
        ({"authorization": "Bearer zap-token"}, True),
        ({}, False),
    ],
)
def test_basic_or_token_authentication(settings, headers, accepted):
    reply = make_intake(settings).handle(
        request(b'{"name": "Ana", "phone": "+15125550142"}', {"content-type": "application/json", **headers})
    )

    assert (reply.status == 202) is accepted
    if not accepted:
        assert reply.status == 401


def test_basic_credentials_alone_fail_closed_without_header():
    with pytest.raises(Exception, match="missing signature or Authorization"):
        GenericSource().authenticate(
            request(b"{}", {"content-type": "application/json"}), {"basic_username": "u", "basic_password": "p"}
        )


def test_a_user_mapping_routes_a_custom_field_into_context_about_and_labels(settings):
    mappings = {
        "generic": {
            "context": {"path": "custom.objective", "format": "Objective: {value}"},
            "about": {"join": ["notes", "custom.budget"], "separator": " | "},
            "labels": {"labels": ["tags", "custom.segment", {"value": "zapier"}]},
        }
    }
    configured = dataclasses.replace(settings, field_mappings=mappings)
    body = {
        "name": "Ana",
        "phone": "+15125550142",
        "notes": "Asked for pricing",
        "tags": ["vip"],
        "custom": {"objective": "book a demo", "budget": "50k", "segment": "enterprise"},
    }

    make_intake(configured).handle(
        request(json.dumps(body).encode(), {"content-type": "application/json", "authorization": "Bearer zap-token"})
    )

    [message] = queued(settings)
    assert message.document is not None
    assert message.document.context == "Objective: book a demo"
    assert message.document.about == "Asked for pricing | 50k"
    assert message.document.labels == ("vip", "enterprise", "zapier")
    assert message.document.name == "Ana"  # fields the user did not map keep the built-in rule


def test_per_value_routing_picks_pilot_and_context_from_the_payload(settings):
    routing = Settings.from_env(
        {
            "SOURCE_ROUTING": json.dumps(
                {
                    "generic": {
                        "context": "Default pitch",
                        "rules": [
                            {
                                "when": {"path": "pipeline", "equals": "Enterprise"},
                                "pilot": "enterprise-agent",
                                "context": "Enterprise pitch",
                            },
                            {"when": {"path": "tags", "in": ["vip", "gold"]}, "schedule": {"type": "auto"}},
                        ],
                    }
                }
            )
        }
    ).source_routing
    configured = dataclasses.replace(settings, source_routing=routing)
    leads = [
        {"id": "e1", "name": "Ent", "phone": "+15125550101", "pipeline": "enterprise"},
        {"id": "v1", "name": "Vip", "phone": "+15125550102", "tags": ["vip"]},
        {"id": "p1", "name": "Plain", "phone": "+15125550103"},
    ]

    make_intake(configured).handle(
        request(json.dumps(leads).encode(), {"content-type": "application/json", "authorization": "Bearer zap-token"})
    )

    by_id = {message.record_id: dict(message.routing) for message in queued(settings)}
    assert by_id == {
        "e1": {"pilot": "enterprise-agent", "context": "Enterprise pitch"},
        "v1": {"schedule": {"type": "auto"}},
        "p1": {},
    }


@pytest.mark.parametrize(
    ("mappings", "message"),
    [
        ({"generic": {"phone": "x"}}, "FIELD_MAPPINGS.generic.phone: not a document field"),
        ({"generic": {"about": {"pth": "x"}}}, "FIELD_MAPPINGS.generic.about: unknown key 'pth'"),
        ({"generic": {"about": {"join": "x"}}}, "FIELD_MAPPINGS.generic.about.join: expected a non-empty list"),
        ({"generic": {"about": {"path": "a", "value": "b"}}}, "needs exactly one of"),
        (
            {"generic": {"context": {"path": "a", "format": "no placeholder"}}},
            "format: must be text containing {value}",
        ),
        ({"nosuchcrm": {"about": "x"}}, "unknown source(s): nosuchcrm"),
        ({"generic": {"about": 42}}, "expected a path string or an object"),
    ],
)
def test_invalid_mappings_fail_at_start_with_a_clear_message(mappings, message):
    with pytest.raises(ConfigError) as raised:
        compile_mappings(Settings.from_env({"FIELD_MAPPINGS": json.dumps(mappings)}))

    assert message in str(raised.value)


def test_mappings_file_is_read_and_checked(tmp_path):
    good = tmp_path / "mappings.json"
    good.write_text(json.dumps({"generic": {"context": "objective"}}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")

    assert Settings.from_env({"FIELD_MAPPINGS_FILE": str(good)}).field_mappings == {"generic": {"context": "objective"}}
    with pytest.raises(ConfigError, match=r"FIELD_MAPPINGS_FILE .* is not valid JSON"):
        Settings.from_env({"FIELD_MAPPINGS_FILE": str(bad)})
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings.from_env({"FIELD_MAPPINGS_FILE": str(tmp_path / "missing.json")})


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"pilot": "x"}], 'must be an object with "when"'),
        ([{"when": {"path": "a"}, "pilot": "x"}], "exactly one of equals, in, exists"),
        ([{"when": {"path": "a", "equals": "b"}}], "sets none of"),
        ([{"when": {"path": "a", "exists": "yes"}, "pilot": "x"}], "must be true or false"),
    ],
)
def test_invalid_routing_rules_fail_at_start(rules, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"SOURCE_ROUTING": json.dumps({"generic": {"rules": rules}})})


def test_mapping_paths_match_keys_ignoring_case_and_separators():
    record: dict[str, Any] = {"Contact": {"First_Name": "Ana", "phones": [{"value": "+1"}, {"value": "+2"}]}}

    assert lookup(record, "contact.firstName") == "Ana"
    assert lookup(record, "contact.phones.1.value") == "+2"
    assert lookup(record, "contact.phones.9.value") is None
    assert FieldMapping.compile(GENERIC_MAPPING, {"name": {"value": "Fixed"}}).apply({}).name == "Fixed"
    assert FieldMapping.compile(GENERIC_MAPPING, {"email": None}).apply({"email": "a@b.co"}).email is None
