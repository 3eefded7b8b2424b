"""Pipedrive enrichment over real HTTP against the API stand-in (every outcome, retries and their limits),
the stand-in's admin API, and lead/deal events through intake and dispatcher on moto to Unpod's sandbox."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
import urllib3

from lead_caller.crms.pipedrive.api import PipedrivePersons
from lead_caller.crms.pipedrive.webhook import PipedriveSource
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.enrichment import Fetched
from local.pipedrive_api import ADDRESS_FIELD, JOB_TITLE_FIELD, PipedriveApiStandIn
from tests.unit.test_pipedrive_source import USER_MAPPING, document, make_intake, request, sample

SOURCE = PipedriveSource()


@pytest.fixture
def standin():
    with PipedriveApiStandIn() as running:
        yield running


def enricher(base_url: str, **overrides: Any) -> PipedrivePersons:
    """An enricher with test-sized timeouts and backoff."""
    options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 1.0,
        "max_retries": 2,
        "max_retry_after": 0.2,
        "backoff_factor": 0.01,
    }
    options.update(overrides)
    return PipedrivePersons(base_url, **options)


def spec(name: str = "v2-lead") -> dict[str, Any]:
    """The enrichment spec the source queues for a sample event."""
    [lead] = SOURCE.parse(request(sample(name)))
    assert lead.enrichment is not None
    return dict(lead.enrichment)


def fetch_one(standin: PipedriveApiStandIn, request_spec: dict[str, Any] | None = None, **overrides: Any) -> Fetched:
    [fetched] = enricher(standin.base_url, **overrides).fetch(
        {"api_token": standin.api_token}, [request_spec or spec()]
    )
    return fetched


def paths(standin: PipedriveApiStandIn) -> list[tuple[str, int | None]]:
    return [(item["path"], item["status"]) for item in standin.requests]


# ---- outcomes over HTTP -------------------------------------------------------------------


def test_a_lead_gets_its_person_and_organisation_name(standin):
    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    record = fetched.record
    assert record is not None
    assert (record["name"], record["phone"], record["email"]) == (
        "Daniel Okafor",
        "+1 (415) 555-0187",
        "daniel.okafor@lead-org.example",
    )
    assert record["org_name"] == "Lead Org"
    assert record["organization"]["id"] == 2
    assert record["lead"]["title"] == "Lead Org lead"
    assert record["event"]["entity"] == "lead"
    doc = document(record)
    assert (doc.name, doc.contact_number, doc.company_name) == ("Daniel Okafor", "+14155550187", "Lead Org")
    assert doc.title == "Lead Org lead"
    assert doc.about == "Lead source: Manually created"
    assert doc.labels == ("pipedrive", "lead")
    assert paths(standin) == [("/api/v2/persons/11", 200), ("/api/v2/organizations/2", 200)]
    assert all(item["authenticated"] for item in standin.requests)


def test_a_deal_gets_its_person_with_custom_fields_at_the_documented_paths(standin):
    fetched = fetch_one(standin, spec("v2-deal"))

    assert fetched.outcome == "ok"
    doc = document(fetched.record, USER_MAPPING)
    assert (doc.name, doc.contact_number, doc.alternate_number) == ("Maria Gonzalez", "+15125550142", "+15125550199")
    assert doc.company_name == "Acme Logistics"
    assert doc.title == "Sample Org deal"
    assert doc.occupation == "Director of Operations"  # API v2 sends the varchar as a plain value
    assert doc.address == "1200 Congress Ave, Suite 400, Austin, TX 78701"
    assert fetched.record is not None
    assert fetched.record["custom_fields"][JOB_TITLE_FIELD] == {"value": "Director of Operations"}
    assert fetched.record["custom_fields"][ADDRESS_FIELD]["locality"] == "Austin"


def test_a_deleted_person_is_gone(standin):
    standin.delete_person(11)

    fetched = fetch_one(standin)

    assert fetched.outcome == "gone"
    assert "404" in fetched.message
    assert paths(standin) == [("/api/v2/persons/11", 404)]


def test_a_person_marked_deleted_is_gone(standin):
    standin.add_person({**standin.persons[11], "is_deleted": True})

    assert fetch_one(standin).outcome == "gone"


def test_a_refused_token_is_permanent_and_never_quoted(standin):
    [fetched] = enricher(standin.base_url).fetch({"api_token": "revoked-token-123456"}, [spec()])

    assert fetched.outcome == "permanent"
    assert "401" in fetched.message
    assert "revoked-token-123456" not in fetched.message
    assert paths(standin) == [("/api/v2/persons/11", 401)]


def test_a_missing_api_token_is_permanent_without_asking(standin):
    fetched_list = enricher(standin.base_url).fetch({}, [spec(), spec("v2-deal")])

    assert [f.outcome for f in fetched_list] == ["permanent", "permanent"]
    assert "api_token" in fetched_list[0].message
    assert standin.requests == []


def test_429_then_success_is_retried_in_place(standin):
    standin.enqueue_fault("status", status=429, headers={"Retry-After": "1"}, match="/persons/")

    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    assert paths(standin)[:2] == [("/api/v2/persons/11", 429), ("/api/v2/persons/11", 200)]


def test_429_exhausted_is_transient_and_the_rest_of_the_batch_is_not_asked(standin):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "10"})

    fetched = enricher(standin.base_url).fetch({"api_token": standin.api_token}, [spec(), spec("v2-deal")])

    assert [f.outcome for f in fetched] == ["transient", "transient"]
    assert "429" in fetched[0].message
    assert "not asked" in fetched[1].message
    assert paths(standin) == [("/api/v2/persons/11", 429)] * 3  # 1 try + max_retries, nothing for person 8


@pytest.mark.parametrize(("failures", "outcome"), [(1, "ok"), (3, "transient")])
def test_500_is_retried_then_transient(standin, failures, outcome):
    for _ in range(failures):
        standin.enqueue_fault("status", status=500)

    assert fetch_one(standin).outcome == outcome


def test_a_slow_answer_is_read_again(standin):
    standin.enqueue_fault("delay", seconds=2.0)

    fetched = fetch_one(standin, read_timeout=0.3)

    assert fetched.outcome == "ok"  # GET is idempotent: a read timeout is retried


def test_an_unreachable_api_is_transient():
    with PipedriveApiStandIn() as gone:
        base_url = gone.base_url
    fetched = enricher(base_url, max_retries=0).fetch({"api_token": "t"}, [spec()])

    assert fetched[0].outcome == "transient"


def test_an_organisation_404_still_gives_the_person_without_a_company(standin):
    standin.delete_organization(2)

    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    assert fetched.record is not None
    assert fetched.record["org_name"] is None
    assert "organization" not in fetched.record
    assert document(fetched.record).company_name is None


def test_an_organisation_outage_does_not_delay_the_call(standin):
    for _ in range(3):
        standin.enqueue_fault("status", status=503, match="/organizations/")

    fetched = fetch_one(standin)

    assert fetched.outcome == "ok"
    assert fetched.record is not None
    assert fetched.record["org_name"] is None


def test_persons_and_organisations_are_asked_once_per_batch(standin):
    fetched = enricher(standin.base_url).fetch(
        {"api_token": standin.api_token}, [spec("v2-deal"), spec("v2-deal"), spec()]
    )

    assert [f.outcome for f in fetched] == ["ok", "ok", "ok"]
    assert [path for path, _ in paths(standin)] == [
        "/api/v2/persons/8",
        "/api/v2/organizations/1",
        "/api/v2/persons/11",
        "/api/v2/organizations/2",
    ]


def test_company_domain_picks_the_company_host_only_for_the_default_base_url():
    default = PipedrivePersons()

    assert default._base_url({"company_domain": "acme"}) == "https://acme.pipedrive.com"
    assert default._base_url({"company_domain": "acme.pipedrive.com"}) == "https://acme.pipedrive.com"
    assert default._base_url({}) == "https://api.pipedrive.com"
    assert PipedrivePersons("http://127.0.0.1:1")._base_url({"company_domain": "acme"}) == "http://127.0.0.1:1"
    [fetched] = default.fetch({"api_token": "t", "company_domain": "evil.example/x"}, [spec()])
    assert fetched.outcome == "permanent"
    assert "company_domain" in fetched.message


def test_no_token_email_or_phone_is_logged(standin, captured_logs):
    for _ in range(3):
        standin.enqueue_fault("status", status=503, match="/organizations/")

    fetch_one(standin)
    enricher(standin.base_url).fetch({"api_token": "revoked-token-123456"}, [spec()])

    logs = captured_logs()
    assert "Pipedrive organisation not fetched" in logs
    for secret in (standin.api_token, "revoked-token-123456", "daniel.okafor@lead-org.example", "555-0187"):
        assert secret not in logs


# ---- the stand-in's own HTTP API ----------------------------------------------------------


def test_the_standin_speaks_pipedrives_envelope_and_admin_api(standin):
    http = urllib3.PoolManager()
    person = http.request("GET", f"{standin.base_url}/api/v2/persons/8?api_token={standin.api_token}")
    missing = http.request("GET", f"{standin.base_url}/api/v2/persons/999", headers={"x-api-token": standin.api_token})
    unauthorized = http.request("GET", f"{standin.base_url}/api/v2/persons/8")

    assert person.status == 200
    assert json.loads(person.data)["success"] is True
    assert json.loads(person.data)["data"]["name"] == "Maria Gonzalez"
    assert person.headers["x-ratelimit-limit"]
    assert (missing.status, json.loads(missing.data)["error"]) == (404, "Person not found")
    assert (unauthorized.status, json.loads(unauthorized.data)["error"]) == (401, "unauthorized access")
    recorded = json.loads(http.request("GET", f"{standin.admin_url}/requests").data)["data"]
    assert [item["path"] for item in recorded] == ["/api/v2/persons/8", "/api/v2/persons/999", "/api/v2/persons/8"]
    assert standin.api_token not in json.dumps(recorded)

    added = http.request("POST", f"{standin.admin_url}/persons", body=json.dumps({"id": 42, "name": "New Person"}))
    fault = http.request("POST", f"{standin.admin_url}/faults", body=json.dumps({"kind": "status", "status": 502}))
    bad_fault = http.request("POST", f"{standin.admin_url}/faults", body=json.dumps({"kind": "explode"}))
    assert (added.status, fault.status, bad_fault.status) == (201, 201, 400)
    assert json.loads(http.request("GET", f"{standin.admin_url}/faults").data)["count"] == 1
    assert http.request("GET", f"{standin.base_url}/api/v2/persons/42?api_token={standin.api_token}").status == 502
    assert http.request("GET", f"{standin.base_url}/api/v2/persons/42?api_token={standin.api_token}").status == 200
    assert http.request("DELETE", f"{standin.admin_url}/persons/42").status == 200
    assert 42 not in standin.persons
    assert http.request("POST", f"{standin.admin_url}/reset").status == 200
    assert standin.requests == []
    assert sorted(standin.persons) == [8, 11]
    assert json.loads(http.request("GET", f"{standin.admin_url}/config").data)["api_token"] == standin.api_token


# ---- end to end: webhook -> queue -> dispatcher -> Pipedrive stand-in -> Unpod sandbox --------------


@pytest.fixture
def pipedrive_dispatcher(settings, store, client, credentials, standin) -> Dispatcher:
    return Dispatcher(
        settings,
        store,
        client,
        lambda: credentials,
        enrichers={"pipedrive_person": enricher(standin.base_url)},
        crm_credentials=lambda: {"pipedrive": {"api_token": standin.api_token}},
    )


def deliver(settings, name: str) -> QueuedRecord:
    """POST a sample through the intake and take its message off the queue."""
    reply = make_intake(settings).handle(request(sample(name)))
    assert reply.status == 200
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return QueuedRecord(str(uuid.uuid4()), message["Body"], 1)


def test_a_lead_event_becomes_a_call_to_the_fetched_person(settings, store, sandbox, pipedrive_dispatcher):
    result = pipedrive_dispatcher.dispatch([deliver(settings, "v2-lead")])

    assert result.retry == {}
    [task] = sandbox.created_tasks
    assert task["input"]["name"] == "Daniel Okafor"
    assert task["input"]["contact_number"] == "+14155550187"
    assert task["input"]["company_name"] == "Lead Org"
    assert task["input"]["title"] == "Lead Org lead"
    assert task["input"]["document_id"] == "pipedrive-8087566-person-11"
    item = store.get("pipedrive#8087566-person-11")
    assert item["status"] == "call_requested"
    assert item["document"]["company_name"] == "Lead Org"


def test_the_person_and_their_deal_are_called_once(settings, store, sandbox, pipedrive_dispatcher):
    pipedrive_dispatcher.dispatch([deliver(settings, "v2-person")])

    reply = make_intake(settings).handle(request(sample("v2-deal")))  # a deal for the same person

    assert json.loads(reply.body)["results"][0]["status"] == "duplicate"
    assert len(sandbox.created_tasks) == 1


def test_a_lead_whose_person_was_deleted_is_rejected(settings, store, sandbox, standin, pipedrive_dispatcher):
    standin.delete_person(11)

    result = pipedrive_dispatcher.dispatch([deliver(settings, "v2-lead")])

    assert result.retry == {}
    item = store.get("pipedrive#8087566-person-11")
    assert item["status"] == "rejected"
    assert "no longer exists" in item["reason"]
    assert sandbox.requests == []


def test_a_refused_pipedrive_token_fails_the_lead(settings, store, sandbox, pipedrive_dispatcher):
    pipedrive_dispatcher.crm_credentials = lambda: {"pipedrive": {"api_token": "revoked"}}

    result = pipedrive_dispatcher.dispatch([deliver(settings, "v2-lead")])

    assert result.retry == {}
    item = store.get("pipedrive#8087566-person-11")
    assert item["status"] == "failed"
    assert "Pipedrive refused the API token" in item["reason"]
    assert sandbox.requests == []


def test_a_rate_limited_lead_is_left_for_sqs_to_retry(settings, store, sandbox, standin, pipedrive_dispatcher):
    for _ in range(3):
        standin.enqueue_fault("status", status=429, headers={"Retry-After": "2"})
    record = deliver(settings, "v2-lead")

    result = pipedrive_dispatcher.dispatch([record])

    assert record.message_id in result.retry
    assert store.get("pipedrive#8087566-person-11")["status"] == "dispatching"
    assert sandbox.requests == []

    retried = pipedrive_dispatcher.dispatch([QueuedRecord(record.message_id, record.body, 2)])

    assert retried.retry == {}
    assert store.get("pipedrive#8087566-person-11")["status"] == "call_requested"


# ---- v2 create.person: the organisation looked up in the dispatch path ----------------------


def test_a_v2_person_is_called_with_its_organisations_name(settings, store, sandbox, standin, pipedrive_dispatcher):
    result = pipedrive_dispatcher.dispatch([deliver(settings, "v2-person")])

    assert result.retry == {}
    [task] = sandbox.created_tasks
    assert (task["input"]["name"], task["input"]["company_name"]) == ("Maria Gonzalez", "Acme Logistics")
    assert task["input"]["contact_number"] == "+15125550142"
    assert paths(standin) == [("/api/v2/organizations/1", 200)]  # the person itself is not asked for
    assert store.get("pipedrive#8087566-person-8")["document"]["company_name"] == "Acme Logistics"


def test_persons_of_one_organisation_ask_for_it_once(standin):
    client = enricher(standin.base_url)
    [person] = SOURCE.parse(request(sample("v2-person")))
    assert person.enrichment is not None
    other = {**person.enrichment, "person_id": 9, "person": {**person.enrichment["person"], "id": 9}}

    first = client.fetch({"api_token": standin.api_token}, [person.enrichment, other])
    again = client.fetch({"api_token": standin.api_token}, [person.enrichment])  # the next invocation

    assert [fetched.record["org_name"] for fetched in first + again if fetched.record] == ["Acme Logistics"] * 3
    assert paths(standin) == [("/api/v2/organizations/1", 200)]


def test_a_v2_person_is_still_called_without_a_token_or_an_organisation(standin):
    [person] = SOURCE.parse(request(sample("v2-person")))
    assert person.enrichment is not None
    standin.enqueue_fault("status", status=503, match="/organizations/")

    [without_token] = enricher(standin.base_url).fetch({}, [person.enrichment])
    [org_down] = enricher(standin.base_url, max_retries=0).fetch({"api_token": standin.api_token}, [person.enrichment])

    for fetched in (without_token, org_down):
        assert fetched.outcome == "ok"
        assert fetched.record is not None
        assert fetched.record["name"] == "Maria Gonzalez"
        assert document(fetched.record).company_name is None


def test_a_v2_person_without_a_phone_is_still_rejected_at_intake(settings):
    body = sample("v2-person")
    body["data"]["phones"] = []
    reply = make_intake(settings).handle(request(body))

    assert json.loads(reply.body)["results"][0]["status"] == "rejected"
    assert boto3.client("sqs").receive_message(QueueUrl=settings.queue_url).get("Messages") is None
