"""Unit tests for lead_caller.contacts: phone normalisation, validation, document ids, labels."""

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_caller.contacts import (
    DOCUMENT_FIELDS,
    ContactDocument,
    RawContact,
    Rejection,
    build_document,
    derived_record_id,
    normalise_labels,
    normalise_phone,
    stable_document_id,
)

SOURCE = "generic"


def full_raw(**overrides: Any) -> RawContact:
    """A RawContact with every field filled (values from sample 9.10), optionally overridden."""
    values: dict[str, Any] = {
        "record_id": "zap-lead-20260101-0001",
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "phone": "+1 (512) 555-0142",
        "alternate_phone": "+1 512 555 0199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "context": "Ask about the size of the fleet.",
        "labels": ["inbound", "pricing"],
        "title": "New lead: Maria Gonzalez",
        "description": "Inbound lead from the website form.",
    }
    values.update(overrides)
    return RawContact(**values)


def build_ok(raw: RawContact, region: str = "US", source: str = SOURCE) -> tuple[ContactDocument, str]:
    """Build a document that must be accepted; return it with its record id."""
    document, rejection, record_id = build_document(source, raw, region)
    assert rejection is None, rejection
    assert document is not None
    assert record_id is not None
    return document, record_id


def build_rejected(raw: RawContact, region: str = "US") -> tuple[Rejection, str | None]:
    """Build a document that must be rejected; return the rejection and record id."""
    document, rejection, record_id = build_document(SOURCE, raw, region)
    assert document is None
    assert rejection is not None
    return rejection, record_id


# --- normalise_phone -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "(202) 456-1111",
        "202-456-1111",
        "202.456.1111",
        "2024561111",
        "1-202-456-1111",
        "+1 202 456 1111",
        "+1 (202) 456-1111",
        "  202 456 1111  ",
        "001 202 456 1111",
    ],
)
def test_normalise_phone_us_formats(raw: str) -> None:
    assert normalise_phone(raw, "US") == "+12024561111"


@pytest.mark.parametrize("region", ["US", "GB", "DE"])
def test_normalise_phone_international_prefix_ignores_region(region: str) -> None:
    assert normalise_phone("+44 20 7946 0018", region) == "+442079460018"


@pytest.mark.parametrize("raw", ["0044 20 7946 0018", "00442079460018", "0044 (0)20 7946 0018"])
def test_normalise_phone_00_prefix_is_international(raw: str) -> None:
    assert normalise_phone(raw, "US") == "+442079460018"


def test_normalise_phone_region_comes_from_argument() -> None:
    # A UK national number only parses with the GB default region...
    assert normalise_phone("020 7946 0018", "GB") == "+442079460018"
    assert normalise_phone("07400 123456", "GB") == "+447400123456"
    assert normalise_phone("07400 123456", "US") is None
    # ... and a US national number only with the US one.
    assert normalise_phone("202 456 1111", "US") == "+12024561111"
    assert normalise_phone("202 456 1111", "GB") is None


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "12345", "555", "abc", "not a phone", "+1 202 456 111", "+1 202 456 11111", "+999 123456789"],
)
def test_normalise_phone_invalid_or_short_returns_none(raw: str | None) -> None:
    assert normalise_phone(raw, "US") is None


def test_normalise_phone_non_string_input() -> None:
    number: Any = 2024561111
    assert normalise_phone(number, "US") == "+12024561111"
    for junk in (True, 3.5, object()):
        value: Any = junk
        assert normalise_phone(value, "US") is None


# --- build_document: field mapping ---------------------------------------------------------


def test_build_document_maps_all_13_fields() -> None:
    document, record_id = build_ok(full_raw())
    assert record_id == "zap-lead-20260101-0001"
    assert document.to_unpod() == {
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@acme-logistics.example",
        "contact_number": "+15125550142",
        "alternate_number": "+15125550199",
        "occupation": "Director of Operations",
        "company_name": "Acme Logistics",
        "address": "1200 Congress Ave, Suite 400, Austin, TX 78701, US",
        "about": "Requested a callback about fleet pricing.",
        "context": "Ask about the size of the fleet.",
        "labels": ["inbound", "pricing"],
        "title": "New lead: Maria Gonzalez",
        "description": "Inbound lead from the website form.",
        "document_id": "generic-zap-lead-20260101-0001",
    }
    assert len(DOCUMENT_FIELDS) == 13
    assert set(document.to_unpod()) == set(DOCUMENT_FIELDS)


