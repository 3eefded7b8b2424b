"""The Salesforce source (`POST /webhooks/salesforce`): Outbound Messages (SOAP 1.1).

A record-triggered Flow (or a workflow rule) sends an Outbound Message: one SOAP
`notifications` call with up to 100 `<Notification>`s, each holding a Lead or
Contact `sObject` with the fields chosen in Setup (fields left empty are
omitted). Salesforce retries until it gets HTTP 200 with
`<notificationsResponse><Ack>true</Ack></notificationsResponse>`, for 24 hours.

**Parsing** uses defusedxml with `forbid_dtd=True` (no DTD, so no entity
expansion and no external entities); anything that is not a well-formed SOAP
envelope holding one `notifications` element is refused with a SOAP Fault.
Each notification becomes one lead whose record is the sObject's fields by API
name (`FirstName`, `Phone`, ...), a nested relationship such as
`<sf:Account><sf:Name>` as `{"Account": {"Name": ...}}` (path `Account.Name`),
plus `sobject_type` ("Lead"/"Contact"), `notification_id` and
`organization_id`. Other sObject types are acknowledged and ignored.

**Record id rule** (the dedupe key): the sObject `Id` (lead
`salesforce#00Q5f00000Lk9XyEAJ`). Change Data Capture events of the same
record (salesforce_events.py) get the same key, so a record is called once
whichever path delivered it; a redelivered message names the same records.

**Authentication** (`<stack>/webhooks` secret, key `salesforce`):
`{"organization_ids": ["00D..."], "url_token": "..."}`. Outbound Messages carry
no signature: the message's `OrganizationId` must be one of `organization_ids`
(15- or 18-character ids, compared in their canonical 18-character form; an
18-character id's checksum suffix is verified). An org id is not a secret, so
`url_token`, when configured, must also arrive as the `token` query parameter
of the endpoint URL (compared in constant time). Nothing configured fails
closed (401).

**Answers** (`Content-Type: text/xml; charset=utf-8`): the `Ack` envelope with
200 once every lead is queued, a duplicate, or recorded as rejected; a SOAP
Fault otherwise, so Salesforce retries: 503 when the leads could not be stored,
401 authentication, 400 malformed XML, 413 too large or more than 100
notifications, 415 media type. Faults carry our own short messages only.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

from lead_caller.sources.base import (
    AuthenticationError,
    LeadResult,
    ParsedLead,
    PayloadError,
    Reply,
    Source,
    WebhookRequest,
    text_bytes,
)

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element  # only the type: parsing goes through defusedxml

SOAP11_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
OUTBOUND_NS: Final = "http://soap.sforce.com/2005/09/outbound"
XSI_TYPE: Final = "{http://www.w3.org/2001/XMLSchema-instance}type"
XSI_NIL: Final = "{http://www.w3.org/2001/XMLSchema-instance}nil"
MAX_NOTIFICATIONS: Final = 100
#: sObject field nesting we read: field (1) or relationship.field (2); deeper elements are ignored
MAX_FIELD_DEPTH: Final = 2
SOBJECT_TYPES: Final = ("Lead", "Contact")
#: key prefixes of Salesforce ids: 00Q = Lead, 003 = Contact (when an sObject has no xsi:type)
_ID_PREFIXES: Final = {"00Q": "Lead", "003": "Contact"}
_XML_HEADERS: Final = {"Content-Type": "text/xml; charset=utf-8"}
_CHECKSUM_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

ACK_ENVELOPE: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)


def _address(prefix: str) -> dict[str, Any]:
    """Street, city, state, postal code and country of the fields named `<prefix>Street`..."""
    parts: list[Any] = [
        f"{prefix}Street",
        f"{prefix}City",
        {"first_of": [f"{prefix}State", f"{prefix}StateCode"]},
        f"{prefix}PostalCode",
        {"first_of": [f"{prefix}Country", f"{prefix}CountryCode"]},
    ]
    return {"join": parts, "separator": ", "}


#: The built-in mapping, over the record of a Lead or a Contact (Outbound Message or change event).
#: No record_id rule: the source derives it from the sObject Id (module docstring).
SALESFORCE_MAPPING: dict[str, Any] = {
    "name": {"first_of": [{"join": ["FirstName", "LastName"]}, "Name"]},
    "email": "Email",
    "contact_number": "Phone",
    # a lone mobile number becomes the contact number (contacts.build_document)
    "alternate_number": {"first_of": ["MobilePhone", "HomePhone", "OtherPhone"]},
    "occupation": "Title",
    "company_name": {"first_of": ["Company", "Account.Name"]},
    "address": {"first_of": [_address(""), _address("Mailing")]},
    "about": "Description",
    "labels": {"labels": ["LeadSource", "Status", "Rating"]},
}


@dataclass(frozen=True)
class Notification:
    """One `<Notification>`: its id, the sObject type and the sObject's fields."""

    notification_id: str | None
    sobject_type: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class OutboundMessage:
    """The parts of a `notifications` call that lead-caller reads."""

    organization_id: str
    action_id: str | None
    notifications: list[Notification]


