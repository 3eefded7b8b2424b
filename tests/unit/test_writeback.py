"""Write-back over real HTTP against the CRM stand-ins, with the lead item on moto: a note/task per CRM,
429/5xx retried, permanent failures recorded, one note per task whatever the retries, the outbound
Standard Webhooks notification, the handler's partial batch failures, and no personal data in logs."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from standardwebhooks.webhooks import Webhook

from lead_caller.config import ConfigError, Settings
from lead_caller.crms.callnote import CallNote, CrmRecord, CrmWriter, JsonHttp
from lead_caller.crms.hubspot.api import HubSpotWriteback
from lead_caller.crms.pipedrive.api import PipedriveWriteback, writeback_targets
from lead_caller.crms.salesforce.api import SalesforceWriteback
from lead_caller.crms.zoho.api import ZohoRecords, ZohoWriteback
from lead_caller.outbound import OutboundWebhook
from lead_caller.store import dynamo_item, dynamo_values
from lead_caller.writeback import Writeback, WritebackState
from local.catch_hook import CatchHookStandIn
from local.hubspot_api import HubSpotApiStandIn
from local.pipedrive_api import PipedriveApiStandIn
from local.resources import create_resources
from local.salesforce_api import SalesforceApiStandIn
from local.stack import LambdaContextStub
from local.zoho_api import ZohoApiStandIn

EVENT = json.loads((Path(__file__).parents[2] / "events" / "call-completed.json").read_text())
TABLE = "lead-caller-leads"
MARIA_ZOHO = "5725767000003000064"
SF_LEAD = "00Q5f00000Lk9XyEAJ"
LEADS: dict[str, dict[str, Any]] = {
    "hubspot": {"pk": "hubspot#62515:1246978", "record_id": "62515:1246978"},
    "pipedrive": {"pk": "pipedrive#13177-person-8", "record_id": "13177-person-8"},
    "salesforce": {"pk": f"salesforce#{SF_LEAD}", "record_id": SF_LEAD},
    "zoho": {"pk": f"zoho#{MARIA_ZOHO}", "record_id": MARIA_ZOHO},
    "generic": {"pk": "generic#lead-42", "record_id": "lead-42"},
}
PHONE = "+1 (512) 555-0142"
EMAIL = "maria.gonzalez@acme-logistics.example"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


def fast_http() -> JsonHttp:
    return JsonHttp(connect_timeout=0.5, read_timeout=2.0, max_retries=2, max_retry_after=0.1, backoff_factor=0.01)


@pytest.fixture
def standins() -> Iterator[dict[str, Any]]:
    with (
        HubSpotApiStandIn() as hubspot,
        PipedriveApiStandIn() as pipedrive,
        SalesforceApiStandIn() as salesforce,
        ZohoApiStandIn() as zoho,
        CatchHookStandIn() as hook,
    ):
        yield {"hubspot": hubspot, "pipedrive": pipedrive, "salesforce": salesforce, "zoho": zoho, "hook": hook}


def crm_secret(standins: Mapping[str, Any], *, hook: bool = False) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "hubspot": {"access_token": standins["hubspot"].access_token},
        "pipedrive": {"api_token": standins["pipedrive"].api_token},
        "salesforce": {
            "client_id": standins["salesforce"].client_id,
            "client_secret": standins["salesforce"].client_secret,
            "my_domain_url": standins["salesforce"].base_url,
        },
        "zoho": {
            "client_id": standins["zoho"].client_id,
            "client_secret": standins["zoho"].client_secret,
            "refresh_token": standins["zoho"].refresh_token,
        },
    }
    if hook:
        secret["outbound_webhook"] = {
            "url": standins["hook"].hook_url,
            "signing_secret": standins["hook"].signing_secret,
        }
    return secret


class Harness:
    """A Writeback wired to moto and the stand-ins; `secret` may be changed by a test."""

    def __init__(self, standins: Mapping[str, Any], writeback: Mapping[str, Any], *, hook: bool = False) -> None:
        self.dynamodb = boto3.client("dynamodb")
        self.clock = Clock()
        self.secret = crm_secret(standins, hook=hook)
        self.state = WritebackState(self.dynamodb, TABLE, lease_seconds=60, clock=self.clock)
        settings = Settings(table_name=TABLE, writeback=dict(writeback))
        writers: dict[str, CrmWriter] = {
            "hubspot": HubSpotWriteback(standins["hubspot"].base_url, fast_http()),
            "pipedrive": PipedriveWriteback(standins["pipedrive"].base_url, fast_http()),
            "salesforce": SalesforceWriteback(fast_http()),
            "zoho": ZohoWriteback(ZohoRecords(standins["zoho"].base_url, max_retry_after=0.1, backoff_factor=0.01)),
        }
        self.writeback = Writeback(settings, self.state, writers, OutboundWebhook(fast_http()), lambda: self.secret)

    def add_lead(self, source: str, **extra: Any) -> str:
        lead = {**LEADS[source], "source": source, "status": "completed", "status_rank": 40, **extra}
        self.dynamodb.put_item(TableName=TABLE, Item=dynamo_values(lead))
        return str(lead["pk"])

    def lead(self, lead_id: str) -> dict[str, Any]:
        item: dict[str, Any] = dynamo_item(self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": lead_id}})["Item"])
        return item

    def event(self, source: str, **detail: Any) -> dict[str, Any]:
        event: dict[str, Any] = copy.deepcopy(EVENT)
        event["detail"].update(
            lead_id=LEADS[source]["pk"], source=source, record_id=LEADS[source]["record_id"], **detail
        )
        return event


ALL_ON = {"hubspot": {"outcome_property": "lc_call_outcome"}, "pipedrive": {}, "salesforce": {}, "zoho": {}}


@pytest.fixture
def harness(standins: dict[str, Any]) -> Iterator[Harness]:
    with mock_aws():
        create_resources(None, {}, {})
        yield Harness(standins, ALL_ON)


# ── success per CRM ──────────────────────────────────────────────────────────


def test_hubspot_note_on_the_contact_and_outcome_property(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("hubspot")
    result = harness.writeback.handle(harness.event("hubspot"))
    assert result.channels == {"writeback": "done"}
    assert not result.retry
    notes = standins["hubspot"].notes
    assert len(notes) == 1
    (note_id, note), *_ = notes.items()
    assert note["contact_ids"] == ["1246978"]
    body = note["properties"]["hs_note_body"]
    assert "meeting_booked" in body
    assert "3:07" in body
    assert "lead-caller task T7c1e9a2b4d6f8a0c" in body
    assert standins["hubspot"].contacts["1246978"]["lc_call_outcome"] == "meeting_booked"
    item = harness.lead(lead_id)
    assert item["writeback"] == "done"
    assert item["writeback_ref"] == note_id
    assert item["writeback_task"] == "T7c1e9a2b4d6f8a0c"
    assert item["writeback_settled"] == {"T7c1e9a2b4d6f8a0c"}
    assert item["status"] == "completed"
    assert item["status_rank"] == 40
    assert "writeback_lease_until" not in item


def test_pipedrive_note_on_the_person_and_the_lead_it_came_from(harness: Harness, standins: dict[str, Any]) -> None:
    lead_uuid = "adf21080-0e10-11eb-879b-05d71fb426ec"
    lead_id = harness.add_lead("pipedrive", crm_object={"type": "lead", "id": lead_uuid})
    assert harness.writeback.handle(harness.event("pipedrive")).channels == {"writeback": "done"}
    (note,) = standins["pipedrive"].notes
    assert note["person_id"] == 8
    assert note["lead_id"] == lead_uuid
    assert "Interested in fleet pricing" in note["content"]
    assert harness.lead(lead_id)["writeback"] == "done"


def test_pipedrive_done_call_activity_with_duration(standins: dict[str, Any]) -> None:
    with mock_aws():
        create_resources(None, {}, {})
        harness = Harness(standins, {"pipedrive": {"as": "activity"}})
        harness.add_lead("pipedrive", crm_object={"type": "deal", "id": "77"})
        assert harness.writeback.handle(harness.event("pipedrive")).channels == {"writeback": "done"}
    (activity,) = standins["pipedrive"].activities
    assert activity["type"] == "call"
    assert activity["done"] == 1
    assert activity["duration"] == "00:04"
    assert activity["person_id"] == 8
    assert activity["deal_id"] == 77
    assert activity["due_date"] == "2026-01-01"
    assert standins["pipedrive"].notes == []


def test_salesforce_completed_task_via_client_credentials(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("salesforce")
    assert harness.writeback.handle(harness.event("salesforce")).channels == {"writeback": "done"}
    tasks = standins["salesforce"].tasks
    (task_id, task), *_ = tasks.items()
    assert task["WhoId"] == SF_LEAD
    assert task["Status"] == "Completed"
    assert task["TaskSubtype"] == "Call"
    assert task["CallDurationInSeconds"] == 187
    assert task["CallObject"] == "T7c1e9a2b4d6f8a0c"
    assert task["Subject"] == "AI call: meeting_booked"
    assert "Interested in fleet pricing" in task["Description"]
    assert task["ActivityDate"] == "2026-01-01"
    assert harness.lead(lead_id)["writeback_ref"] == task_id
    token_requests = [r for r in standins["salesforce"].requests if r["path"] == "/services/oauth2/token"]
    assert token_requests[0]["json"]["grant_type"] == "client_credentials"
    assert token_requests[0]["json"]["client_secret"] == "***"


def test_salesforce_expired_token_is_fetched_again(harness: Harness, standins: dict[str, Any]) -> None:
    harness.add_lead("salesforce")
    harness.writeback.handle(harness.event("salesforce"))
    standins["salesforce"].expire_tokens()
    harness.add_lead("salesforce")  # a new attempt: a new task
    result = harness.writeback.handle(harness.event("salesforce", task_id="T2", call_attempt=2))
    assert result.channels == {"writeback": "done"}
    assert standins["salesforce"].token_grants == 2
    assert len(standins["salesforce"].tasks) == 2


def test_zoho_note_on_the_record_tries_leads_then_contacts(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("zoho")
    assert harness.writeback.handle(harness.event("zoho")).channels == {"writeback": "done"}
    (note,) = standins["zoho"].notes
    assert note["Parent_Id"] == {"module": "Leads", "id": MARIA_ZOHO}
    assert note["Note_Title"] == "AI call: meeting_booked"
    assert "Duration: 3:07" in note["Note_Content"]
    assert harness.lead(lead_id)["writeback_ref"] == note["id"]
    contact_id = next(iter(standins["zoho"].records["Contacts"]))
    record = CrmRecord("zoho#x", "zoho", contact_id)
    writer = ZohoWriteback(ZohoRecords(standins["zoho"].base_url))
    note_obj = CallNote.from_detail(EVENT["detail"])
    result = writer.write(crm_secret(standins)["zoho"], {}, record, note_obj, look_first=False)
    assert result.outcome == "done"
    assert standins["zoho"].notes[-1]["Parent_Id"] == {"module": "Contacts", "id": contact_id}


def test_sources_without_write_back_are_recorded_skipped(harness: Harness) -> None:
    lead_id = harness.add_lead("generic")
    assert harness.writeback.handle(harness.event("generic")).channels == {"writeback": "skipped"}
    assert harness.lead(lead_id)["writeback"] == "skipped"
    assert harness.writeback.handle(harness.event("generic")).channels == {"writeback": "settled"}


def test_not_opted_in_is_skipped_and_writes_nothing(standins: dict[str, Any]) -> None:
    with mock_aws():
        create_resources(None, {}, {})
        harness = Harness(standins, {"pipedrive": {}})
        lead_id = harness.add_lead("hubspot")
        assert harness.writeback.handle(harness.event("hubspot")).channels == {"writeback": "skipped"}
        assert harness.lead(lead_id)["writeback"] == "skipped"
    assert standins["hubspot"].notes == {}


# ── retries and failures ─────────────────────────────────────────────────────


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_server_errors_are_retried_in_place(
    harness: Harness, standins: dict[str, Any], status: int
) -> None:
    harness.add_lead("hubspot")
    standins["hubspot"].enqueue_fault("status", status=status, headers={"Retry-After": "0"})
    assert harness.writeback.handle(harness.event("hubspot")).channels == {"writeback": "done"}
    posts = [r for r in standins["hubspot"].requests if r["path"] == "/crm/v3/objects/notes"]
    assert [r["status"] for r in posts] == [status, 201]
    assert len(standins["hubspot"].notes) == 1


def test_persistent_outage_is_retried_through_sqs_then_recorded_failed(
    harness: Harness, standins: dict[str, Any]
) -> None:
    lead_id = harness.add_lead("pipedrive")
    for _ in range(3):
        standins["pipedrive"].enqueue_fault("status", status=503)
    first = harness.writeback.handle(harness.event("pipedrive"))
    assert first.channels == {"writeback": "retry"}
    assert "503" in first.retry[0]
    item = harness.lead(lead_id)
    assert "writeback" not in item
    assert "writeback_lease_until" not in item
    for _ in range(3):
        standins["pipedrive"].enqueue_fault("status", status=503)
    last = harness.writeback.handle(harness.event("pipedrive"), last_attempt=True)
    assert last.channels == {"writeback": "failed"}
    assert not last.retry
    assert harness.lead(lead_id)["writeback"].startswith("failed: ")
    assert "503" in harness.lead(lead_id)["writeback"]
    assert standins["pipedrive"].notes == []


def test_permanent_refusals_are_recorded_not_retried(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("hubspot", record_id="62515:999")  # no such contact
    result = harness.writeback.handle(harness.event("hubspot"))
    assert result.channels == {"writeback": "failed"}
    assert not result.retry
    assert "VALIDATION_ERROR" in harness.lead(lead_id)["writeback"]
    harness.secret["salesforce"]["client_secret"] = "wrong"
    sf_lead = harness.add_lead("salesforce")
    assert harness.writeback.handle(harness.event("salesforce")).channels == {"writeback": "failed"}
    assert "invalid_client" in harness.lead(sf_lead)["writeback"]
    assert standins["salesforce"].tasks == {}


# ── idempotency ──────────────────────────────────────────────────────────────


def test_the_same_event_twice_writes_one_note(harness: Harness, standins: dict[str, Any]) -> None:
    harness.add_lead("zoho")
    assert harness.writeback.handle(harness.event("zoho")).channels == {"writeback": "done"}
    assert harness.writeback.handle(harness.event("zoho")).channels == {"writeback": "settled"}
    assert len(standins["zoho"].notes) == 1


def test_a_concurrent_attempt_waits_for_the_lease(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("hubspot")
    assert harness.state.claim(lead_id, "writeback", "T7c1e9a2b4d6f8a0c").kind == "claimed"
    result = harness.writeback.handle(harness.event("hubspot"))
    assert result.channels == {"writeback": "busy"}
    assert result.retry
    assert standins["hubspot"].notes == {}


@pytest.mark.parametrize("source", ["hubspot", "pipedrive", "salesforce", "zoho"])
def test_a_crash_after_writing_never_writes_a_second_note(
    harness: Harness, standins: dict[str, Any], source: str
) -> None:
    """An attempt wrote the note and died before recording it; the retry (after the lease) finds it."""
    lead_id = harness.add_lead(source)
    task_id = EVENT["detail"]["task_id"]
    assert harness.state.claim(lead_id, "writeback", task_id).kind == "claimed"
    writer = harness.writeback.writers[source]
    record = CrmRecord.from_item(harness.lead(lead_id))
    note = CallNote.from_detail(harness.event(source)["detail"])
    assert writer.write(harness.secret[source], ALL_ON[source], record, note, look_first=False).outcome == "done"
    harness.clock.now += 61  # the crashed attempt's lease runs out
    assert harness.writeback.handle(harness.event(source)).channels == {"writeback": "done"}
    written = {
        "hubspot": lambda: standins["hubspot"].notes,
        "pipedrive": lambda: standins["pipedrive"].notes,
        "salesforce": lambda: standins["salesforce"].tasks,
        "zoho": lambda: standins["zoho"].notes,
    }[source]()
    assert len(written) == 1
    assert harness.lead(lead_id)["writeback"] == "done"


# ── outbound webhook ─────────────────────────────────────────────────────────


def test_outbound_webhook_is_signed_with_standard_webhooks(standins: dict[str, Any]) -> None:
    hook = standins["hook"]
    with mock_aws():
        create_resources(None, {}, {})
        harness = Harness(standins, {}, hook=True)
        lead_id = harness.add_lead("generic")
        hook.enqueue_fault("status", status=503)
        result = harness.writeback.handle(harness.event("generic"))
        assert result.channels == {"writeback": "skipped", "webhook_delivery": "done"}
        item = harness.lead(lead_id)
        assert item["webhook_delivery"] == "done"
        assert item["webhook_delivery_ref"] == "msg_T7c1e9a2b4d6f8a0c"
        assert harness.writeback.handle(harness.event("generic")).channels["webhook_delivery"] == "settled"
    (delivery,) = hook.deliveries
    assert delivery["verified"] is True
    assert delivery["webhook_id"] == "msg_T7c1e9a2b4d6f8a0c"
    assert delivery["json"]["type"] == "call.completed"
    assert delivery["json"]["data"]["outcome"] == "meeting_booked"
    assert [r["status"] for r in hook.requests] == [503, 200]
    assert len({r["webhook_id"] for r in hook.requests}) == 1  # the same id on every retry


def test_outbound_signature_verifies_with_the_package_and_fails_with_another_secret(standins: dict[str, Any]) -> None:
    captured: dict[str, Any] = {}

    class Recorder(JsonHttp):
        def send(self, method: str, url: str, headers: Mapping[str, str], **kw: Any) -> Any:
            captured.update(headers=dict(headers), body=kw["raw"])
            return super().send(method, url, headers, **kw)

    secret = {"url": standins["hook"].hook_url, "signing_secret": standins["hook"].signing_secret}
    note = CallNote.from_detail(EVENT["detail"])
    from datetime import UTC, datetime

    result = OutboundWebhook(Recorder()).deliver(secret, note, EVENT["detail"], datetime.now(UTC))
    assert result.outcome == "done"
    verified = Webhook(standins["hook"].signing_secret).verify(captured["body"], captured["headers"])
    assert verified["data"]["task_id"] == "T7c1e9a2b4d6f8a0c"
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        Webhook("whsec_" + "QUJD" * 8).verify(captured["body"], captured["headers"])


def test_outbound_webhook_refuses_plain_http_and_bad_secrets(standins: dict[str, Any]) -> None:
    note = CallNote.from_detail(EVENT["detail"])
    from datetime import UTC, datetime

    hook = OutboundWebhook(fast_http())
    bad_url = hook.deliver(
        {"url": "http://hooks.example/x", "signing_secret": "whsec_QUJD"}, note, {}, datetime.now(UTC)
    )
    assert bad_url.outcome == "permanent"
    bad_secret = hook.deliver({"url": standins["hook"].hook_url, "signing_secret": "!!"}, note, {}, datetime.now(UTC))
    assert bad_secret.outcome == "permanent"


# ── handler, configuration, logs ─────────────────────────────────────────────


def test_handler_reports_partial_batch_failures_and_backs_off(
    standins: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        resources = create_resources(None, {}, {}, crm_secret=crm_secret(standins))
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="writeback")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name, value in {
            "LEADS_TABLE_NAME": resources.table_name,
            "CRM_SECRET_ID": resources.crm_secret_id,
            "HUBSPOT_API_BASE_URL": standins["hubspot"].base_url,
            "PIPEDRIVE_API_BASE_URL": standins["pipedrive"].base_url,
            "WRITEBACK": json.dumps({"hubspot": {}, "pipedrive": {}}),
        }.items():
            monkeypatch.setenv(name, value)
        harness = Harness(standins, ALL_ON)
        harness.add_lead("hubspot")
        harness.add_lead("pipedrive")
        for _ in range(3):
            standins["pipedrive"].enqueue_fault("status", status=500)
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(harness.event("hubspot")))
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(harness.event("pipedrive")))
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
        module = importlib.import_module("lead_caller.handlers.writeback")
        module = importlib.reload(module)
        response = module.handler({"Records": records}, LambdaContextStub("WritebackFunction"))
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        pipedrive_message = next(m["MessageId"] for m in messages if "pipedrive" in m["Body"])
        assert failed == {pipedrive_message}
        assert module.backoff_seconds(1) == 30
        assert module.backoff_seconds(3) == 120
        assert module.backoff_seconds(9) == 900
    assert len(standins["hubspot"].notes) == 1


def test_writeback_configuration() -> None:
    settings = Settings.from_env({"WRITEBACK": '{"hubspot": {"outcome_property": "lc_outcome"}, "zoho": true}'})
    assert settings.writeback == {"hubspot": {"outcome_property": "lc_outcome"}, "zoho": {}}
    assert Settings.from_env({"WRITEBACK": '{"pipedrive": {"enabled": false}}'}).writeback == {}
    for bad in (
        '{"generic": {}}',
        '{"pipedrive": {"as": "email"}}',
        '{"hubspot": {"colour": "red"}}',
        '{"hubspot": {"outcome_property": "a b"}}',
        '{"hubspot": "yes"}',
    ):
        with pytest.raises(ConfigError, match="WRITEBACK"):
            Settings.from_env({"WRITEBACK": bad})


def test_pipedrive_targets_from_record_ids() -> None:
    assert writeback_targets(CrmRecord("x", "pipedrive", "13177-person-8")) == {"person_id": 8}
    assert writeback_targets(CrmRecord("x", "pipedrive", "person-8", {"type": "deal", "id": "5"})) == {
        "person_id": 8,
        "deal_id": 5,
    }
    assert writeback_targets(CrmRecord("x", "pipedrive", "nonsense")) == {}


def test_no_phone_email_or_token_in_logs(harness: Harness, standins: dict[str, Any], captured_logs: Any) -> None:
    harness.add_lead("hubspot", document={"phone_number": PHONE, "email": EMAIL})
    harness.add_lead("salesforce")
    harness.add_lead("pipedrive")
    harness.writeback.handle(harness.event("hubspot"))
    harness.secret["salesforce"]["client_secret"] = "wrong-secret-value-123"
    harness.writeback.handle(harness.event("salesforce"))
    for _ in range(3):
        standins["pipedrive"].enqueue_fault("status", status=503)
    harness.writeback.handle(harness.event("pipedrive"), last_attempt=True)
    text = captured_logs()
    assert "Write-back" in text
    for secret in (
        PHONE,
        EMAIL,
        standins["hubspot"].access_token,
        standins["pipedrive"].api_token,
        "wrong-secret-value-123",
        "Interested in fleet pricing",
    ):
        assert secret not in text


def test_write_backs_are_visible_in_the_standins_admin_apis(harness: Harness, standins: dict[str, Any]) -> None:
    import urllib3

    for source in ("hubspot", "pipedrive", "salesforce", "zoho"):
        harness.add_lead(source)
        assert harness.writeback.handle(harness.event(source)).channels == {"writeback": "done"}
    views = {
        "hubspot": "/notes",
        "pipedrive": "/notes",
        "salesforce": "/tasks",
        "zoho": "/notes",
    }
    for source, sub in views.items():
        answer = urllib3.request("GET", standins[source].admin_url + sub, retries=False)
        assert answer.status == 200
        assert answer.json()["count"] == 1, source


def test_salesforce_configuration_is_checked_before_any_request(standins: dict[str, Any]) -> None:
    writer = SalesforceWriteback(fast_http())
    note = CallNote.from_detail(EVENT["detail"])
    record = CrmRecord("salesforce#x", "salesforce", SF_LEAD)
    good = crm_secret(standins)["salesforce"]
    for bad in (
        {**good, "my_domain_url": "http://acme.my.salesforce.com"},  # plain HTTP to a real host
        {**good, "my_domain_url": "https://evil.example.com"},
        {**good, "my_domain_url": "https://acme.my.salesforce.com/path"},
        {key: value for key, value in good.items() if key != "client_secret"},
    ):
        result = writer.write(bad, {}, record, note, look_first=False)
        assert result.outcome == "permanent", bad
    not_a_who = CrmRecord("salesforce#x", "salesforce", "0015f00000AbCdEAAZ")  # an Account id
    assert writer.write(good, {}, not_a_who, note, look_first=False).outcome == "permanent"
    assert standins["salesforce"].requests == []


def test_zoho_refused_grant_is_permanent_and_outage_transient(harness: Harness, standins: dict[str, Any]) -> None:
    lead_id = harness.add_lead("zoho")
    harness.secret["zoho"]["refresh_token"] = "1000.revoked"
    assert harness.writeback.handle(harness.event("zoho")).channels == {"writeback": "failed"}
    assert "refresh token" in harness.lead(lead_id)["writeback"]
    harness.secret["zoho"]["refresh_token"] = standins["zoho"].refresh_token
    harness.add_lead("zoho")
    for _ in range(3):
        standins["zoho"].enqueue_fault("status", status=500, match="/Notes")
    result = harness.writeback.handle(harness.event("zoho", task_id="T-outage"))
    assert result.channels == {"writeback": "retry"}
    assert standins["zoho"].notes == []


def test_events_without_task_or_lead_are_dropped_not_retried(harness: Harness) -> None:
    assert harness.writeback.handle({"detail": {"lead_id": "hubspot#1"}}).channels == {"event": "invalid"}
    assert harness.writeback.handle({"detail": {"task_id": "T1"}}).channels == {"event": "invalid"}
    unknown = harness.writeback.handle(harness.event("hubspot"))  # no such lead item
    assert unknown.channels == {"writeback": "missing"}
    assert not unknown.retry


def test_thin_pipedrive_and_zoho_events_name_their_crm_object_for_the_write_back():
    from lead_caller.enrichment import crm_object_of

    assert crm_object_of({"kind": "pipedrive", "person_id": 8, "deal": {"id": 77, "title": "x"}}) == {
        "type": "deal",
        "id": "77",
    }
    assert crm_object_of({"kind": "pipedrive", "person_id": 8, "lead": {"id": "adf-1"}}) == {
        "type": "lead",
        "id": "adf-1",
    }
    assert crm_object_of({"kind": "zoho", "module": "Contacts", "id": "5725767000003000064"}) == {
        "type": "Contacts",
        "id": "5725767000003000064",
    }
    assert crm_object_of({"kind": "hubspot", "object_id": 1}) is None
    assert crm_object_of(None) is None