def test_to_unpod_omits_empty_fields() -> None:
    document, _ = build_ok(RawContact(record_id="r-1", name="Maria", phone="202-456-1111", about="   ", labels=[]))
    assert document.to_unpod() == {
        "name": "Maria",
        "contact_number": "+12024561111",
        "document_id": "generic-r-1",
    }


def test_build_document_collapses_whitespace() -> None:
    document, _ = build_ok(full_raw(name="  Maria \n\t Gonzalez ", company_name=" Acme   Logistics "))
    assert document.name == "Maria Gonzalez"
    assert document.company_name == "Acme Logistics"


# --- build_document: required fields -------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   \n "])
def test_name_is_required(name: str | None) -> None:
    rejection, record_id = build_rejected(full_raw(name=name))
    assert (rejection.field, rejection.reason) == ("name", "missing")
    assert str(rejection) == "name: missing"
    assert record_id == "zap-lead-20260101-0001"


@pytest.mark.parametrize(("phone", "alternate"), [(None, None), ("", ""), ("  ", None)])
def test_phone_is_required(phone: str | None, alternate: str | None) -> None:
    rejection, _ = build_rejected(full_raw(phone=phone, alternate_phone=alternate))
    assert (rejection.field, rejection.reason) == ("contact_number", "missing")


def test_invalid_phone_is_rejected_with_reason() -> None:
    rejection, record_id = build_rejected(full_raw(phone="12345", alternate_phone="not a number"))
    assert rejection.field == "contact_number"
    assert rejection.reason == "not a valid phone number (a national number is read as US, from DEFAULT_PHONE_REGION)"
    assert record_id == "zap-lead-20260101-0001"


def test_rejection_without_record_id_or_phone_has_no_record_id() -> None:
    rejection, record_id = build_rejected(RawContact(name="Maria", phone="12345"))
    assert rejection.field == "contact_number"
    assert record_id is None


def test_missing_name_with_valid_phone_still_derives_record_id() -> None:
    rejection, record_id = build_rejected(RawContact(phone="202-456-1111"))
    assert rejection.field == "name"
    assert record_id == derived_record_id("+12024561111", None)


# --- build_document: phones ----------------------------------------------------------------


def test_alternate_equal_to_primary_is_dropped() -> None:
    document, _ = build_ok(full_raw(phone="+1 (512) 555-0142", alternate_phone="512.555.0142"))
    assert document.contact_number == "+15125550142"
    assert document.alternate_number is None
    assert "alternate_number" not in document.to_unpod()


@pytest.mark.parametrize("phone", [None, "", "12345"])
def test_only_alternate_becomes_contact_number(phone: str | None) -> None:
    document, _ = build_ok(full_raw(phone=phone, alternate_phone="+1 512 555 0199"))
    assert document.contact_number == "+15125550199"
    assert document.alternate_number is None


def test_invalid_alternate_is_dropped() -> None:
    document, _ = build_ok(full_raw(alternate_phone="555"))
    assert document.contact_number == "+15125550142"
    assert document.alternate_number is None


def test_phone_uses_default_region_argument() -> None:
    document, _ = build_ok(full_raw(phone="020 7946 0018", alternate_phone=None), region="GB")
    assert document.contact_number == "+442079460018"
    rejection, _ = build_rejected(full_raw(phone="020 7946 0018", alternate_phone=None), region="US")
    assert rejection.reason == "not a valid phone number (a national number is read as US, from DEFAULT_PHONE_REGION)"


# --- build_document: email ------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "maria@", "@acme.example", "maria@acme", "ma ria@acme.example"])
def test_invalid_email_is_dropped_but_lead_kept(email: str) -> None:
    document, _ = build_ok(full_raw(email=email))
    assert document.email is None
    assert "email" not in document.to_unpod()
    assert document.contact_number == "+15125550142"


def test_valid_email_is_kept_trimmed() -> None:
    document, _ = build_ok(full_raw(email="  maria@acme.example "))
    assert document.email == "maria@acme.example"


def test_overlong_email_is_not_kept() -> None:
    email = "a" * 300 + "@acme.example"
    document, _ = build_ok(full_raw(email=email))
    assert document.email is None or len(document.email) <= 254


# --- document ids ----------------------------------------------------------------------------


def test_document_id_is_stable_for_the_same_record() -> None:
    first, _ = build_ok(full_raw())
    second, _ = build_ok(full_raw(name="Maria G.", phone="+1 202 456 1111", email="other@acme.example"))
    assert first.document_id == second.document_id == stable_document_id(SOURCE, "zap-lead-20260101-0001")
    assert first.document_id == "generic-zap-lead-20260101-0001"


