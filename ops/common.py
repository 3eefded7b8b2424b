"""Helpers the commands share: items, secrets, tables, phone hashes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_deserializer = TypeDeserializer()
#: known webhook sources (the `pk` prefixes of leads)
SOURCES = ("generic", "hubspot", "pipedrive", "salesforce", "zoho", "eventbridge")


def plain(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (Decimals as int/float)."""
    return {key: _simplify(_deserializer.deserialize(value)) for key, value in (item or {}).items()}


def _simplify(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _simplify(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_simplify(v) for v in value]
    return value


class SecretProblemError(Exception):
    """A secret is missing, unreadable or not a JSON object."""


def read_secret(client: Any, secret_id: str) -> dict[str, Any]:
    """A secret's JSON object; SecretProblemError (one line) otherwise."""
    try:
        value = client.get_secret_value(SecretId=secret_id)
    except Exception as error:  # ResourceNotFoundException, AccessDenied, no credentials...
        code = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
        raise SecretProblemError(f"secret {secret_id} cannot be read: {code}") from None
    text = value.get("SecretString")
    if not text:
        raise SecretProblemError(f"secret {secret_id} has no value yet")
    try:
        parsed = json.loads(text)
    except ValueError:
        raise SecretProblemError(f"secret {secret_id} is not JSON") from None
    if not isinstance(parsed, dict):
        raise SecretProblemError(f"secret {secret_id} is not a JSON object")
    return parsed


def phone_hash(phone: str, region: str = "US") -> str | None:
    """The hash leads are stored under for `phone` (None when it is not a valid number): read
    like the functions read a lead's number (`contacts.normalise_phone`: `00` as `+`, national
    numbers in `region`), hashed like the do-not-call list and phone claims."""
    from lead_caller.contacts import normalise_phone
    from lead_caller.suppression import phone_hash as e164_hash

    e164 = normalise_phone(phone, region.upper())
    return e164_hash(e164) if e164 else None


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """Aligned text table lines (header in capitals)."""
    cells = [[column.upper() for column in columns]] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        yield "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
