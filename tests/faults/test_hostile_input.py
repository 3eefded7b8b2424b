"""Hostile bodies per source, generated with hypothesis, through the real intake on moto.

Figures: 5xx answers, unhandled exceptions and queued calls, each 0. The bodies are
random JSON shapes, values of the wrong type where a source expects an object, an array
or a string, invalid UTF-8, deep nesting, huge strings and integers, and XML entity
attacks for Salesforce's SOAP. Ids in the generated bodies are never valid record ids,
so nothing may be queued. The quick profile draws a few dozen bodies per source with a
fixed seed; FAULTS_PROFILE=full draws hundreds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.faults.conftest import profile
from tests.faults.hostile import SALESFORCE_ORG, ZOHO, Tally, build_intake, drain, dumps, queued_count, request

QUICK = profile() == "quick"
EXAMPLES = 40 if QUICK else 400
HYPOTHESIS = hypothesis_settings(
    max_examples=EXAMPLES,
    derandomize=QUICK,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "0", "-1", "1e309", "zcrm_", "\x00", "\ud800", "\ufffe", "💥" * 50, "a" * 5000])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
#: never a valid record id: not a 1-20 digit positive number, whatever the type
hostile_ids = json_values.filter(
    lambda value: (
        not (
            (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**20)
            or (isinstance(value, str) and value.strip().removeprefix("zcrm_").isdigit() and len(value.strip()) <= 30)
        )
    )
)
huge_int = st.integers(min_value=4301, max_value=6000).map(lambda digits: "9" * digits)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"\xff\xfe\x00{",
            b'{"name": "\xc3\x28"}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b"",
            b"   ",
            b"null",
            b"true",
            b'"text"',
            b"1e999999",
            b"NaN",
            b"[]",
            b"{}",
        ]
    ),
    huge_int.map(str.encode),
    huge_int.map(lambda number: f'{{"id": {number}, "ids": [{number}], "objectId": {number}}}'.encode()),
    huge_int.map(lambda number: f'[{{"objectId": {number}, "subscriptionType": "contact.creation"}}]'.encode()),
)


def with_value(template: Callable[[Any], Any]) -> st.SearchStrategy[bytes]:
    """JSON bodies of a source's shape with one hostile value in a typed position."""
    return st.builds(lambda value: dumps(template(value)), json_values)


def with_id(template: Callable[[Any], Any]) -> st.SearchStrategy[bytes]:
    """JSON bodies of a source's shape whose record id is hostile."""
    return st.builds(lambda value: dumps(template(value)), hostile_ids)


