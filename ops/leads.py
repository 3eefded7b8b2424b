"""`lead-caller leads --status failed --since 24h`: leads by status, newest first, from the by_status index."""

from __future__ import annotations

import argparse
import base64
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from ops.common import plain, table
from ops.target import add_target_arguments, resolve_target

_SPAN = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
COLUMNS = ("updated_at", "status", "source", "record_id", "attempts", "reason")


def register(subparsers: Any) -> None:
    """Add the `leads` command."""
    parser = subparsers.add_parser("leads", help="leads by status (newest first, paged)")
    parser.add_argument("--status", default="failed", help="status to list (default failed)")
    parser.add_argument("--since", default="24h", type=since, help="how far back: 30m, 24h, 7d (default 24h)")
    parser.add_argument("--limit", type=int, default=50, help="leads per page (default 50)")
    parser.add_argument("--page", help="the page token printed at the end of the previous page")
    parser.add_argument("--json", action="store_true", help="JSON lines, one lead per line")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def since(text: str) -> float:
    """Seconds of a span like 30m / 24h / 7d."""
    match = _SPAN.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span such as 30m, 24h or 7d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def query_page(
    dynamodb: Any, table_name: str, status: str, since_seconds: float, limit: int, page: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of leads with `status` changed within `since_seconds`, newest first; (items, next token)."""
    cutoff = datetime.fromtimestamp(time.time() - since_seconds, UTC).isoformat(timespec="milliseconds")
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": "by_status",
        "KeyConditionExpression": "#s = :status AND updated_at >= :cutoff",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":status": {"S": status}, ":cutoff": {"S": cutoff.replace("+00:00", "Z")}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if page:
        request["ExclusiveStartKey"] = json.loads(base64.urlsafe_b64decode(page.encode()))
    answer = dynamodb.query(**request)
    last = answer.get("LastEvaluatedKey")
    token = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
    return [plain(item) for item in answer.get("Items", [])], token


def run(args: argparse.Namespace) -> int:
    """Print one page; the next page's command at the end."""
    target = resolve_target(args)
    items, token = query_page(target.dynamodb, target.table_name, args.status, args.since, args.limit, args.page)
    if args.json:
        for item in items:
            item.pop("document", None)  # personal data: `status LEAD --show-contact` shows it
            print(json.dumps(item, default=str))
    else:
        print("\n".join(table(items, COLUMNS)))
        print(f"{len(items)} lead(s) {args.status}" + (" on this page" if token else ""))
    if token:
        print(f"next page: lead-caller leads --status {args.status} --page {token}")
    return 0
