"""`lead-caller status LEAD`: one lead's record and timeline, by lead id, CRM record id or phone number."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ops.common import SOURCES, phone_hash, plain, table
from ops.target import Target, add_target_arguments, resolve_target

#: document keys that carry personal data: masked unless --show-contact
PERSONAL = ("contact_number", "email", "phone", "alternate_number")
#: item fields that are moments of the lead's life, with what happened then
MOMENTS = (
    ("received_at", "received"),
    ("first_try_at", "first call attempt"),
    ("claimed_at", "claimed for calling"),
    ("planned_at", "call planned"),
    ("next_try_at", "next try"),
    ("recall_at", "re-call due"),
    ("outcome_at", "outcome reported"),
    ("updated_at", "last change"),
)


def register(subparsers: Any) -> None:
    """Add the `status` command."""
    parser = subparsers.add_parser("status", help="a lead's record and timeline (lead id, CRM record id or phone)")
    parser.add_argument("lead", help="lead id (hubspot#62515:123), CRM record id (123) or phone (+14155550100)")
    parser.add_argument("--json", action="store_true", help="the whole record as JSON")
    parser.add_argument("--show-contact", action="store_true", help="do not mask the phone number and email")
    parser.add_argument("--phone-region", default="US", help="region of a phone number without + (default US)")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def find_leads(target: Target, lead: str, phone_region: str = "US") -> list[dict[str, Any]]:
    """The lead items `lead` names: a lead id, a record id in any source, or a phone number (by hash)."""
    if "#" in lead:
        found = _get(target, lead)
        return [found] if found else []
    by_record = [item for source in SOURCES if (item := _get(target, f"{source}#{lead}"))]
    if by_record:
        return by_record
    digest = phone_hash(lead, phone_region) if any(ch.isdigit() for ch in lead) else None
    return _by_phone_hash(target, digest) if digest else []


def _get(target: Target, lead_id: str) -> dict[str, Any] | None:
    item = target.dynamodb.get_item(TableName=target.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True)
    return plain(item.get("Item")) or None


def _by_phone_hash(target: Target, digest: str) -> list[dict[str, Any]]:
    """Leads whose phone hashes to `digest` (their `phone_hash`, or the hash of their document's number)."""
    found: list[dict[str, Any]] = []
    for page in target.dynamodb.get_paginator("scan").paginate(TableName=target.table_name):
        for raw in page.get("Items", []):
            item = plain(raw)
            if "source" not in item:
                continue  # reserved items
            number = (item.get("document") or {}).get("contact_number")
            if item.get("phone_hash") == digest or (isinstance(number, str) and phone_hash(number) == digest):
                found.append(item)
    return found


def masked(item: dict[str, Any]) -> dict[str, Any]:
    """The item with personal data in its document replaced by "***"."""
    document = item.get("document")
    if not isinstance(document, dict):
        return item
    return {**item, "document": {k: ("***" if k in PERSONAL and v else v) for k, v in document.items()}}


def timeline(item: dict[str, Any]) -> list[dict[str, Any]]:
    """(at, event, detail) rows, oldest first."""
    rows: list[dict[str, Any]] = []
    for key, event in MOMENTS:
        if item.get(key):
            detail = ""
            if key == "claimed_at":
                detail = f"claim {item.get('claim_id', '')}".strip()
            elif key == "updated_at":
                detail = f"status {item.get('status')}"
                if item.get("reason"):
                    detail += f": {item['reason']}"
            rows.append({"at": str(item[key]), "event": event, "detail": detail})
    for attempt in item.get("attempts_log") or []:
        if isinstance(attempt, dict):
            rows.append(
                {
                    "at": str(attempt.get("at", "")),
                    "event": f"call attempt {attempt.get('attempt', '')}",
                    "detail": f"run {attempt.get('run_id', '')} task {attempt.get('task_id', '')}: "
                    f"{attempt.get('outcome', '')}",
                }
            )
    if item.get("run_id"):
        rows.append(
            {
                "at": str(item.get("updated_at", "")),
                "event": "Unpod accepted",
                "detail": f"run {item['run_id']} tasks {', '.join(item.get('task_ids') or [])}",
            }
        )
    elif item.get("unpod_status") or item.get("error_kind"):
        rows.append(
            {
                "at": str(item.get("updated_at", "")),
                "event": "Unpod answered",
                "detail": f"{item.get('unpod_status', '')} {item.get('error_kind', '')}: "
                f"{item.get('unpod_message', '')}",
            }
        )
    rows.sort(key=lambda row: row["at"])
    return rows


SUMMARY = ("pk", "status", "reason", "source", "record_id", "attempts", "call_state", "run_id", "error_kind")


def render(item: dict[str, Any]) -> list[str]:
    """The readable view of one lead."""
    lines = [f"lead {item['pk']}"]
    lines += [f"  {key:<11} {item[key]}" for key in SUMMARY[1:] if item.get(key) not in (None, "", [])]
    lines.append("")
    lines += list(table(timeline(item), ("at", "event", "detail")))
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the lead(s) `args.lead` names; exit 1 when there is none."""
    target = resolve_target(args)
    items = find_leads(target, args.lead, args.phone_region)
    if not args.show_contact:
        items = [masked(item) for item in items]
    if args.json:
        print(json.dumps(items, indent=2, default=str))
    else:
        for index, item in enumerate(items):
            if index:
                print()
            print("\n".join(render(item)))
    if not items:
        if not args.json:
            print(f"no lead matches {args.lead!r} in {target.table_name} ({target.name})")
        return 1
    return 0
