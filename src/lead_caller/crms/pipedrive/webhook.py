"""Pipedrive source (`POST /webhooks/pipedrive`): webhooks v2 and v1.

Events handled (everything else is answered 200 and ignored):

* v2 `create.person`: a full record (name, phones, emails, custom fields),
  mapped and validated at intake. The v2 person carries only `org_id`: when it
  names one, the person travels in the enrichment spec (kind
  "pipedrive_person" with `person`) and the dispatcher asks only for the
  organisation's name (one request, cached per organisation; best effort: no
  CRM token or a failed lookup calls the person without a company name).
* v2 `create.lead` / `create.deal`: ids only. The person is fetched in the
  dispatch path (`crms/pipedrive/api.py`, enrichment kind "pipedrive_person") with
  its organisation's name; the lead/deal fields travel in the enrichment spec.
  A lead or deal without a person is recorded as rejected (no phone).
* v1 `added.person`: `current` is the person, with `org_name`.

One normalised record shape serves every event, so one mapping fits all
(`person_record`):

    id, name, first_name, last_name, phone (primary), alternate_phone,
    phones[], email (primary), emails[], job_title, notes, postal_address{value,...},
    org_id, org_name, owner_id, label_ids, custom_fields{<hash>: {value, ...}},
    organization{id, name, address, custom_fields}   (fetched persons)
    lead{...} / deal{...}   (the event's data, custom_fields normalised the same way)
    event{entity, action, version, id, company_id, host}

Custom fields are always `custom_fields.<40-char hash>.value` (plus subfields
such as `formatted_address`), whether they came as v2 `{type, value}`
objects, API v2 plain values, or v1 root-level `<hash>` / `<hash>_<sub>` keys.

Dedupe: the record id is `<company_id>-person-<person_id>` for person, lead
and deal events alike, so a person and a lead created for them are called
once within the dedupe window. This subsumes the event id (`meta.id` in v2;
in v1 `meta.id` is the object's id): a redelivered event names the same person.

Answers: Pipedrive bans a webhook after 10 failed first attempts and then
loses its events, so everything is answered 2xx except failed authentication
(401): ignored events, malformed bodies (200 with an error body) and invalid
leads (200 with per-lead results). The exception is 503 when leads could not
be stored durably: losing a lead is worse than feeding the ban counter, and
Pipedrive retries it three times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lead_caller.sources.auth import verify_basic
from lead_caller.sources.base import (
    AuthenticationError,
    LeadResult,
    ParsedLead,
    PayloadError,
    Reply,
    Source,
    WebhookRequest,
    load_json,
)

ENRICHMENT_KIND = "pipedrive_person"
HANDLED_V2 = frozenset({"person", "lead", "deal"})
# a custom field key: 40 hex chars, optionally "_<subfield>" (v1: "<hash>_formatted_address")
_CUSTOM_KEY = re.compile(r"([0-9a-f]{40})(?:_([a-z0-9_]+))?")
_DETAIL_SKIP = frozenset({"custom_fields"})

#: The built-in mapping, over the normalised record (see the module docstring).
PIPEDRIVE_MAPPING: dict[str, Any] = {
    "name": {"first_of": ["name", {"join": ["first_name", "last_name"]}]},
    "contact_number": "phone",
    "alternate_number": "alternate_phone",
    "email": "email",
    "occupation": "job_title",
    "company_name": {"first_of": ["org_name", "organization.name"]},
    "address": {"first_of": ["postal_address.formatted_address", "postal_address.value"]},
    "about": {
        "join": ["notes", {"path": "lead.source_name", "format": "Lead source: {value}"}],
        "separator": ". ",
    },
    "title": {"first_of": ["lead.title", "deal.title"]},
    "labels": {"labels": [{"value": "pipedrive"}, "event.entity"]},
}


class PipedriveSource(Source):
    """Pipedrive webhooks v1 and v2, authenticated with HTTP Basic credentials."""

    name = "pipedrive"
    default_mapping = PIPEDRIVE_MAPPING

    def authenticate(self, request: WebhookRequest, credentials: Mapping[str, Any]) -> None:
        """HTTP Basic (`basic_username`/`basic_password`); none configured fails closed."""
        username = str(credentials.get("basic_username") or "")
        password = str(credentials.get("basic_password") or "")
        if not username or not password:
            raise AuthenticationError("no Basic credentials are configured for this source")
        verify_basic(username, password, request.headers)

    def parse(self, request: WebhookRequest, credentials: Mapping[str, Any] | None = None) -> list[ParsedLead]:
        """The lead of one event (none for ignored events); PayloadError when malformed."""
        del credentials  # Pipedrive events name their company themselves
        payload = _load_json(request.body)
        if not isinstance(payload, dict):
            raise PayloadError(f"the body is a JSON {type(payload).__name__}, expected a Pipedrive webhook object")
        if payload.get("v") == 1 or ("event" in payload and "current" in payload):
            return _parse_v1(payload)
        if isinstance(payload.get("meta"), dict):
            return _parse_v2(payload)
        raise PayloadError("not a Pipedrive webhook: expected `meta` and `data` (v2) or `v`, `event`, `current` (v1)")

    def reply_accepted(self, results: Sequence[LeadResult]) -> Reply:
        """200 whatever happened to the lead (a non-2xx would feed Pipedrive's ban counter)."""
        return Reply.json(200, self.results_body(results, "nothing to call in this event: ignored"))

    def reply_error(self, status: int, error: str, message: str) -> Reply:
        """401 stays 401; other refusals are 200 with the error named (and the status we would have used)."""
        if status == 401 or status >= 500:
            return super().reply_error(status, error, message)
        return Reply.json(200, {"error": error, "message": message, "status": status})


def _load_json(body: bytes) -> Any:
    return load_json(body, "a Pipedrive webhook (JSON)")


def _parse_v2(payload: Mapping[str, Any]) -> list[ParsedLead]:
    meta: Mapping[str, Any] = payload["meta"]
    action, entity = str(meta.get("action") or ""), str(meta.get("entity") or "")
    if action != "create" or entity not in HANDLED_V2:
        return []
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError(f"create.{entity}: `data` is missing or not an object")
    company = _company(meta.get("company_id"))
    event = _event(entity, action, "2.0", meta.get("id"), company, meta.get("host"))
    if entity == "person":
        person_id = numeric_id(data.get("id")) or numeric_id(meta.get("entity_id"))
        if person_id is None:
            raise PayloadError("create.person: the person has no id")
        record = person_record(data, event=event)
        org_id = numeric_id(record.get("org_id"))
        enrichment: dict[str, Any] | None = None
        if org_id is not None and not _text(record.get("org_name")):
            # Validated at intake like any full record, then queued for the organisation's name (dispatch path).
            enrichment = {
                "kind": ENRICHMENT_KIND,
                "person_id": person_id,
                "org_id": org_id,
                "person": dict(data),
                "company_id": company,
                "host": _text(meta.get("host")),
                "event": event,
            }
        return [ParsedLead(record=record, record_id=person_key(company, person_id), enrichment=enrichment)]
    entity_id = _text(data.get("id")) or _text(meta.get("entity_id"))
    if entity_id is None:
        raise PayloadError(f"create.{entity}: the {entity} has no id")
    detail = _detail(data)
    person_id = numeric_id(data.get("person_id"))
    org_id = numeric_id(data.get("organization_id" if entity == "lead" else "org_id"))
    if person_id is None:
        # Nobody to call: keep the record so intake records it as rejected (no phone) under its own key.
        record = {"org_id": org_id, "event": event, entity: detail}
        return [ParsedLead(record=record, record_id=_key(company, entity, entity_id))]
    enrichment = {
        "kind": ENRICHMENT_KIND,
        "person_id": person_id,
        "org_id": org_id,
        "company_id": company,
        "host": _text(meta.get("host")),
        "event": event,
        entity: detail,
    }
    return [ParsedLead(record=None, record_id=person_key(company, person_id), enrichment=enrichment)]


def _parse_v1(payload: Mapping[str, Any]) -> list[ParsedLead]:
    raw_meta = payload.get("meta")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    event_name = str(payload.get("event") or f"{meta.get('action', '')}.{meta.get('object', '')}")
    if event_name != "added.person":
        return []
    current = payload.get("current")
    if not isinstance(current, dict):
        raise PayloadError("added.person: `current` is missing or not an object")
    person_id = numeric_id(current.get("id")) or numeric_id(meta.get("id"))
    if person_id is None:
        raise PayloadError("added.person: the person has no id")
    company = _company(meta.get("company_id")) or _company(current.get("company_id"))
    event = _event("person", "added", "1.0", meta.get("id"), company, meta.get("host"))
    return [ParsedLead(record=person_record(current, event=event), record_id=person_key(company, person_id))]


def person_key(company_id: str | None, person_id: int) -> str:
    """The record id of a person: the dedupe key of person, lead and deal events."""
    return _key(company_id, "person", str(person_id))


def _key(company_id: str | None, entity: str, entity_id: str) -> str:
    return f"{company_id}-{entity}-{entity_id}" if company_id else f"{entity}-{entity_id}"


def _event(entity: str, action: str, version: str, event_id: Any, company: str | None, host: Any) -> dict[str, Any]:
    return {
        "entity": entity,
        "action": action,
        "version": version,
        "id": _text(event_id),
        "company_id": company,
        "host": _text(host),
    }


def person_record(
    person: Mapping[str, Any],
    organization: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The normalised record of a person (webhook v1/v2 or API v2), with its organisation and event.

    `extra` adds the `lead` / `deal` objects of the event that named the person.
    """
    phones = contact_items(person["phones"] if "phones" in person else person.get("phone"))
    emails = contact_items(person["emails"] if "emails" in person else person.get("email"))
    primary_phone = phones[0]["value"] if phones else None
    alternate = next((item["value"] for item in phones[1:] if item["value"] != primary_phone), None)
    org_id: Any = person.get("org_id")
    org_name = person.get("org_name")
    if isinstance(org_id, Mapping):  # API v1 expands org_id to {name, value, ...}
        org_name = org_name or org_id.get("name")
        org_id = org_id.get("value")
    labels = person.get("label_ids")
    if labels is None and person.get("label") not in (None, ""):
        labels = [person["label"]]  # v1: one label id
    record: dict[str, Any] = {
        "id": person.get("id"),
        "name": person.get("name"),
        "first_name": person.get("first_name"),
        "last_name": person.get("last_name"),
        "phone": primary_phone,
        "alternate_phone": alternate,
        "phones": phones,
        "email": emails[0]["value"] if emails else None,
        "emails": emails,
        "job_title": person.get("job_title"),
        "notes": person.get("notes"),
        "postal_address": _with_subfields(person, "postal_address"),
        "org_id": org_id,
        "org_name": org_name,
        "owner_id": person.get("owner_id"),
        "label_ids": list(labels) if isinstance(labels, list) else [],
        "custom_fields": custom_fields(person),
    }
    if organization is not None:
        record["organization"] = {
            "id": organization.get("id"),
            "name": organization.get("name"),
            "address": _with_subfields(organization, "address"),
            "custom_fields": custom_fields(organization),
        }
        record["org_name"] = organization.get("name") or record["org_name"]
    if event is not None:
        record["event"] = dict(event)
    record.update(extra or {})
    return record


def contact_items(raw: Any) -> list[dict[str, Any]]:
    """Phones/emails as [{label, value, primary}] with the primary first; empty values dropped."""
    items = raw if isinstance(raw, list) else [raw]
    found: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Mapping):
            value, label, primary = item.get("value"), item.get("label"), item.get("primary") is True
        else:
            value, label, primary = item, None, False
        text = _text(value)
        if text:
            found.append({"label": label, "value": text, "primary": primary})
    return sorted(found, key=lambda item: not item["primary"])  # stable: order kept otherwise


def custom_fields(entity: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Custom fields as {<hash>: {"value": ..., <subfield>: ...}}, from any Pipedrive shape.

    v2 webhooks send {type, value, ...} objects; API v2 sends plain values, or
    objects for composite types (address, monetary); v1 puts `<hash>` and
    `<hash>_<subfield>` at the root of the object.
    """
    fields: dict[str, dict[str, Any]] = {}
    nested = entity.get("custom_fields")
    if isinstance(nested, Mapping):
        for key, value in nested.items():
            fields[str(key)] = dict(value) if isinstance(value, Mapping) else {"value": value}
    for key, value in entity.items():
        match = _CUSTOM_KEY.fullmatch(str(key))
        if match is None:
            continue
        field_hash, subfield = match.groups()
        fields.setdefault(field_hash, {})[subfield or "value"] = value
    return fields


def _with_subfields(entity: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """An address-like field as an object: API v2's object, or v1's `key` + `key_<sub>` keys."""
    value = entity.get(key)
    if isinstance(value, Mapping):
        return dict(value)
    parts = {sub[len(key) + 1 :]: v for sub, v in entity.items() if sub.startswith(key + "_") and v not in (None, "")}
    if value in (None, "") and not parts:
        return None
    return {"value": value, **parts}


def _detail(data: Mapping[str, Any]) -> dict[str, Any]:
    """A lead's or deal's data with its custom fields normalised like a person's."""
    detail = {key: value for key, value in data.items() if key not in _DETAIL_SKIP and not _CUSTOM_KEY.fullmatch(key)}
    detail["custom_fields"] = custom_fields(data)
    return detail


def numeric_id(value: Any) -> int | None:
    """A positive numeric id (Pipedrive sends numbers in `data`, strings in v2 `meta`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def _company(value: Any) -> str | None:
    """The company id as it may appear in a record id (letters and digits only)."""
    text = re.sub(r"[^A-Za-z0-9]", "", _text(value) or "")[:40]
    return text or None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, Mapping, list)):
        return None
    text = str(value).strip()
    return text or None