GENERIC = st.one_of(
    json_values.map(dumps),
    with_value(lambda v: {"type": "lead.created", "timestamp": "2026-01-01T00:00:00Z", "data": v}),
    with_value(lambda v: [v, {"name": v}]),
    with_value(lambda v: {"name": v, "first_name": v, "phone": v, "email": v, "tags": v, "address": v, "id": v}),
    with_value(lambda v: {"address__city": v, "address": v, "labels": [v, v]}),
    st.dictionaries(st.text(max_size=20), json_values, max_size=6).map(dumps),
)
HUBSPOT = st.one_of(
    json_values.map(dumps),
    with_value(lambda v: [v]),
    with_value(lambda v: [{"subscriptionType": v, "objectId": 1, "objectTypeId": v, "eventType": v}]),
    with_id(lambda v: [{"subscriptionType": "contact.creation", "objectId": v, "portalId": v}]),
    with_id(lambda v: [{"subscriptionType": "object.creation", "objectTypeId": "0-1", "objectId": v}]),
    with_value(lambda v: {"properties": v, "portal-id": v, "vid": v}),
    with_value(lambda v: {"properties": {"firstname": v, "phone": {"value": v}}, "hs_object_id": "x/\n"}),
    with_value(lambda v: {"vid": {"nested": v}, "portalId": v, "firstname": v, "hs_lead_status": v}),
)
PIPEDRIVE = st.one_of(
    json_values.map(dumps),
    with_value(lambda v: {"meta": v, "data": v}),
    with_value(lambda v: {"meta": {"action": v, "entity": v, "company_id": v}, "data": {"id": 1}}),
    with_id(lambda v: {"meta": {"action": "create", "entity": "person", "entity_id": v}, "data": {"id": v}}),
    with_value(
        lambda v: {
            "meta": {"action": "create", "entity": "person", "company_id": v, "host": v},
            "data": {"id": -1, "name": v, "phones": v, "emails": v, "org_id": v, "label_ids": v, "custom_fields": v},
        }
    ),
    with_id(lambda v: {"meta": {"action": "create", "entity": "lead"}, "data": {"id": "l1", "person_id": v}}),
    with_id(lambda v: {"meta": {"action": "create", "entity": "deal"}, "data": {"id": v, "person_id": v}}),
    with_value(
        lambda v: {"meta": {"action": "create", "entity": "deal"}, "data": {"id": 5, "person_id": None, "org_id": v}}
    ),
    with_value(lambda v: {"v": 1, "event": v, "current": v, "meta": v}),
    with_value(lambda v: {"v": 1, "event": "added.person", "current": {"id": v, "phone": v, "postal_address": v}}),
)
ZOHO_NOTIFICATION = {"channel_id": ZOHO["channel_id"], "token": ZOHO["notification_token"]}
ZOHO_BODIES = st.one_of(
    json_values.map(dumps),
    with_value(lambda v: {**ZOHO_NOTIFICATION, "operation": v, "module": v, "ids": v}),
    with_id(lambda v: {**ZOHO_NOTIFICATION, "operation": "insert", "module": "Leads", "ids": [v, v]}),
    with_value(
        lambda v: {
            **ZOHO_NOTIFICATION,
            "operation": "insert",
            "module": "Leads",
            "ids": ["abc"],
            "affected_values": v,
        }
    ),
    with_value(lambda v: {"channel_id": v, "token": v, "ids": v}),
    with_id(lambda v: {"id": v, "First_Name": v, "Phone": v, "Tag": v, "Lead_Id": v}),
    with_value(lambda v: {"Tag": [v, {"name": v}], "Company": v, "id": "zcrm_x"}),
)


def soap(notifications: str, org: str = SALESFORCE_ORG, prolog: str = "") -> bytes:
    body = (
        f'{prolog}<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>{notifications}</notifications></soapenv:Body></soapenv:Envelope>"
    )
    return body.encode("utf-8", "surrogatepass")


XML_ATTACKS = [
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>',
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY % xxe SYSTEM "http://127.0.0.1:1/x"> %xxe;]>',
    '<?xml version="1.0" encoding="ebcdic-nonsense"?>',
    '<?xml version="1.0" encoding="UTF-16"?>',
]
xml_text = st.text(max_size=60).map(lambda text: text.replace("&", "&amp;").replace("<", "&lt;"))
SALESFORCE = st.one_of(
    st.sampled_from(XML_ATTACKS).map(lambda prolog: soap("<Notification><Id>1</Id></Notification>", prolog=prolog)),
    st.sampled_from(XML_ATTACKS).map(lambda prolog: (prolog + "<a>&lol2;&xxe;</a>").encode()),
    xml_text.map(
        lambda text: soap(
            f"<Notification><Id>{text}</Id><sObject><sf:Id xmlns:sf='x'>{text}</sf:Id></sObject></Notification>"
        )
    ),
    xml_text.map(
        lambda text: soap("<Notification><sObject>" + "<a>" * 2000 + text + "</a>" * 2000 + "</sObject></Notification>")
    ),
    xml_text.map(lambda text: soap("<Notification/>" * 101)),
    xml_text.map(lambda text: soap(f"<Notification><sObject><Phone>{text}</Phone></sObject></Notification>", org=text)),
    st.binary(max_size=200).map(lambda raw: soap("") + raw),
    st.just(b"<" * 10_000),
)
STRATEGIES: dict[str, tuple[st.SearchStrategy[bytes], str]] = {
    "generic": (st.one_of(GENERIC, raw_bodies), "application/json"),
    "hubspot": (st.one_of(HUBSPOT, raw_bodies), "application/json"),
    "pipedrive": (st.one_of(PIPEDRIVE, raw_bodies), "application/json"),
    "zoho": (st.one_of(ZOHO_BODIES, raw_bodies), "application/json"),
    "salesforce": (SALESFORCE, "text/xml"),
}


