"""The do-not-call list: items `pk = "dnc#<sha256 hex of the E.164 number>"` in the leads table.

No phone number is stored: only its hash, when it was added and an optional note (never a
number). The items have no TTL: a number stays suppressed until someone removes it. The
dispatcher checks every lead against the list before calling (`policy.Planner`); the
`lead-caller suppress` command (ops/suppress.py) adds, removes and imports numbers.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import phonenumbers
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PREFIX = "dnc#"
#: CSV column names recognised as the phone number (else the first column is used)
PHONE_COLUMNS = ("phone", "phone_number", "number", "contact_number", "mobile", "e164", "telephone")


def phone_hash(e164: str) -> str:
    """The SHA-256 hex digest of an E.164 number (the key of the list and of phone claims)."""
    return hashlib.sha256(e164.encode()).hexdigest()


def to_e164(number: str, region: str = "US") -> str:
    """An E.164 number, or ValueError (national numbers are read in `region`)."""
    text = str(number).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number (national numbers read in {region.upper()})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a valid phone number (national numbers read in {region.upper()})")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


@dataclass
class ImportReport:
    """What a CSV import did (line numbers of the rows that were not numbers, never their text)."""

    added: int = 0
    already: int = 0
    invalid_lines: list[int] = field(default_factory=list)


class SuppressionUnavailableError(Exception):
    """The do-not-call list could not be read: the lead is retried, never called unchecked."""


class SuppressionList:
    """Add, remove and check numbers; works on any DynamoDB client (deployed, local stack, moto)."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def add(self, number: str, region: str = "US", note: str | None = None) -> bool:
        """Suppress a number; False when it already was."""
        return self.add_hash(phone_hash(to_e164(number, region)), note)

    def add_hash(self, digest: str, note: str | None = None) -> bool:
        """Suppress a number by its hash; False when it already was."""
        item: dict[str, Any] = {
            "pk": {"S": PREFIX + digest},
            "kind": {"S": "dnc"},
            "added_at": {"S": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")},
        }
        if note:
            item["note"] = {"S": note[:200]}
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove(self, number: str, region: str = "US") -> bool:
        """Take a number off the list; False when it was not on it."""
        response = self.client.delete_item(
            TableName=self.table_name,
            Key={"pk": {"S": PREFIX + phone_hash(to_e164(number, region))}},
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def contains(self, number: str, region: str = "US") -> bool:
        """True when the number is suppressed."""
        return self.contains_hash(phone_hash(to_e164(number, region)))

    def contains_hash(self, digest: str) -> bool:
        """True when the number with this hash is suppressed (a consistent read)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": PREFIX + digest}},
            ConsistentRead=True,
            ProjectionExpression="pk",
        )
        return "Item" in response

    def contains_many(self, digests: Iterable[str]) -> set[str]:
        """The hashes among `digests` that are suppressed: one consistent BatchGetItem per 100."""
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        for start in range(0, len(wanted), 100):
            request: Any = {
                self.table_name: {
                    "Keys": [{"pk": {"S": PREFIX + digest}} for digest in wanted[start : start + 100]],
                    "ProjectionExpression": "pk",
                    "ConsistentRead": True,
                }
            }
            for _ in range(8):  # BatchGetItem may leave keys unprocessed under throttling
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found.add(str(item["pk"]["S"]).removeprefix(PREFIX))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise SuppressionUnavailableError("the do-not-call list could not be read (throttled)")
        return found

    def import_csv(self, handle: IO[str], region: str = "US", note: str | None = None) -> ImportReport:
        """Suppress every number of a CSV file (a `phone`-like column, else the first column).

        A header row is recognised by its column names; rows that are not valid numbers are
        reported by line number and skipped.
        """
        report = ImportReport()
        rows = csv.reader(handle)
        column = 0
        for line, row in enumerate(rows, start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if line == 1:
                names = [cell.lower().replace(" ", "_") for cell in cells]
                found = next((names.index(name) for name in PHONE_COLUMNS if name in names), None)
                if found is not None:
                    column = found
                    continue
            value = cells[column] if column < len(cells) else ""
            try:
                digest = phone_hash(to_e164(value, region))
            except ValueError:
                report.invalid_lines.append(line)
                continue
            if self.add_hash(digest, note):
                report.added += 1
            else:
                report.already += 1
        return report
