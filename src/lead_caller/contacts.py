"""Unpod contact documents: the 13 fields of the reference, validation and phone normalisation.

A source maps its payload to a `RawContact` (loose strings as the CRM sent them);
`build_document` turns that into a validated `ContactDocument` or a rejection reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import phonenumbers

# The document fields Unpod's Create Task accepts (unpod-api.md, "Document (contact) fields").
DOCUMENT_FIELDS: tuple[str, ...] = (
    "name",
    "email",
    "contact_number",
    "alternate_number",
    "occupation",
    "company_name",
    "address",
    "about",
    "context",
    "labels",
    "title",
    "description",
    "document_id",
)
_TEXT_LIMITS = {
    "name": 200,
    "email": 254,
    "occupation": 200,
    "company_name": 200,
    "address": 500,
    "about": 4000,
    "context": 4000,
    "title": 300,
    "description": 4000,
}
_MAX_LABELS = 20
_MAX_LABEL_LENGTH = 100
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9._:+\-]{1,128}$")
# An email, or a number written like a phone (leading +, or with spaces/brackets). Plain digit
# strings stay as they are: HubSpot, Pipedrive and Zoho record ids are long digit strings.
_LOOKS_PERSONAL = re.compile(r"^(.*@.*|\+[\d\s().-]{6,}|(?=.*[\s().-])\(?\d[\d\s().-]{5,}\d)$")


@dataclass
class RawContact:
    """A lead as a source mapped it, before validation. All values optional."""

    record_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    alternate_phone: str | None = None
    occupation: str | None = None
    company_name: str | None = None
    address: str | None = None
    about: str | None = None
    context: str | None = None
    labels: list[str] = field(default_factory=list)
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ContactDocument:
    """A validated Unpod contact document (one contact = one call)."""

    name: str
    contact_number: str
    document_id: str
    email: str | None = None
    alternate_number: str | None = None
    occupation: str | None = None
    company_name: str | None = None
    address: str | None = None
    about: str | None = None
    context: str | None = None
    labels: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None

    def to_unpod(self) -> dict[str, Any]:
        """The JSON object sent in Create Task's `documents` (empty fields left out)."""
        document: dict[str, Any] = {}
        for name in DOCUMENT_FIELDS:
            value = getattr(self, name)
            if value:
                document[name] = list(value) if name == "labels" else value
        return document

    @classmethod
    def from_unpod(cls, data: Mapping[str, Any]) -> ContactDocument:
        """Rebuild a document from its `to_unpod()` form (e.g. off the queue)."""
        values: dict[str, Any] = {name: data.get(name) for name in DOCUMENT_FIELDS if data.get(name)}
        values["labels"] = tuple(data.get("labels") or ())
        return cls(**values)


