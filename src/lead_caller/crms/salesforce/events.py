"""Salesforce Change Data Capture events delivered by Amazon EventBridge (a Lambda target, no HTTP).

Two envelopes carry the same change event (`ChangeEventHeader` + field values):

* **Event Relay** (Salesforce's native relay): `source` is
  `aws.partner/salesforce.com/<org id>/<channel id>` and the change event is
  `detail.payload` (next to `detail.schemaId` and `detail.id`);
* **Amazon AppFlow**: `source` is `aws.partner/appflow[...]/salesforce.com/<account>/<flow>`
  and the change event is `detail` itself.

Only `LeadChangeEvent` / `ContactChangeEvent` with `changeType` CREATE become
leads; UPDATE, DELETE, UNDELETE and the GAP_* events (which carry no field
values) are ignored, as are events of other objects, platform events (no
`ChangeEventHeader`: no lead convention is defined for them) and events from
other sources. Each id of `recordIds` gives one lead with the event's field
values, `Id` set to that id and `record_id` = that id.

Compound fields are flattened so the Outbound Message mapping
(`salesforce.SALESFORCE_MAPPING`) reads both: `Name` {Salutation, FirstName,
LastName, ...} adds `FirstName`, `LastName`...; `<prefix>Address` {Street, City,
State, PostalCode, Country, ...} adds `<prefix>Street`... (Lead `Address` ->
`Street`; Contact `MailingAddress` -> `MailingStreet`). The compound values
stay in the record too (path `Address.City` works in FIELD_MAPPINGS).

The leads belong to the source "salesforce", so a record delivered both as a
change event and as an Outbound Message is one lead (`salesforce#<record id>`)
and is called once. Queue them with `Intake.accept(<the registered
SalesforceSource>, leads_from_event(event), received_at, raw)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from lead_caller.sources.base import ParsedLead, PayloadError

RELAY_SOURCE_PREFIX: Final = "aws.partner/salesforce.com/"
ENTITIES: Final = ("Lead", "Contact")
CREATE: Final = "CREATE"
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def is_salesforce_source(source: Any) -> bool:
    """True for the partner event sources of Event Relay and of AppFlow's Salesforce connector."""
    return isinstance(source, str) and source.startswith("aws.partner/") and "/salesforce.com/" in source


def leads_from_event(event: Mapping[str, Any]) -> list[ParsedLead]:
    """The leads of one EventBridge event ([] when it is not a Lead/Contact CREATE); PayloadError if malformed."""
    if not isinstance(event, Mapping):
        raise PayloadError(f"the event is a {type(event).__name__}, expected an EventBridge event object")
    source = event.get("source")
    if not is_salesforce_source(source):
        return []
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise PayloadError("the event's `detail` is missing or not an object")
    change = _change_event(detail)
    if "ChangeEventHeader" not in change:
        return []  # a platform event, not a change event
    header = change["ChangeEventHeader"]
    if not isinstance(header, Mapping):
        raise PayloadError("ChangeEventHeader is not an object")
    entity = _required_text(header, "entityName")
    change_type = _required_text(header, "changeType")
    if entity not in ENTITIES or change_type != CREATE:
        return []
    record_ids = _record_ids(header.get("recordIds"))
    record = change_record(change, entity, _relay_org_id(str(source)))
    return [ParsedLead(record={**record, "Id": record_id}, record_id=record_id) for record_id in record_ids]


def change_record(change: Mapping[str, Any], entity: str, organization_id: str | None = None) -> dict[str, Any]:
    """A change event's fields with compound Name/Address fields flattened, plus `sobject_type`."""
    record: dict[str, Any] = {str(key): value for key, value in change.items()}
    for key, value in change.items():
        if not isinstance(value, Mapping):
            continue
        if key == "Name":
            prefix = ""
        elif str(key).endswith("Address"):
            prefix = str(key)[: -len("Address")]
        else:
            continue
        for part, part_value in value.items():
            record.setdefault(f"{prefix}{part}", part_value)
    record["sobject_type"] = entity
    if organization_id is not None:
        record["organization_id"] = organization_id
    return record


def _change_event(detail: Mapping[str, Any]) -> Mapping[str, Any]:
    """The change event of either envelope: `detail.payload` (Event Relay) or `detail` (AppFlow)."""
    if "payload" not in detail:
        return detail
    payload = detail["payload"]
    if isinstance(payload, str):  # tolerate a payload relayed as JSON text
        try:
            payload = json.loads(payload)
        except (json.JSONDecodeError, RecursionError):
            raise PayloadError("`detail.payload` is text that is not valid JSON") from None
    if not isinstance(payload, Mapping):
        raise PayloadError("`detail.payload` is not an object")
    return payload


def _required_text(header: Mapping[str, Any], key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"ChangeEventHeader.{key} is missing or not text")
    return value.strip()


def _record_ids(raw: Any) -> list[str]:
    """The distinct record ids of `recordIds`, in order; PayloadError unless they are Salesforce ids."""
    if not isinstance(raw, list) or not raw:
        raise PayloadError("ChangeEventHeader.recordIds is missing or empty")
    for index, value in enumerate(raw):
        if not isinstance(value, str) or not _RECORD_ID.fullmatch(value):
            raise PayloadError(f"ChangeEventHeader.recordIds[{index}] is not a Salesforce record id")
    return list(dict.fromkeys(raw))


def _relay_org_id(source: str) -> str | None:
    """The org id in an Event Relay source (`aws.partner/salesforce.com/<org id>/<channel id>`)."""
    if not source.startswith(RELAY_SOURCE_PREFIX):
        return None
    org_id = source[len(RELAY_SOURCE_PREFIX) :].split("/", 1)[0]
    return org_id if _RECORD_ID.fullmatch(org_id) else None
