"""The Salesforce source: Outbound Messages (the sample of events/ field by field, Contacts, limits),
organization-id authentication, hostile XML, the SOAP answers through the intake on moto, duplicates,
and the Apex Standard Webhooks signing recipe of docs/salesforce.md checked against the generic source."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from defusedxml.ElementTree import fromstring

from lead_caller.contacts import ContactDocument, build_document
from lead_caller.crms.salesforce.webhook import (
    ACK_ENVELOPE,
    OUTBOUND_NS,
    SOAP11_NS,
    SalesforceSource,
    canonical_org_id,
    parse_outbound_message,
    soap_fault,
)
from lead_caller.intake import Intake
from lead_caller.leads import LeadMessage
from lead_caller.mapping import FieldMapping
from lead_caller.queue import LeadQueue
from lead_caller.secrets import SecretError
from lead_caller.sources import SOURCES
from lead_caller.sources.base import AuthenticationError, PayloadError, WebhookRequest
from lead_caller.sources.generic import GenericSource
from lead_caller.store import LeadStore
from local.signing import LOCAL_SIGNING_SECRET, standard_webhook_headers

EVENTS = Path(__file__).resolve().parents[2] / "events"
ORG_ID = "00D5f000005KcCnEAK"
CREDENTIALS = {"organization_ids": [ORG_ID]}
XML = {"content-type": "text/xml; charset=utf-8", "soapaction": '""'}
SOURCE = SalesforceSource()


def sample_body() -> bytes:
    """The SOAP body of events/salesforce-outbound-message.json (reference sample 9.5: two Leads)."""
    event = json.loads((EVENTS / "salesforce-outbound-message.json").read_text())
    body: str = event["body"]
    return body.encode()


def envelope(*sobjects: str, org_id: str = ORG_ID, sobject_type: str = "Lead") -> bytes:
    """An Outbound Message with one notification per sObject body (its `<sf:...>` fields)."""
    notifications = "".join(
        f"<Notification><Id>04l5f00000A1b{index:03d}AAB</Id>"
        f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}</sObject>'
        "</Notification>"
        for index, fields in enumerate(sobjects)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soapenv:Body><notifications xmlns="{OUTBOUND_NS}">'
        f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k5f000000CabWAAS</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5f000005KcCn</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5f000005KcCn</PartnerUrl>"
        f"{notifications}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def lead_fields(record_id: str, phone: str = "+1 512 555 0100", last_name: str = "Lovelace") -> str:
    return (
        f"<sf:Id>{record_id}</sf:Id><sf:FirstName>Ada</sf:FirstName><sf:LastName>{last_name}</sf:LastName>"
        f"<sf:Phone>{phone}</sf:Phone><sf:Company>Analytical Engines</sf:Company>"
    )


def record_id(number: int) -> str:
    """A distinct 18-character Lead id (the checksum suffix is not checked for records)."""
    return f"00Q5f00000{number:05d}AAAA"[:18]


def request(
    body: bytes, headers: dict[str, str] | None = None, query: str = "", source: str = "salesforce"
) -> WebhookRequest:
    return WebhookRequest(
        source=source,
        method="POST",
        path=f"/webhooks/{source}",
        query=query,
        headers=XML if headers is None else headers,
        body=body,
        public_url=f"https://example.test/webhooks/{source}",
        received_at=time.time(),
    )


def document(record: Any, record_id: str = "test") -> ContactDocument:
    raw = FieldMapping.compile(SalesforceSource.default_mapping).apply(record)
    raw.record_id = raw.record_id or record_id
    built, rejection, _ = build_document("salesforce", raw, "US")
    assert built is not None, rejection
    return built


@pytest.fixture
def registered(monkeypatch):
    """Until sources/__init__.py registers the source, the tests register it themselves."""
    monkeypatch.setitem(SOURCES, "salesforce", SOURCE)


def make_intake(settings: Any, credentials: Any = None) -> Intake:
    configured = CREDENTIALS if credentials is None else credentials

    def lookup(source: str) -> Any:
        if isinstance(configured, Exception):
            raise configured
        return configured if source == "salesforce" else {}

    return Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name, settings.dedupe_window_seconds),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lookup,
    )


@pytest.fixture
def intake(settings, registered) -> Intake:
    return make_intake(settings)


def queued(settings) -> list[LeadMessage]:
    sqs = boto3.client("sqs")
    found: list[LeadMessage] = []
    while True:
        batch = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        found.extend(LeadMessage.from_json(message["Body"]) for message in batch)


def is_ack(body: str) -> bool:
    root = fromstring(body.encode(), forbid_dtd=True)
    ack = root.find(f"{{{SOAP11_NS}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack")
    return ack is not None and ack.text == "true"


def fault(body: str) -> tuple[str, str]:
    """(faultcode, faultstring) of a SOAP 1.1 Fault answer."""
    root = fromstring(body.encode(), forbid_dtd=True)
    element = root.find(f"{{{SOAP11_NS}}}Body/{{{SOAP11_NS}}}Fault")
    assert element is not None, body
    return element.findtext("faultcode") or "", element.findtext("faultstring") or ""


# ---- parsing and mapping ---------------------------------------------------------------


def test_the_sample_message_gives_two_leads_keyed_by_their_lead_ids():
    leads = SOURCE.parse(request(sample_body()))

    assert [lead.record_id for lead in leads] == ["00Q5f00000Lk9XyEAJ", "00Q5f00000Lk9XzEAJ"]
    first = leads[0].record
    assert first is not None
    assert first["sobject_type"] == "Lead"
    assert first["notification_id"] == "04l5f00000A1b2cAAB"
    assert first["organization_id"] == ORG_ID
    assert first["FirstName"] == "Maria"
    assert first["Street"] == "1200 Congress Ave, Suite 400"


def test_the_sample_leads_map_field_by_field():
    maria, james = (lead.record for lead in SOURCE.parse(request(sample_body())))

    first = document(maria)
    assert first.name == "Maria Gonzalez"
    assert first.email == "maria.gonzalez@acme-logistics.example"
    assert first.contact_number == "+15125550142"
    assert first.alternate_number == "+15125550199"
    assert first.occupation == "Director of Operations"
    assert first.company_name == "Acme Logistics"
    assert first.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert first.about == "Requested a callback about fleet pricing."
    assert first.labels == ("Web", "Open - Not Contacted")

    second = document(james)
    assert second.name == "James Chen"
    assert second.contact_number == "+442079460321"
    assert second.alternate_number is None
    assert second.company_name == "Northwind Traders"
    assert second.occupation == "Procurement Manager"
    assert second.address is None  # no address field was sent
    assert second.about is None
    assert second.labels == ("Phone Inquiry", "Open - Not Contacted")


CONTACT = (
    "<sf:Id>0035f00000AbCdEAAZ</sf:Id><sf:AccountId>0015f00000XyZaBAAR</sf:AccountId>"
    "<sf:Account><sf:Id>0015f00000XyZaBAAR</sf:Id><sf:Name>Globex Corporation</sf:Name></sf:Account>"
    "<sf:Email>hank.scorpio@globex.example</sf:Email><sf:FirstName>Hank</sf:FirstName>"
    "<sf:LastName>Scorpio</sf:LastName><sf:HomePhone>+1 415 555 0123</sf:HomePhone>"
    "<sf:LeadSource>Partner Referral</sf:LeadSource>"
    "<sf:MailingCity>Cypress Creek</sf:MailingCity><sf:MailingCountry>United States</sf:MailingCountry>"
    "<sf:MailingPostalCode>97401</sf:MailingPostalCode><sf:MailingStateCode>OR</sf:MailingStateCode>"
    "<sf:MailingStreet>1 Globex Way</sf:MailingStreet><sf:Phone>+1 415 555 0100</sf:Phone>"
    "<sf:Title>CEO</sf:Title>"
)


def test_a_contact_maps_its_mailing_address_account_name_and_home_phone():
    [lead] = SOURCE.parse(request(envelope(CONTACT, sobject_type="Contact")))

    assert lead.record_id == "0035f00000AbCdEAAZ"
    assert lead.record is not None
    assert lead.record["sobject_type"] == "Contact"
    assert lead.record["Account"] == {"Id": "0015f00000XyZaBAAR", "Name": "Globex Corporation"}
    contact = document(lead.record)
    assert contact.name == "Hank Scorpio"
    assert contact.company_name == "Globex Corporation"  # path Account.Name
    assert contact.address == "1 Globex Way, Cypress Creek, OR, 97401, United States"  # StateCode when no State
    assert contact.contact_number == "+14155550100"
    assert contact.alternate_number == "+14155550123"  # HomePhone: no MobilePhone
    assert contact.occupation == "CEO"
    assert contact.labels == ("Partner Referral",)


def test_a_lone_mobile_phone_becomes_the_contact_number():
    fields = (
        "<sf:Id>00Q5f00000Lk9XyEAJ</sf:Id><sf:LastName>Solo</sf:LastName>"
        "<sf:MobilePhone>+1 512 555 0199</sf:MobilePhone>"
    )
    [lead] = SOURCE.parse(request(envelope(fields)))

    contact = document(lead.record)
    assert (contact.name, contact.contact_number, contact.alternate_number) == ("Solo", "+15125550199", None)


def test_empty_and_nil_fields_are_left_out_of_the_record():
    fields = (
        "<sf:Id>00Q5f00000Lk9XyEAJ</sf:Id><sf:LastName>Gonzalez</sf:LastName><sf:Phone>+15125550142</sf:Phone>"
        '<sf:Email xsi:nil="true"/><sf:Title></sf:Title><sf:Company>   </sf:Company>'
    )
    [lead] = SOURCE.parse(request(envelope(fields)))

    assert lead.record is not None
    assert {"Email", "Title", "Company"}.isdisjoint(lead.record)
    assert document(lead.record).email is None


def test_a_user_mapping_can_read_a_custom_field_and_a_relationship():
    fields = lead_fields("00Q5f00000Lk9XyEAJ") + "<sf:Account_Name__c>Formula Co</sf:Account_Name__c>"
    [lead] = SOURCE.parse(request(envelope(fields)))

    mapping = FieldMapping.compile(SalesforceSource.default_mapping, {"company_name": "Account_Name__c"})
    assert mapping.apply(lead.record or {}).company_name == "Formula Co"


def test_the_sobject_type_falls_back_to_the_id_prefix_and_other_objects_are_ignored():
    without_type = envelope(lead_fields("0035f00000AbCdEAAZ")).replace(b' xsi:type="sf:Lead"', b"")
    account = envelope("<sf:Id>0015f00000XyZaBAAR</sf:Id><sf:Name>Acme</sf:Name>", sobject_type="Account")

    assert [lead.record and lead.record["sobject_type"] for lead in SOURCE.parse(request(without_type))] == ["Contact"]
    assert SOURCE.parse(request(account)) == []


def test_a_hundred_notifications_are_read_and_a_hundred_and_one_refused():
    hundred = [lead_fields(record_id(n)) for n in range(100)]

    assert len(SOURCE.parse(request(envelope(*hundred)))) == 100
    with pytest.raises(PayloadError, match="at most 100 notifications") as refused:
        SOURCE.parse(request(envelope(*hundred, lead_fields(record_id(100)))))
    assert refused.value.status == 413


def test_nesting_deeper_than_a_relationship_is_ignored_without_recursing():
    deep = "<sf:X>" * 5000 + "v" + "</sf:X>" * 5000
    [lead] = SOURCE.parse(request(envelope(lead_fields("00Q5f00000Lk9XyEAJ") + deep)))

    assert lead.record is not None
    assert "X" not in lead.record  # X holds only deeper elements, which are not read


# ---- authentication --------------------------------------------------------------------


def test_organization_ids_are_compared_in_their_18_character_form():
    assert canonical_org_id("00D5f000005KcCn") == ORG_ID
    assert canonical_org_id(ORG_ID) == ORG_ID
    assert canonical_org_id("00D5f000005KcCnEAA") is None  # wrong checksum
    assert canonical_org_id("00d5f000005kccneak") is None  # lower-cased: the case is the id
    assert canonical_org_id("00D5f000005KcC") is None
    assert canonical_org_id(18) is None


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(CREDENTIALS, id="18-characters"),
        pytest.param({"organization_ids": ["00D5f000005KcCn"]}, id="15-characters-as-in-company-information"),
        pytest.param({"organization_ids": ORG_ID}, id="a-single-string"),
        pytest.param({"organization_ids": ["00Dxx0000001gPFEAY", ORG_ID]}, id="one-of-several"),
    ],
)
def test_a_configured_organization_is_accepted(credentials):
    SOURCE.authenticate(request(sample_body()), credentials)


def test_the_15_character_form_in_a_message_matches_a_configured_18_character_id():
    SOURCE.authenticate(request(envelope(lead_fields("00Q5f00000Lk9XyEAJ"), org_id="00D5f000005KcCn")), CREDENTIALS)


@pytest.mark.parametrize(
    ("body", "credentials", "words"),
    [
        pytest.param(sample_body(), {"organization_ids": ["00Dxx0000001gPFEAY"]}, "not one of", id="another-org"),
        pytest.param(sample_body(), {}, "no organization_ids", id="no-credentials"),
        pytest.param(sample_body(), {"organization_ids": []}, "no organization_ids", id="empty-list"),
        pytest.param(sample_body(), {"organization_ids": ["not-an-org-id"]}, "not a 15- or 18", id="malformed-config"),
        pytest.param(
            envelope(lead_fields("00Q5f00000Lk9XyEAJ"), org_id="00D5f000005KcCnEAA"),
            CREDENTIALS,
            "not one of",
            id="bad-checksum-in-message",
        ),
    ],
)
def test_other_organizations_and_missing_configuration_fail_closed(body, credentials, words):
    with pytest.raises(AuthenticationError, match=words):
        SOURCE.authenticate(request(body), credentials)


def test_a_configured_url_token_is_required_in_the_query():
    credentials = {**CREDENTIALS, "url_token": "sf_4f1c2b9e7d6a5c3b"}

    SOURCE.authenticate(request(sample_body(), query="token=sf_4f1c2b9e7d6a5c3b"), credentials)
    for query in ("", "token=wrong", "other=sf_4f1c2b9e7d6a5c3b"):
        with pytest.raises(AuthenticationError, match="url_token"):
            SOURCE.authenticate(request(sample_body(), query=query), credentials)


def test_an_unreadable_body_is_left_to_parse_which_refuses_it():
    SOURCE.authenticate(request(b"<not-soap/>"), CREDENTIALS)  # no org id to check

    with pytest.raises(PayloadError):
        SOURCE.parse(request(b"<not-soap/>"))


# ---- hostile and malformed XML -----------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5f000005KcCnEAK</OrganizationId>
<Notification><Id>04l5f00000A1b2cAAB</Id><sObject><Description>&lol9;</Description></sObject></Notification>
</notifications></soapenv:Body></soapenv:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&xxe;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""
HOSTILE = [
    pytest.param(BILLION_LAUGHS, 400, "DTD", id="billion-laughs"),
    pytest.param(EXTERNAL_ENTITY, 400, "DTD", id="external-entity"),
    pytest.param(
        b'<!DOCTYPE Envelope SYSTEM "http://attacker.example/x.dtd">' + sample_body()[38:], 400, "DTD", id="dtd"
    ),
    pytest.param(b"<!DOCTYPE Envelope>" + sample_body()[38:], 400, "DTD", id="internal-dtd"),
    pytest.param(b"name=Maria&phone=1", 400, "not well-formed", id="not-xml"),
    pytest.param(b"", 400, "empty", id="empty"),
    pytest.param(b"<Envelope><Body/></Envelope>", 400, "expected a SOAP Envelope", id="wrong-root-namespace"),
    pytest.param(b'<?xml version="1.0"?><rss version="2.0"/>', 400, "expected a SOAP Envelope", id="wrong-root"),
    pytest.param(sample_body()[:-60], 400, "not well-formed", id="truncated"),
    pytest.param(sample_body().replace(b"Maria", b"Mar\xeda"), 400, "UTF-8", id="latin-1-bytes"),
    pytest.param(sample_body().replace(b'encoding="UTF-8"', b'encoding="x-klingon"'), 400, "encoding", id="encoding"),
    pytest.param(
        envelope(lead_fields("00Q5f00000Lk9XyEAJ")).replace(b"notifications", b"somethingElse"),
        400,
        "no <notifications>",
        id="no-notifications-element",
    ),
    pytest.param(
        envelope(lead_fields("00Q5f00000Lk9XyEAJ"))
        .replace(b"<soapenv:Body>", b"<soapenv:Head>")
        .replace(b"</soapenv:Body>", b"</soapenv:Head>"),
        400,
        "no Body",
        id="no-body",
    ),
    pytest.param(envelope(), 400, "no Notification", id="no-notification"),
    pytest.param(envelope(lead_fields("00Q5f00000Lk9XyEAJ"), org_id=""), 400, "no OrganizationId", id="no-org-id"),
]


@pytest.mark.parametrize(("body", "status", "words"), HOSTILE)
def test_hostile_or_malformed_xml_is_a_payload_error_naming_the_problem(body, status, words):
    with pytest.raises(PayloadError, match=words) as refused:
        parse_outbound_message(body)
    assert refused.value.status == status


@pytest.mark.parametrize(("body", "status", "words"), HOSTILE)
def test_hostile_or_malformed_xml_gets_a_soap_fault_never_an_ack(intake, settings, body, status, words):
    reply = intake.handle(request(body))

    assert reply.status == status
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    code, text = fault(reply.body)
    assert code == "soapenv:Client"
    assert words in text
    assert "Ack" not in reply.body
    assert "root:" not in reply.body  # nothing of /etc/passwd
    assert queued(settings) == []


def test_a_body_over_the_size_limit_gets_a_413_fault(intake, settings):
    huge = envelope(lead_fields("00Q5f00000Lk9XyEAJ") + "<sf:Description>" + "x" * 1_100_000 + "</sf:Description>")

    reply = intake.handle(request(huge))

    assert reply.status == 413
    assert fault(reply.body)[0] == "soapenv:Client"


def test_a_wrong_media_type_gets_a_415_fault_and_soap_media_types_are_accepted(intake):
    refused = intake.handle(request(sample_body(), {"content-type": "application/json"}))
    soap12 = intake.handle(request(sample_body(), {"content-type": "application/soap+xml; charset=utf-8"}))
    plain = intake.handle(request(sample_body(), {"content-type": "application/xml"}))

    assert refused.status == 415
    assert "text/xml" in fault(refused.body)[1]
    assert (soap12.status, plain.status) == (200, 200)


def test_faults_escape_their_text():
    body = soap_fault(400, "invalid_payload: <b>&</b>")

    assert fault(body) == ("soapenv:Client", "invalid_payload: <b>&</b>")
    assert fault(soap_fault(503, "unavailable"))[0] == "soapenv:Server"


# ---- answers through the intake ----------------------------------------------------------


def test_the_sample_is_queued_and_answered_with_the_exact_ack(intake, settings):
    reply = intake.handle(request(sample_body()))

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert reply.body == ACK_ENVELOPE
    assert reply.body == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body>"
        '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
        "</soapenv:Body>"
        "</soapenv:Envelope>"
    )
    assert is_ack(reply.body)
    messages = sorted(queued(settings), key=lambda message: message.record_id)
    assert [m.lead_id for m in messages] == ["salesforce#00Q5f00000Lk9XyEAJ", "salesforce#00Q5f00000Lk9XzEAJ"]
    assert messages[0].document is not None
    assert messages[0].document.document_id == "salesforce-00Q5f00000Lk9XyEAJ"
    assert messages[0].document.contact_number == "+15125550142"


def test_a_lead_that_cannot_be_called_is_recorded_and_still_acknowledged(intake, settings, store):
    no_phone = "<sf:Id>00Q5f00000Lk9XyEAJ</sf:Id><sf:LastName>Gonzalez</sf:LastName>"

    reply = intake.handle(request(envelope(no_phone)))

    assert (reply.status, is_ack(reply.body)) == (200, True)
    item = store.get("salesforce#00Q5f00000Lk9XyEAJ")
    assert (item["status"], item["reason"]) == ("rejected", "contact_number: missing")
    assert queued(settings) == []


def test_a_message_of_other_objects_only_is_acknowledged(intake, settings):
    account = envelope("<sf:Id>0015f00000XyZaBAAR</sf:Id><sf:Name>Acme</sf:Name>", sobject_type="Account")

    reply = intake.handle(request(account))

    assert (reply.status, is_ack(reply.body)) == (200, True)
    assert queued(settings) == []


@pytest.mark.parametrize(
    ("credentials", "org_id"),
    [
        pytest.param(CREDENTIALS, "00Dxx0000001gPFEAY", id="another-org"),
        pytest.param({}, ORG_ID, id="no-credentials"),
    ],
)
def test_unauthenticated_messages_get_a_401_fault(settings, registered, credentials, org_id):
    intake = make_intake(settings, credentials)

    reply = intake.handle(request(envelope(lead_fields("00Q5f00000Lk9XyEAJ"), org_id=org_id)))

    assert reply.status == 401
    assert fault(reply.body) == ("soapenv:Client", "unauthorized: the request could not be authenticated")
    assert queued(settings) == []


class _BrokenSQS:
    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        return {"Successful": [], "Failed": [{"Id": "0", "Code": "InternalError", "SenderFault": False}]}


def test_when_the_queue_fails_salesforce_gets_a_503_fault_without_ack(intake, settings):
    intake.queue = LeadQueue(_BrokenSQS(), settings.queue_url)

    reply = intake.handle(request(sample_body()))

    assert reply.status == 503
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert fault(reply.body)[0] == "soapenv:Server"
    assert "Ack" not in reply.body
    assert "InternalError" not in reply.body  # no exception details


def test_unreadable_credentials_get_a_503_fault(settings, registered):
    intake = make_intake(settings, SecretError("secret lead-caller/webhooks is unreadable"))

    reply = intake.handle(request(sample_body()))

    assert reply.status == 503
    assert "lead-caller/webhooks" not in reply.body
    assert fault(reply.body)[0] == "soapenv:Server"


def test_the_same_record_in_two_notifications_is_queued_once(intake, settings):
    body = envelope(lead_fields("00Q5f00000Lk9XyEAJ"), lead_fields("00Q5f00000Lk9XyEAJ", last_name="Byron"))

    reply = intake.handle(request(body))

    assert (reply.status, is_ack(reply.body)) == (200, True)
    assert [m.lead_id for m in queued(settings)] == ["salesforce#00Q5f00000Lk9XyEAJ"]


def test_a_redelivered_message_is_acknowledged_and_not_called_again(intake, settings, store):
    first = intake.handle(request(sample_body()))
    messages = queued(settings)
    for message in messages:  # the dispatcher called both leads
        store.claim(message, f"m-{message.record_id}")
        store.mark_call_requested(message.lead_id, f"m-{message.record_id}", "R" + "1" * 32, ["T" + "1" * 32])

    again = intake.handle(request(sample_body()))
    results = intake.accept(SOURCE, SOURCE.parse(request(sample_body())), time.time(), sample_body())

    assert (first.body, again.body) == (ACK_ENVELOPE, ACK_ENVELOPE)
    assert [r.status for r in results] == ["duplicate", "duplicate"]
    assert queued(settings) == []


# ---- Flow HTTP Callout / Apex: the generic source with a Standard Webhooks signature ------

APEX_LEAD = {
    "type": "lead.created",
    "timestamp": "2026-01-01T00:00:00.000Z",
    "data": [
        {
            "id": "00Q5f00000Lk9XyEAJ",
            "first_name": "María José",
            "last_name": "Gonzalez",
            "email": "maria.gonzalez@acme-logistics.example",
            "phone": "+1 (512) 555-0142",
            "mobile_phone": "+1 512 555 0199",
            "job_title": "Director of Operations",
            "company": "Acme Logistics",
            "address": {
                "street": "1200 Congress Ave, Suite 400",
                "city": "Austin",
                "state": "TX",
                "postal_code": "78701",
                "country": "United States",
            },
            "notes": "Requested a callback about fleet pricing.",
            "labels": ["Web", "Open - Not Contacted"],
        }
    ],
}


def apex_signed_request(secret: str, body: str, msg_id: str, timestamp: str) -> WebhookRequest:
    """The request docs/salesforce.md's Apex class sends, computed the way Apex computes it."""
    # Blob key = EncodingUtil.base64Decode(secret.removeStart('whsec_'));
    key = base64.b64decode(secret.removeprefix("whsec_"))
    # Blob mac = Crypto.generateMac('hmacSHA256', Blob.valueOf(msgId + '.' + ts + '.' + body), key);
    mac = hmac.new(key, (msg_id + "." + timestamp + "." + body).encode("utf-8"), hashlib.sha256).digest()
    # String signature = 'v1,' + EncodingUtil.base64Encode(mac);
    signature = "v1," + base64.b64encode(mac).decode("ascii")
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
    }
    # req.setBody(body): Apex sends the String as UTF-8 bytes
    return request(body.encode("utf-8"), headers, source="generic")