@dataclass(frozen=True)
class Rejection:
    """Why a lead cannot be called. `field` names the offending document field."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def normalise_phone(raw: str | None, default_region: str) -> str | None:
    """Return the number in E.164 form, or None when it is not a valid phone number."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not (_valid_in_main_region(number, default_region) or phonenumbers.is_valid_number(number)):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _valid_in_main_region(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """A shortcut for `is_valid_number` (never a different answer): true when the number is valid
    for `region` and `region` is the first region of its calling code with no leading-digits rule.

    `is_valid_number` first finds the number's region: it tries the calling code's regions in
    order and, for one without leading digits, fully validates the number. So the main region
    (US for +1, GB for +44) is returned when the number is valid there, and `is_valid_number`
    then validates it for that region again. Most leads are national numbers of the default
    region: this validates them once instead of twice (~half of phonenumbers' time per lead).
    False means "not shown here", and the caller asks `is_valid_number`.
    """
    main = _main_region(number.country_code or 0)
    return main == region.upper() and bool(phonenumbers.is_valid_number_for_region(number, main))


@cache
def _main_region(country_code: int) -> str | None:
    """The first region of a calling code when it has no leading-digits rule, else None."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code) or ()
    if not regions:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(regions[0], None)
    return regions[0] if metadata is not None and metadata.leading_digits is None else None


def stable_document_id(source: str, record_id: str) -> str:
    """The document_id (Unpod's ref_id) of a CRM record: the same for every delivery of it."""
    return f"{source}-{record_id}"


def derived_record_id(phone_e164: str, email: str | None) -> str:
    """A record id for leads that carry none: a hash of the phone (and email), so stable."""
    digest = hashlib.sha256(f"{phone_e164}|{(email or '').lower()}".encode()).hexdigest()
    return f"h{digest[:24]}"


def build_document(
    source: str, raw: RawContact, default_region: str, region_rule: str | None = None
) -> tuple[ContactDocument | None, Rejection | None, str | None]:
    """Validate and normalise a raw contact (national numbers read in `default_region`).

    `region_rule` says where that region came from, for the rejection message
    ("country": the lead's own, "route", "default").

    Returns (document, None, record_id) when the lead can be called, or
    (None, rejection, record_id) when it cannot. record_id may be None when the
    payload carried none and no phone could be parsed to derive one.
    """
    record_id = _clean(raw.record_id)
    if record_id is not None and _LOOKS_PERSONAL.match(record_id):
        # An email or phone number used as the record id would leak into keys and logs.
        record_id = "h" + hashlib.sha256(record_id.lower().encode()).hexdigest()[:24]
    if record_id is not None and not _RECORD_ID.match(record_id):
        return None, Rejection("id", "record id must be 1-128 letters, digits or ._:+-"), None
    name = _clean(raw.name)
    contact_number = normalise_phone(raw.phone, default_region)
    alternate_number = normalise_phone(raw.alternate_phone, default_region)
    if contact_number is None and alternate_number is not None:
        contact_number, alternate_number = alternate_number, None
    if alternate_number == contact_number:
        alternate_number = None
    email = _clean(raw.email)
    if record_id is None and contact_number is not None:
        record_id = derived_record_id(contact_number, email)

    if contact_number is None:
        reason = "missing" if not (_clean(raw.phone) or _clean(raw.alternate_phone)) else "not a valid phone number"
        if reason != "missing":
            origin = {"country": "the lead's country", "route": "the route's phone_region"}.get(
                region_rule or "", "DEFAULT_PHONE_REGION"
            )
            reason += f" (a national number is read as {default_region}, from {origin})"
        return None, Rejection("contact_number", reason), record_id
    if not name:
        return None, Rejection("name", "missing"), record_id
    if email is not None and (len(email) > _TEXT_LIMITS["email"] or not _EMAIL.match(email)):
        email = None  # a bad email must not stop the call; Unpod does not need it
    assert record_id is not None
    texts = {key: _truncate(_clean(getattr(raw, key)), limit) for key, limit in _TEXT_LIMITS.items()}
    document = ContactDocument(
        name=_truncate(name, _TEXT_LIMITS["name"]) or name,
        contact_number=contact_number,
        alternate_number=alternate_number,
        email=email,
        occupation=texts["occupation"],
        company_name=texts["company_name"],
        address=texts["address"],
        about=texts["about"],
        context=texts["context"],
        title=texts["title"],
        description=texts["description"],
        labels=normalise_labels(raw.labels),
        document_id=stable_document_id(source, record_id),
    )
    return document, None, record_id


def normalise_labels(labels: Iterable[Any]) -> tuple[str, ...]:
    """Trimmed, de-duplicated, non-empty labels (a comma-separated string counts as many)."""
    seen: dict[str, None] = {}
    for label in labels:
        for part in str(label).split(","):
            text = part.strip()[:_MAX_LABEL_LENGTH]
            if text:
                seen.setdefault(text, None)
    return tuple(seen)[:_MAX_LABELS]


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _truncate(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value