def test_document_id_depends_on_source() -> None:
    a, _ = build_ok(full_raw(), source="generic")
    b, _ = build_ok(full_raw(), source="hubspot")
    assert a.document_id != b.document_id
    assert b.document_id == stable_document_id("hubspot", "zap-lead-20260101-0001")


def test_stable_document_id_format() -> None:
    assert stable_document_id("hubspot", "12") == "hubspot-12"
    assert stable_document_id("hubspot", "12") == stable_document_id("hubspot", "12")
    assert stable_document_id("hubspot", "12") != stable_document_id("hubspot", "13")


def test_derived_record_id_when_none_given() -> None:
    a, record_a = build_ok(full_raw(record_id=None, phone="(512) 555-0142"))
    b, record_b = build_ok(full_raw(record_id=None, phone="+1 512 555 0142", name="Someone else"))
    assert record_a == record_b == derived_record_id("+15125550142", "maria.gonzalez@acme-logistics.example")
    assert a.document_id == b.document_id == stable_document_id(SOURCE, record_a)
    assert record_a.startswith("h")
    assert len(record_a) == 25


def test_derived_record_id_depends_on_phone_and_email() -> None:
    base = derived_record_id("+15125550142", "maria@acme.example")
    assert derived_record_id("+15125550142", "maria@acme.example") == base
    assert derived_record_id("+15125550142", "MARIA@Acme.Example") == base
    assert derived_record_id("+15125550199", "maria@acme.example") != base
    assert derived_record_id("+15125550142", "other@acme.example") != base
    assert derived_record_id("+15125550142", None) == derived_record_id("+15125550142", "")
    assert derived_record_id("+15125550142", None) != base


def test_derived_record_id_differs_for_different_phones() -> None:
    _, record_a = build_ok(full_raw(record_id=None, phone="202-456-1111", alternate_phone=None))
    _, record_b = build_ok(full_raw(record_id=None, phone="202-456-1112", alternate_phone=None))
    assert record_a != record_b


@pytest.mark.parametrize(
    "record_id",
    ["maria.gonzalez@acme-logistics.example", "+1 (512) 555-0142", "+15125550142", "512-555-0142", "(512) 5550142"],
)
def test_personal_record_id_is_hashed(record_id: str) -> None:
    document, returned = build_ok(full_raw(record_id=record_id))
    expected = "h" + hashlib.sha256(record_id.lower().encode()).hexdigest()[:24]
    assert returned == expected
    assert document.document_id == stable_document_id(SOURCE, expected)
    assert record_id not in document.document_id
    assert "@" not in document.document_id
    assert "5550142" not in document.document_id
    # The same personal id always gives the same document id.
    again, _ = build_ok(full_raw(record_id=record_id))
    assert again.document_id == document.document_id


def test_email_record_id_hash_is_case_insensitive() -> None:
    _, lower = build_ok(full_raw(record_id="maria@acme.example"))
    _, upper = build_ok(full_raw(record_id="Maria@ACME.example"))
    assert lower == upper


@pytest.mark.parametrize("record_id", ["ct_01JGXK4N8Q2V7M3R5T9W1Y6Z0A", "003Dn00000Abc12", "a:b.c+d-e_f", "x" * 128])
def test_plain_record_id_is_kept(record_id: str) -> None:
    document, returned = build_ok(full_raw(record_id=record_id))
    assert returned == record_id
    assert document.document_id == f"{SOURCE}-{record_id}"


@pytest.mark.parametrize("record_id", ["lead 1", "lead/1", "lead#1", "a" * 129, "lead;drop", "léad"])
def test_bad_record_id_characters_rejected(record_id: str) -> None:
    rejection, returned = build_rejected(full_raw(record_id=record_id))
    assert rejection.field == "id"
    assert "record id" in rejection.reason
    assert returned is None


# --- labels ----------------------------------------------------------------------------------


def test_labels_from_comma_string_and_list_are_trimmed_and_deduplicated() -> None:
    assert normalise_labels(["inbound,pricing"]) == ("inbound", "pricing")
    assert normalise_labels([" inbound , pricing ", "pricing", "vip", " inbound"]) == ("inbound", "pricing", "vip")
    assert normalise_labels(["", " , ,", "a"]) == ("a",)
    assert normalise_labels([]) == ()
    assert normalise_labels([1, 2, "1"]) == ("1", "2")