def test_the_apex_signing_recipe_is_accepted_by_the_generic_source():
    # String body = JSON.serialize(payload);  (compact, non-ASCII kept as UTF-8)
    body = json.dumps(APEX_LEAD, separators=(",", ":"), ensure_ascii=False)
    # String msgId = 'msg_' + EncodingUtil.convertToHex(Crypto.generateAESKey(128));
    msg_id = "msg_" + "5f0e1d2c3b4a59687766554433221100"
    # String ts = String.valueOf(Datetime.now().getTime() / 1000);
    timestamp = str(int(time.time()))
    signed = apex_signed_request(LOCAL_SIGNING_SECRET, body, msg_id, timestamp)

    GenericSource().authenticate(signed, {"signing_secret": LOCAL_SIGNING_SECRET})

    reference = standard_webhook_headers(LOCAL_SIGNING_SECRET, body.encode(), msg_id, float(timestamp))
    assert signed.headers["webhook-signature"] == reference["webhook-signature"]  # the library agrees
    [lead] = GenericSource().parse(signed)
    mapped = FieldMapping.compile(GenericSource.default_mapping).apply(lead.record or {})
    assert mapped.record_id == "00Q5f00000Lk9XyEAJ"
    assert mapped.name == "María José Gonzalez"
    assert (mapped.phone, mapped.alternate_phone) == ("+1 (512) 555-0142", "+1 512 555 0199")
    assert (mapped.occupation, mapped.company_name) == ("Director of Operations", "Acme Logistics")
    assert mapped.address == "1200 Congress Ave, Suite 400, Austin, TX, 78701, United States"
    assert mapped.about == "Requested a callback about fleet pricing."
    assert mapped.labels == ["Web", "Open - Not Contacted"]


def test_a_tampered_or_stale_apex_request_is_refused():
    body = json.dumps(APEX_LEAD, separators=(",", ":"), ensure_ascii=False)
    signed = apex_signed_request(LOCAL_SIGNING_SECRET, body, "msg_1", str(int(time.time())))
    tampered = dataclasses.replace(signed, body=body.replace("0142", "0143").encode())
    stale = apex_signed_request(LOCAL_SIGNING_SECRET, body, "msg_1", str(int(time.time()) - 600))

    for refused in (tampered, stale):
        with pytest.raises(AuthenticationError):
            GenericSource().authenticate(refused, {"signing_secret": LOCAL_SIGNING_SECRET})