class SalesforceSource(Source):
    """Salesforce Outbound Messages, authenticated by organization id (and an optional URL token)."""

    name = "salesforce"
    content_types = ("text/xml", "application/soap+xml", "application/xml")
    default_mapping = SALESFORCE_MAPPING

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """The message's OrganizationId must be configured; `url_token`, if set, must be in the URL.

        A body that is not a readable Outbound Message is left to `parse`, which refuses
        the same bytes with the same parser (400): nothing unauthenticated is ever queued.
        """
        allowed = configured_organization_ids(credentials)
        token = credentials.get("url_token")
        if token is not None:
            if not isinstance(token, str) or not token.strip():
                raise AuthenticationError("url_token: must be a non-empty string")
            presented = parse_qs(request.query).get("token", [""])[0]
            if not hmac.compare_digest(text_bytes(presented), text_bytes(token.strip())):
                raise AuthenticationError("url_token: missing or wrong `token` query parameter")
        try:
            message = parse_outbound_message(request.body)
        except PayloadError:
            return  # parse() answers 400 naming the problem
        if canonical_org_id(message.organization_id) not in allowed:
            raise AuthenticationError("OrganizationId is not one of the configured organization_ids")

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """One lead per Lead/Contact notification; PayloadError when the body is not an Outbound Message."""
        del credentials  # the message names its organisation itself
        message = parse_outbound_message(request.body)
        leads: list[ParsedLead] = []
        for notification in message.notifications:
            if notification.sobject_type not in SOBJECT_TYPES:
                continue  # another object's Outbound Message pointed here: acknowledged, ignored
            record = dict(notification.fields)
            record["sobject_type"] = notification.sobject_type
            record["notification_id"] = notification.notification_id
            record["organization_id"] = message.organization_id
            leads.append(ParsedLead(record=record, record_id=_text(record.get("Id"))))
        return leads

    def reply_accepted(self, results: Sequence[LeadResult]) -> Reply:
        """HTTP 200 with the Ack: every lead is queued, a duplicate or recorded as rejected."""
        del results  # per-lead outcomes are in DynamoDB; the WSDL's answer is the Ack alone
        return Reply(200, ACK_ENVELOPE, dict(_XML_HEADERS))

    def reply_error(self, status: int, error: str, message: str) -> Reply:
        """A SOAP Fault with the HTTP status (no Ack, so Salesforce delivers again)."""
        return Reply(status, soap_fault(status, f"{error}: {message}"), dict(_XML_HEADERS))

    def reply_unavailable(self, message: str) -> Reply:
        """503 with a SOAP Fault: the leads were not stored, Salesforce must retry."""
        return Reply(503, soap_fault(503, f"unavailable: {message}"), {**_XML_HEADERS, "Retry-After": "5"})


def soap_fault(status: int, text: str) -> str:
    """A SOAP 1.1 Fault envelope: faultcode Client for 4xx, Server otherwise."""
    from xml.sax.saxutils import escape  # imported here: a fault is rare, the module costs ~10 ms of INIT

    code = "soapenv:Client" if 400 <= status < 500 else "soapenv:Server"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_NS}">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{code}</faultcode><faultstring>{escape(text)}</faultstring>"
        "</soapenv:Fault></soapenv:Body>"
        "</soapenv:Envelope>"
    )


# ---- organization ids -------------------------------------------------------------------


def _checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character Salesforce id case-insensitive."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << offset for offset, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        suffix += _CHECKSUM_CHARS[bits]
    return suffix


def canonical_org_id(value: Any) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when it is not a valid id."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) not in (15, 18) or not text.isascii() or not text.isalnum():
        return None
    suffix = _checksum(text[:15])
    if len(text) == 18 and text[15:].upper() != suffix:
        return None  # the suffix does not belong to these 15 characters (e.g. a mistyped id)
    return text[:15] + suffix