def test_labels_are_capped_in_number_and_length() -> None:
    labels = normalise_labels([f"label{i}" for i in range(30)])
    assert labels == tuple(f"label{i}" for i in range(20))
    long = normalise_labels(["x" * 150])
    assert long == ("x" * 100,)


def test_labels_capped_after_deduplication() -> None:
    labels = normalise_labels(["dup"] * 50 + [f"l{i}" for i in range(25)])
    assert len(labels) == 20
    assert labels[0] == "dup"
    assert labels[1:] == tuple(f"l{i}" for i in range(19))


def test_build_document_normalises_labels() -> None:
    document, _ = build_ok(full_raw(labels=["inbound, pricing", "pricing", " vip "]))
    assert document.labels == ("inbound", "pricing", "vip")
    assert document.to_unpod()["labels"] == ["inbound", "pricing", "vip"]


# --- truncation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("name", 200),
        ("occupation", 200),
        ("company_name", 200),
        ("address", 500),
        ("about", 4000),
        ("context", 4000),
        ("title", 300),
        ("description", 4000),
    ],
)
def test_long_text_is_truncated(field: str, limit: int) -> None:
    document, _ = build_ok(full_raw(**{field: "y" * (limit + 50)}))
    assert getattr(document, field) == "y" * limit
    at_limit, _ = build_ok(full_raw(**{field: "z" * limit}))
    assert getattr(at_limit, field) == "z" * limit


# --- round trip ------------------------------------------------------------------------------


def test_from_unpod_round_trips_full_document() -> None:
    document, _ = build_ok(full_raw())
    data = document.to_unpod()
    rebuilt = ContactDocument.from_unpod(data)
    assert rebuilt == document
    assert rebuilt.to_unpod() == data
    assert isinstance(rebuilt.labels, tuple)


def test_from_unpod_round_trips_minimal_document() -> None:
    document, _ = build_ok(RawContact(name="Maria", phone="202-456-1111"))
    rebuilt = ContactDocument.from_unpod(document.to_unpod())
    assert rebuilt == document
    assert rebuilt.labels == ()
    assert rebuilt.email is None


@pytest.mark.parametrize("record_id", ["1246978", "12345678901234", "00Q5e000001AbCdEAK", "zap-lead-20260101-0001"])
def test_crm_record_ids_are_kept_as_they_are(record_id: str) -> None:
    """HubSpot/Pipedrive/Zoho ids are plain digit strings, Salesforce ids alphanumeric: not personal."""
    document, kept = build_ok(full_raw(record_id=record_id))
    assert kept == record_id
    assert document.document_id == f"generic-{record_id}"


def _reference_normalise(raw: str, region: str) -> str | None:
    """normalise_phone as phonenumbers' documented calls alone would answer."""
    import phonenumbers

    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=400, deadline=None)
@given(
    region=st.sampled_from(["US", "CA", "GB", "IM", "IN", "DE", "AU", "BR", "JP", "AG", "FR"]),
    prefix=st.sampled_from(["", "+1", "+44", "+91", "+49", "+61", "00", "0", "+7", "+33", "+1 268"]),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=12),
)
def test_the_main_region_shortcut_answers_as_is_valid_number(region: str, prefix: str, digits: str) -> None:
    raw = f"{prefix} {digits}".strip()
    assert normalise_phone(raw, region) == _reference_normalise(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("(415) 555-0123", "US"),  # main region of +1, valid
        ("(416) 555-0123", "US"),  # a Canadian number read in the US: valid through is_valid_number
        ("(416) 555-0123", "CA"),  # CA is not +1's main region: no shortcut
        ("(268) 464-1234", "US"),  # Antigua: +1 with leading digits
        ("07700 900123", "GB"),
        ("01624 612345", "GB"),  # Isle of Man: +44, its own region
        ("98765 43210", "IN"),
        ("+1 202 555 01", "US"),  # too short
    ],
)
def test_the_main_region_shortcut_on_known_numbers(raw: str, region: str) -> None:
    assert normalise_phone(raw, region) == _reference_normalise(raw, region)


def test_the_main_region_shortcut_on_every_regions_example_numbers() -> None:
    """Valid numbers of every region (phonenumbers' own examples), read in their region and in
    the main regions of +1 and +44: the shortcut never changes an answer, and it is taken."""
    import phonenumbers

    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            for raw, read_in in ((national, region), (international, "US"), (national, "GB"), (national, "US")):
                assert normalise_phone(raw, read_in) == _reference_normalise(raw, read_in), (raw, read_in)
                checked += 1
    assert checked > 800
    assert normalise_phone("(415) 555-0123", "US") == "+14155550123"