@pytest.mark.parametrize("source", list(STRATEGIES))
def test_hostile_bodies_never_answer_5xx_raise_or_queue(source, settings, record_figure):
    intake = build_intake(settings)
    tally = Tally()
    strategy, content_type = STRATEGIES[source]

    @HYPOTHESIS
    @given(body=strategy)
    def send(body: bytes) -> None:
        tally.run(intake, request(source, body, content_type))

    send()
    queued = queued_count(settings)
    figures = [
        record_figure(f"hostile input {source}", "5xx answers", tally.server_errors, "0", tally.server_errors == 0),
        record_figure(f"hostile input {source}", "unhandled exceptions", tally.exceptions, "0", tally.exceptions == 0),
        record_figure(f"hostile input {source}", "queued calls", queued, "0", queued == 0),
    ]
    assert tally.requests >= min(EXAMPLES, 10)
    queued_ids = [body[:200] for body in drain(settings)]
    assert all(figure.on_target for figure in figures), (tally.failures or tally.first_failure, queued_ids)


AUTH_HEADERS = [
    "authorization",
    "x-api-key",
    "x-zoho-token",
    "x-hubspot-signature",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-hubspot-signature-version",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]
header_text = st.text(max_size=60) | st.sampled_from(
    ["\ud800", "Bearer \udfff", "Basic \ud800", "Basic ====", "v1,\x00", "v2", "v1", "9" * 30, "é" * 100]
)


@pytest.mark.parametrize("source", list(STRATEGIES))
def test_hostile_headers_and_urls_never_answer_5xx_or_authenticate(source, settings, record_figure):
    intake = build_intake(settings)
    tally = Tally()
    accepted: list[int] = []
    _, content_type = STRATEGIES[source]
    body = (
        b'{"id": "h-1", "name": "Hostile Headers", "phone": "+1 512 555 0142"}'
        if source != "salesforce"
        else soap("<Notification><sObject><Id>00Q5f00000Lk9XyEAJ</Id></sObject></Notification>", org="00D5f000005KcCo")
    )

    @HYPOTHESIS
    @given(headers=st.dictionaries(st.sampled_from(AUTH_HEADERS), header_text, max_size=4), query=header_text)
    def send(headers: dict[str, str], query: str) -> None:
        built = request(source, body, content_type, **{"authorization": "", "x-api-key": "", "x-zoho-token": ""})
        hostile = dataclasses.replace(
            built,
            headers={**built.headers, **headers},
            query=query,
            public_url=built.public_url + "?" + query,
        )
        reply = tally.run(intake, hostile)
        if reply is not None and reply.status < 300:
            accepted.append(reply.status)

    send()
    queued = queued_count(settings)
    case = f"hostile headers {source}"
    figures = [
        record_figure(case, "5xx answers", tally.server_errors, "0", tally.server_errors == 0),
        record_figure(case, "unhandled exceptions", tally.exceptions, "0", tally.exceptions == 0),
        record_figure(case, "accepted or queued", len(accepted) + queued, "0", not accepted and queued == 0),
    ]
    assert all(figure.on_target for figure in figures), (tally.failures or tally.first_failure, accepted)


def test_an_oversized_hubspot_batch_is_refused_before_any_work(settings, record_figure):
    """Issue 11: 2,000 events took 25.8 s to answer (HubSpot waits 5 s). Now 413 before per-event work."""
    intake = build_intake(settings)
    item = {"subscriptionType": "contact.creation", "portalId": 62515}
    oversized = dumps([{**item, "objectId": index + 1} for index in range(2000)])
    bounded = dumps([{**item, "objectId": index + 1} for index in range(100)])

    refused = intake.handle(request("hubspot", oversized))
    accepted = intake.handle(request("hubspot", bounded))
    queued = queued_count(settings)

    figure = record_figure(
        "hostile input hubspot", "2,000 events: answer", refused.status, "413", refused.status == 413
    )
    assert figure.on_target
    assert accepted.status == 200
    assert queued == 100  # the bounded delivery: one lead per contact, nothing of the refused one
