"""`lead-caller suppress`: add, remove and bulk-import numbers of the do-not-call list.

    lead-caller suppress add "+1 512 555 0142"
    lead-caller suppress add "(512) 555-0142" --phone-region US
    lead-caller suppress remove +15125550142
    lead-caller suppress import dnc.csv --phone-region GB

Works against the local stack (`make run`) and a deployed stack: where the table is comes
from the shared target options (ops/target.py). Only the SHA-256 of each E.164 number is
stored (src/lead_caller/suppression.py); nothing here prints a number.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from lead_caller.suppression import SuppressionList
from ops.target import add_target_arguments, resolve_target

EXIT_OK = 0
EXIT_INVALID = 2


def register(subparsers: Any) -> None:
    """Add the `suppress` command (with `add`, `remove`, `import`) to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "suppress",
        help="the do-not-call list: add, remove, import numbers",
        description="Numbers on the do-not-call list are never called (stored as SHA-256 hashes only).",
    )
    actions = parser.add_subparsers(dest="suppress_action", required=True, metavar="{add,remove,import}")
    region = os.environ.get("DEFAULT_PHONE_REGION", "US") or "US"
    for name, text in (("add", "put a number on the list"), ("remove", "take a number off the list")):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("number", help='E.164 ("+15125550142") or national (read in --phone-region)')
        _common(action, region)
        add_target_arguments(action)
        action.set_defaults(func=main)
    importer = actions.add_parser("import", help="put every number of a CSV file on the list")
    importer.add_argument("file", help="CSV: a phone/number/phone_number column, else the first column")
    _common(importer, region)
    add_target_arguments(importer)
    importer.set_defaults(func=main)


def _common(parser: argparse.ArgumentParser, region: str) -> None:
    # --region is the AWS region (ops/target.py); this is the country national numbers are read in
    parser.add_argument(
        "--phone-region", dest="phone_region", default=region, help=f"region of national numbers (default {region})"
    )
    parser.add_argument("--note", default=None, help="a note stored with the entry (never a number)")


def main(args: argparse.Namespace) -> int:
    """Run the parsed `suppress` command against the resolved target."""
    target = resolve_target(args)
    return run(
        target.dynamodb,
        target.table_name,
        args.suppress_action,
        number=getattr(args, "number", None),
        file=getattr(args, "file", None),
        region=args.phone_region,
        note=args.note,
    )


def run(
    client: Any,
    table_name: str,
    action: str,
    number: str | None = None,
    file: str | None = None,
    region: str = "US",
    note: str | None = None,
    out: TextIO | None = None,
) -> int:
    """The command's work on a DynamoDB client + table (the CLI, the tests, scripts). Returns the exit code."""
    out = out or sys.stdout
    dnc = SuppressionList(client, table_name)
    try:
        if action == "add":
            added = dnc.add(str(number), region, note)
            print("added to the do-not-call list" if added else "already on the do-not-call list", file=out)
        elif action == "remove":
            removed = dnc.remove(str(number), region)
            print("removed from the do-not-call list" if removed else "was not on the do-not-call list", file=out)
        elif action == "import":
            with open(str(file), encoding="utf-8-sig", newline="") as handle:
                report = dnc.import_csv(handle, region, note)
            print(
                f"added {report.added}, already listed {report.already}, invalid {len(report.invalid_lines)}", file=out
            )
            if report.invalid_lines:
                lines = ", ".join(str(line) for line in report.invalid_lines[:20])
                more = " ..." if len(report.invalid_lines) > 20 else ""
                print(f"not valid phone numbers on line(s) {lines}{more} (read in {region.upper()})", file=out)
                return EXIT_INVALID
        else:
            print(f"unknown action {action!r}", file=out)
            return EXIT_INVALID
    except ValueError as error:
        print(f"error: {error}", file=out)
        return EXIT_INVALID
    except OSError as error:
        print(f"error: cannot read {file}: {error.strerror}", file=out)
        return EXIT_INVALID
    return EXIT_OK