def configured_organization_ids(credentials: Mapping[str, Any]) -> frozenset[str]:
    """The canonical ids of `organization_ids` (a list or one string); AuthenticationError if none or invalid."""
    raw = credentials.get("organization_ids")
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise AuthenticationError("no organization_ids are configured for this source")
    allowed: set[str] = set()
    for value in values:
        canonical = canonical_org_id(value)
        if canonical is None:
            raise AuthenticationError(f"organization_ids: {str(value)[:40]!r} is not a 15- or 18-character org id")
        allowed.add(canonical)
    return frozenset(allowed)


# ---- the SOAP message -------------------------------------------------------------------


def _local(tag: Any) -> str:
    """An element's name without its namespace ("{ns}Phone" -> "Phone")."""
    return str(tag).rsplit("}", 1)[-1]


def _namespace(tag: Any) -> str:
    text = str(tag)
    return text[1:].split("}", 1)[0] if text.startswith("{") else ""


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _child(parent: Element, name: str) -> Element | None:
    """The first child element with this local name."""
    return next((child for child in parent if _local(child.tag) == name), None)


def load_xml(body: bytes) -> Element:
    """The root element of a UTF-8 XML body, parsed without DTDs; PayloadError naming the problem."""
    # imported on the first Salesforce delivery, not at INIT: the other sources never parse XML
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    if not body.strip():
        raise PayloadError("the body is empty; expected a Salesforce Outbound Message (SOAP XML)")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text") from None
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise PayloadError("the body contains a DTD or entity declarations, which are not allowed") from None
    except ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        raise PayloadError(f"the body is not well-formed XML (line {line}, column {column})") from None
    except (LookupError, ValueError):
        raise PayloadError("the body's XML declaration names an unsupported encoding") from None
    return root


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The organization id and notifications of a SOAP `notifications` call; PayloadError otherwise."""
    root = load_xml(body)
    if _local(root.tag) != "Envelope" or _namespace(root.tag) not in (SOAP11_NS, SOAP12_NS):
        raise PayloadError(f"expected a SOAP Envelope, got <{_local(root.tag)[:60]}>")
    soap_body = next((child for child in root if child.tag == f"{{{_namespace(root.tag)}}}Body"), None)
    if soap_body is None:
        raise PayloadError("the SOAP envelope has no Body")
    call = next((child for child in soap_body if child.tag == f"{{{OUTBOUND_NS}}}notifications"), None)
    if call is None:
        raise PayloadError(f"the SOAP Body holds no <notifications> element of {OUTBOUND_NS}")
    org_element = _child(call, "OrganizationId")
    organization_id = _text(org_element.text if org_element is not None else None)
    if organization_id is None:
        raise PayloadError("the message has no OrganizationId")
    elements = [child for child in call if _local(child.tag) == "Notification"]
    if not elements:
        raise PayloadError("the message holds no Notification")
    if len(elements) > MAX_NOTIFICATIONS:
        raise PayloadError(f"at most {MAX_NOTIFICATIONS} notifications per message, got {len(elements)}", 413)
    action = _child(call, "ActionId")
    return OutboundMessage(
        organization_id=organization_id,
        action_id=_text(action.text if action is not None else None),
        notifications=[_notification(element, index) for index, element in enumerate(elements)],
    )


def _notification(element: Element, index: int) -> Notification:
    id_element = _child(element, "Id")
    sobject = _child(element, "sObject")
    if sobject is None:
        raise PayloadError(f"notification {index} has no sObject")
    fields = _fields(sobject, 1)
    declared = sobject.get(XSI_TYPE, "").rsplit(":", 1)[-1].strip() or None
    record_id = _text(fields.get("Id"))
    sobject_type = declared or (_ID_PREFIXES.get(record_id[:3]) if record_id else None)
    return Notification(_text(id_element.text if id_element is not None else None), sobject_type, fields)


def _fields(element: Element, depth: int) -> dict[str, Any]:
    """An sObject's (or a related object's) fields by API name; empty and nil fields are left out."""
    fields: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if name in fields or child.get(XSI_NIL) == "true":
            continue
        if len(child):
            if depth < MAX_FIELD_DEPTH:
                nested = _fields(child, depth + 1)
                if nested:
                    fields[name] = nested
            continue
        value = _text(child.text)
        if value is not None:
            fields[name] = value
    return fields
