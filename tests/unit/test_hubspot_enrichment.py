"""HubSpot enrichment over real HTTP against the CRM API stand-in (every outcome, retries and their
limits), the stand-in itself, and the dispatcher end to end with moto and the Unpod sandbox."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3

from lead_caller.contacts import build_document
from lead_caller.crms.hubspot.api import STANDARD_PROPERTIES, HubSpotContacts
from lead_caller.crms.hubspot.webhook import HUBSPOT_MAPPING
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.queue import LeadQueue
from local.hubspot_api import STANDIN_TOKEN, HubSpotApiStandIn
from tests.unit.test_hubspot_source import SAMPLE_91, live

TOKEN = {"access_token": STANDIN_TOKEN}


@pytest.fixture
def standin() -> Iterator[HubSpotApiStandIn]:
    """A fresh CRM API stand-in on 127.0.0.1 holding the sample contacts."""
    with HubSpotApiStandIn() as running:
        yield running


def fast_enricher(base_url: str, **overrides: Any) -> HubSpotContacts:
    """An enricher with test-sized timeouts and backoff."""
    options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 1.0,
        "max_retries": 2,
        "max_retry_after": 0.05,
        "backoff_factor": 0.01,
    }
    options.update(overrides)
    return HubSpotContacts(base_url, **options)


@pytest.fixture
def enricher(standin: HubSpotApiStandIn) -> HubSpotContacts:
    return fast_enricher(standin.base_url)


def spec(object_id: int | str, portal: int = 62515) -> dict[str, Any]:
    """The enrichment the source queues for a contact.creation event."""
    return {"kind": "hubspot_contact", "object_id": str(object_id), "portal_id": portal}


def document(record: Any, record_id: str) -> dict[str, Any]:
    """The Unpod document the built-in mapping makes of a fetched record."""
    raw = FieldMapping.compile(HUBSPOT_MAPPING).apply(record)
    raw.record_id = record_id
    built, rejection, _ = build_document("hubspot", raw, "US")
    assert built is not None, rejection
    return built.to_unpod()


# ── outcomes ───────────────────────────────────────────────────────────


def test_found_contacts_come_back_flat_from_one_batch_read(standin, enricher):
    fetched = enricher.fetch(TOKEN, [spec(1246978), spec(65059681032)])

    assert [f.outcome for f in fetched] == ["ok", "ok"]
    maria, priya = (f.record for f in fetched)
    assert maria is not None
    assert priya is not None
    assert (maria["firstname"], maria["phone"], maria["hs_object_id"], maria["portal_id"]) == (
        "Maria",
        "+1 (512) 555-0142",
        "1246978",
        "62515",
    )
    assert document(maria, "62515:1246978") == {
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "contact_number": "+15125550142",
        "alternate_number": "+15125550199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States",
        "about": "Requested a callback about fleet pricing.",
        "labels": ["NEW", "lead"],
        "document_id": "hubspot-62515:1246978",
    }
    assert document(priya, "62515:65059681032")["contact_number"] == "+442079460321"
    [sent] = standin.requests
    assert (sent["method"], sent["path"], sent["authorized"]) == ("POST", "/crm/v3/objects/contacts/batch/read", True)
    assert sent["json"]["inputs"] == [{"id": "1246978"}, {"id": "65059681032"}]
    assert set(STANDARD_PROPERTIES) <= set(sent["json"]["properties"])


def test_a_deleted_contact_is_gone_and_the_others_found_in_the_same_request(standin, enricher):
    standin.delete_contact(1246979)

    fetched = enricher.fetch(TOKEN, [spec(1246978), spec(1246979)])

    assert [f.outcome for f in fetched] == ["ok", "gone"]
    assert "not found" in fetched[1].message
    assert [r["status"] for r in standin.requests] == [207]


def test_when_every_contact_is_missing_all_are_gone(standin, enricher):
    fetched = enricher.fetch(TOKEN, [spec(1), spec(2)])

    assert [f.outcome for f in fetched] == ["gone", "gone"]
    assert standin.requests[0]["status"] == 207


def test_a_merged_contact_is_found_under_its_old_id(standin, enricher):
    standin.delete_contact(1246978)
    standin.add_contact(
        99887766,
        {"firstname": "Maria", "lastname": "Gonzalez", "phone": "+15125550142", "hs_merged_object_ids": "1246978"},
    )

    [fetched] = enricher.fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "ok"
    assert fetched.record is not None
    assert fetched.record["firstname"] == "Maria"


def test_repeated_ids_are_asked_once_and_answered_for_each_request(standin, enricher):
    fetched = enricher.fetch(TOKEN, [spec(1246978), spec(1246978), spec(1246979)])

    assert [f.outcome for f in fetched] == ["ok", "ok", "ok"]
    assert standin.requests[0]["json"]["inputs"] == [{"id": "1246978"}, {"id": "1246979"}]


def test_more_than_100_ids_are_read_in_chunks_of_100(standin, enricher):
    fetched = enricher.fetch(TOKEN, [spec(1246978)] + [spec(10_000 + i) for i in range(149)])

    assert [len(r["json"]["inputs"]) for r in standin.requests] == [100, 50]
    assert fetched[0].outcome == "ok"
    assert {f.outcome for f in fetched[1:]} == {"gone"}


def test_extra_properties_from_the_crm_secret_are_requested(standin, enricher):
    standin.add_contact(5551, {"firstname": "Ada", "phone": "+15125550101", "call_objective": "Book a demo"})

    [fetched] = enricher.fetch({**TOKEN, "extra_properties": ["call_objective", "bad name!"]}, [spec(5551)])

    assert fetched.record is not None
    assert fetched.record["call_objective"] == "Book a demo"
    properties = standin.requests[0]["json"]["properties"]
    assert "call_objective" in properties
    assert "bad name!" not in properties


def test_a_wrong_token_is_permanent_for_every_contact_without_retrying(standin, enricher):
    fetched = enricher.fetch({"access_token": "pat-na1-revoked"}, [spec(1246978), spec(1246979)])

    assert [f.outcome for f in fetched] == ["permanent", "permanent"]
    assert "HTTP 401" in fetched[0].message
    assert len(standin.requests) == 1


def test_a_403_is_permanent(standin, enricher):
    standin.enqueue_fault("status", status=403)

    [fetched] = enricher.fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "permanent"
    assert "HTTP 403" in fetched.message


def test_a_429_is_retried_honouring_retry_after_then_succeeds(standin, enricher):
    standin.enqueue_fault("status", status=429, headers={"Retry-After": "1"})

    [fetched] = enricher.fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "ok"
    assert [r["status"] for r in standin.requests] == [429, 200]


def test_429_until_the_retries_run_out_is_transient_for_every_contact(standin, enricher):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "1"})

    fetched = enricher.fetch(TOKEN, [spec(1246978), spec(1246979)])

    assert [f.outcome for f in fetched] == ["transient", "transient"]
    assert "HTTP 429: TEN_SECONDLY_ROLLING" in fetched[0].message
    assert len(standin.requests) == 3  # the first try and max_retries=2 retries


def test_500_is_retried_then_transient(standin, enricher):
    for _ in range(3):
        standin.enqueue_fault("status", status=500)

    [fetched] = enricher.fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "transient"
    assert "HTTP 500" in fetched.message
    assert len(standin.requests) == 3


def test_a_503_then_success_is_ok(standin, enricher):
    standin.enqueue_fault("status", status=503, body="<html>unavailable</html>")

    [fetched] = enricher.fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "ok"


def test_a_dropped_connection_or_slow_answer_is_asked_again(standin):
    standin.enqueue_fault("drop")
    standin.enqueue_fault("delay", seconds=0.6)

    [fetched] = fast_enricher(standin.base_url, read_timeout=0.3).fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "ok"
    assert [r["fault"] for r in standin.requests] == ["drop", "delay", None]


def test_a_refused_connection_is_transient():
    with HubSpotApiStandIn() as stopped:
        base_url = stopped.base_url  # nothing listens there once it stops

    [fetched] = fast_enricher(base_url).fetch(TOKEN, [spec(1246978)])

    assert fetched.outcome == "transient"
    assert "could not be reached" in fetched.message


@pytest.mark.parametrize("credentials", [{}, {"access_token": ""}, {"access_token": 42}, {"access_token": "pat\nx"}])
def test_a_missing_or_malformed_token_is_permanent_and_nothing_is_sent(standin, enricher, credentials):
    fetched = enricher.fetch(credentials, [spec(1246978), spec(1246979)])

    assert [f.outcome for f in fetched] == ["permanent", "permanent"]
    assert "access_token" in fetched[0].message
    assert standin.requests == []


def test_an_enrichment_without_an_object_id_is_permanent_for_that_lead_only(standin, enricher):
    fetched = enricher.fetch(TOKEN, [{"kind": "hubspot_contact"}, spec(1246978)])

    assert [f.outcome for f in fetched] == ["permanent", "ok"]


def test_fetch_logs_no_token_or_personal_data(standin, enricher, captured_logs):
    enricher.fetch(TOKEN, [spec(1246978)])
    enricher.fetch({"access_token": "pat-na1-revoked-secret"}, [spec(1246978)])
    standin.enqueue_fault("status", status=400, body={"status": "error", "message": "bad", "category": "VALIDATION"})
    enricher.fetch(TOKEN, [spec(1246978)])

    logs = captured_logs()
    assert "HubSpot batch read failed" in logs
    for secret in (STANDIN_TOKEN, "pat-na1-revoked-secret", "maria.gonzalez@", "555-0142", "Gonzalez"):
        assert secret not in logs


# ── the stand-in itself ────────────────────────────────────────────────


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=2.0)


def bearer(token: str = STANDIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_standin_serves_one_contact_by_id(standin, http):
    url = f"{standin.base_url}/crm/v3/objects/contacts/1246978?properties=firstname,phone"

    found = http.request("GET", url, headers=bearer())
    missing = http.request("GET", f"{standin.base_url}/crm/v3/objects/contacts/404404", headers=bearer())
    anonymous = http.request("GET", url)

    assert found.status == 200
    body = json.loads(found.data)
    assert body["id"] == "1246978"
    assert body["properties"]["firstname"] == "Maria"
    assert set(body["properties"]) == {"firstname", "phone", "hs_object_id", "createdate", "lastmodifieddate"}
    assert (missing.status, json.loads(missing.data)["category"]) == (404, "OBJECT_NOT_FOUND")
    assert (anonymous.status, json.loads(anonymous.data)["category"]) == (401, "INVALID_AUTHENTICATION")


def test_standin_batch_read_answers_like_hubspot(standin, http):
    url = f"{standin.base_url}/crm/v3/objects/contacts/batch/read"
    body = {"inputs": [{"id": "1246978"}, {"id": "31337"}], "properties": ["firstname", "fax"]}

    answer = http.request("POST", url, body=json.dumps(body), headers=bearer())
    too_many = http.request(
        "POST", url, body=json.dumps({"inputs": [{"id": str(i)} for i in range(101)]}), headers=bearer()
    )

    assert answer.status == 207
    payload = json.loads(answer.data)
    assert payload["results"][0]["properties"]["fax"] is None
    assert payload["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert payload["errors"][0]["context"] == {"ids": ["31337"]}
    assert too_many.status == 400


def test_standin_admin_api_over_http(standin, http):
    admin = standin.admin_url
    fault = http.request("POST", f"{admin}/faults", body=json.dumps({"kind": "status", "status": 502}))
    bad_fault = http.request("POST", f"{admin}/faults", body=json.dumps({"kind": "explode"}))
    added = http.request(
        "POST", f"{admin}/contacts", body=json.dumps({"id": "4242", "properties": {"firstname": "Grace"}})
    )
    pending = json.loads(http.request("GET", f"{admin}/faults").data)

    assert (fault.status, bad_fault.status, added.status) == (201, 400, 201)
    assert pending["data"] == [{"kind": "status", "status": 502, "headers": {}, "body": None}]
    assert json.loads(http.request("GET", f"{admin}/contacts").data)["data"]["4242"]["firstname"] == "Grace"

    [fetched] = fast_enricher(standin.base_url, max_retries=0).fetch(TOKEN, [spec(4242)])
    assert (fetched.outcome, fetched.message.split(":")[0]) == ("transient", "HTTP 502")
    recorded = json.loads(http.request("GET", f"{admin}/requests").data)["data"]
    assert recorded[0]["headers"]["authorization"] == "Bearer ***"

    assert http.request("DELETE", f"{admin}/contacts/4242").status == 200
    assert http.request("DELETE", f"{admin}/contacts/4242").status == 404
    assert http.request("POST", f"{admin}/reset").status == 200
    assert standin.requests == []
    assert sorted(standin.contacts) == ["1246978", "1246979", "65059681032"]
    assert http.request("GET", f"{admin}/nothing").status == 404


# ── the dispatcher end to end (moto, the Unpod sandbox, the stand-in) ─────


@pytest.fixture
def hubspot_dispatcher(settings, store, client, credentials, standin) -> Dispatcher:
    return Dispatcher(
        settings,
        store,
        client,
        lambda: credentials,
        enrichers={"hubspot_contact": fast_enricher(standin.base_url)},
        crm_credentials=lambda: {"hubspot": {"access_token": standin.access_token}},
    )


def thin_record(object_id: int, receive_count: int = 1) -> QueuedRecord:
    message = LeadMessage("hubspot", f"62515:{object_id}", time.time(), None, {}, spec(object_id))
    return QueuedRecord(str(uuid.uuid4()), message.to_json(), receive_count)


def test_a_contact_creation_event_becomes_a_create_task_with_the_fetched_contact(
    settings, store, hubspot_dispatcher, sandbox
):
    intake = Intake(
        settings=settings,
        store=store,
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: {"client_secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"},
    )
    assert intake.handle(live(SAMPLE_91)).status == 200
    messages = boto3.client("sqs").receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)["Messages"]
    records = [QueuedRecord(m["MessageId"], m["Body"], 1) for m in messages]

    result = hubspot_dispatcher.dispatch(records)

    assert result.retry == {}
    [create_task] = sandbox.requests
    documents = sorted(create_task["json"]["documents"], key=lambda d: d["document_id"])
    assert [(d["document_id"], d["name"], d["contact_number"]) for d in documents] == [
        ("hubspot-62515:1246978", "Maria Gonzalez", "+15125550142"),
        ("hubspot-62515:1246979", "James Okafor", "+14155550117"),
    ]
    item = store.get("hubspot#62515:1246978")
    assert item["status"] == "call_requested"
    assert item["document"]["name"] == "Maria Gonzalez"


def test_a_deleted_contact_is_recorded_rejected_and_not_called(hubspot_dispatcher, store, sandbox):
    result = hubspot_dispatcher.dispatch([thin_record(31337)])

    assert result.retry == {}
    item = store.get("hubspot#62515:31337")
    assert item["status"] == "rejected"
    assert "no longer exists" in item["reason"]
    assert sandbox.requests == []


def test_a_revoked_token_marks_the_lead_failed(hubspot_dispatcher, store, sandbox):
    hubspot_dispatcher.crm_credentials = lambda: {"hubspot": {"access_token": "pat-na1-revoked"}}

    result = hubspot_dispatcher.dispatch([thin_record(1246978)])

    assert result.retry == {}
    item = store.get("hubspot#62515:1246978")
    assert item["status"] == "failed"
    assert "401" in item["reason"]
    assert sandbox.requests == []


def test_a_rate_limited_read_leaves_the_message_for_sqs_to_retry(hubspot_dispatcher, store, sandbox, standin):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "1"})
    queued = thin_record(1246978)

    result = hubspot_dispatcher.dispatch([queued])

    assert queued.message_id in result.retry
    assert store.get("hubspot#62515:1246978")["status"] == "dispatching"
    assert sandbox.requests == []

    again = hubspot_dispatcher.dispatch([dataclasses.replace(queued, receive_count=2)])

    assert again.retry == {}
    assert store.get("hubspot#62515:1246978")["status"] == "call_requested"
    assert len(sandbox.requests) == 1
