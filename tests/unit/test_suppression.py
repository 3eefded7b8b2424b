"""The do-not-call list on moto: add, remove, contains, CSV import, the `suppress` command;
only hashes are stored."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from lead_caller.suppression import SuppressionList, phone_hash, to_e164
from ops.suppress import run


@pytest.fixture
def dnc(settings) -> SuppressionList:
    return SuppressionList(boto3.client("dynamodb"), settings.table_name)


def table_text(settings) -> str:
    items = boto3.client("dynamodb").scan(TableName=settings.table_name)["Items"]
    return json.dumps(items)


def test_add_contains_remove(dnc):
    assert dnc.contains("+15125550142") is False
    assert dnc.add("(512) 555-0142", "US") is True
    assert dnc.add("+1 512 555 0142") is False  # the same number, written another way
    assert dnc.contains("001 512 555 0142") is True
    assert dnc.contains_hash(phone_hash("+15125550142")) is True
    assert dnc.remove("+15125550142") is True
    assert dnc.remove("+15125550142") is False
    assert dnc.contains("+15125550142") is False


def test_only_the_hash_of_the_number_is_stored_without_ttl(dnc, settings):
    dnc.add("+44 20 7946 0018", note="asked on the phone")

    items = boto3.client("dynamodb").scan(TableName=settings.table_name)["Items"]
    assert [item["pk"]["S"] for item in items] == ["dnc#" + phone_hash("+442079460018")]
    assert "expires_at" not in items[0]
    text = table_text(settings)
    assert "79460018" not in text
    assert "7946 0018" not in text


def test_a_national_number_is_read_in_the_given_region_and_invalid_input_is_refused(dnc):
    assert to_e164("98765 43210", "IN") == "+919876543210"
    with pytest.raises(ValueError, match="read in US"):
        dnc.add("98765 4321")


def test_csv_import_with_a_header_reports_bad_lines_by_number(dnc, settings):
    csv_text = "name,Phone Number\nAda,+44 20 7946 0018\nBob,not a number\n\nCy,(512) 555-0142\nDi,+15125550142\n"

    report = dnc.import_csv(io.StringIO(csv_text), "US")

    assert (report.added, report.already, report.invalid_lines) == (2, 1, [3])
    assert dnc.contains("+442079460018")
    assert dnc.contains("+15125550142")
    assert "not a number" not in table_text(settings)


def test_csv_import_without_a_header_uses_the_first_column(dnc):
    report = dnc.import_csv(io.StringIO("98765 43210,x\n+15125550142\n"), "IN")

    assert (report.added, report.invalid_lines) == (2, [])
    assert dnc.contains("+919876543210")


def test_the_suppress_command(settings, tmp_path, dnc):
    client, out = boto3.client("dynamodb"), io.StringIO()

    assert run(client, settings.table_name, "add", number="+15125550142", out=out) == 0
    assert run(client, settings.table_name, "add", number="+15125550142", out=out) == 0
    assert run(client, settings.table_name, "add", number="12", out=out) == 2
    path = tmp_path / "dnc.csv"
    path.write_text("phone\n+442079460018\nnope\n", encoding="utf-8")
    assert run(client, settings.table_name, "import", file=str(path), out=out) == 2
    assert run(client, settings.table_name, "remove", number="(512) 555-0142", region="US", out=out) == 0
    assert run(client, settings.table_name, "import", file=str(tmp_path / "missing.csv"), out=out) == 2

    assert out.getvalue().splitlines() == [
        "added to the do-not-call list",
        "already on the do-not-call list",
        "error: not a valid phone number (national numbers read in US)",
        "added 1, already listed 0, invalid 1",
        "not valid phone numbers on line(s) 3 (read in US)",
        "removed from the do-not-call list",
        f"error: cannot read {tmp_path / 'missing.csv'}: No such file or directory",
    ]
    assert dnc.contains("+442079460018")
    assert not dnc.contains("+15125550142")
    assert "5550142" not in out.getvalue()
