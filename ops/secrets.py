"""`lead-caller secrets set SOURCE key=value ...`: merge keys into a secret, never replace it.

SOURCE is `unpod` (the Unpod secret), `agent-webhook` (the token of Unpod's agent webhook, kept
under "unpod" in the webhooks secret), a webhook source (`generic`, `hubspot`, `pipedrive`,
`salesforce`, `zoho`: the webhooks secret) or `crm.<source>` (the CRM API secret). `key=value`
sets a string, `key:=JSON` any JSON value (`portal_id:=62515`, `organization_ids:='["00D..."]'`).
Keys are checked against what the source reads. Values are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ops import schema
from ops.common import SecretProblemError, read_secret
from ops.target import Target, add_target_arguments, resolve_target


def register(subparsers: Any) -> None:
    """Add the `secrets` command (`secrets set`)."""
    parser = subparsers.add_parser("secrets", help="change the stack's secrets (merging, validated)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    setter = actions.add_parser("set", help="merge key=value pairs into a source's credentials")
    setter.add_argument(
        "source", help="unpod | agent-webhook | generic | hubspot | pipedrive | salesforce | zoho | crm.<source>"
    )
    setter.add_argument("pairs", nargs="+", metavar="key=value", help="key=string or key:=JSON")
    setter.add_argument("--reset", action="store_true", help="start from {} when the secret is not a JSON object")
    add_target_arguments(setter)
    setter.set_defaults(func=run)


class UsageError(Exception):
    """A wrong source, key or value; the message says which."""


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """{key: value} of key=value / key:=JSON arguments."""
    values: dict[str, Any] = {}
    for pair in pairs:
        equals = pair.find("=")
        if equals > 0 and pair[equals - 1] == ":":
            key, raw = pair[: equals - 1], pair[equals + 1 :]
            try:
                values[key.strip()] = json.loads(raw)
            except ValueError:
                raise UsageError(f"{key}:= needs a JSON value, got {raw!r}") from None
        elif "=" in pair:
            key, _, text = pair.partition("=")
            values[key.strip()] = text
        else:
            raise UsageError(f"{pair!r} is not key=value")
    return values


def locate(target: Target, source: str) -> tuple[str, str | None, set[str]]:
    """(secret id, key of the source's object or None for the flat Unpod secret, allowed keys)."""
    if source == "unpod":
        return target.unpod_secret_id, None, schema.UNPOD[0]
    if source == "agent-webhook":  # Unpod calls us back: its token lives with the other inbound credentials
        return target.webhook_secret_id, "unpod", schema.WEBHOOKS["unpod"][0]
    if source.startswith("crm."):
        name = source.removeprefix("crm.")
        if name not in schema.CRM:
            raise UsageError(f"no CRM API credentials for {name!r} (known: {', '.join(schema.CRM)})")
        return target.crm_secret_id, name, schema.CRM[name][0]
    if source not in schema.WEBHOOKS or source == "unpod":
        known = ", ".join(["unpod", "agent-webhook", *schema.WEBHOOKS, *(f"crm.{name}" for name in schema.CRM)])
        raise UsageError(f"unknown source {source!r} (known: {known})")
    return target.webhook_secret_id, source, schema.WEBHOOKS[source][0]


def merge(current: dict[str, Any], key: str | None, values: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """The secret document with `values` merged into the source's object (or the flat secret)."""
    if unknown := schema.unknown_keys(values, allowed):
        raise UsageError(f"unknown key(s) {', '.join(unknown)}; this source takes {', '.join(sorted(allowed))}")
    if key is None:
        return {**current, **values}
    found = current.get(key)
    existing: dict[str, Any] = found if isinstance(found, dict) else {}
    return {**current, key: {**existing, **values}}


def run(args: argparse.Namespace) -> int:
    """Read, merge, validate, write; say which keys changed."""
    target = resolve_target(args)
    try:
        secret_id, key, allowed = locate(target, args.source)
        values = parse_pairs(args.pairs)
        try:
            current = read_secret(target.secretsmanager, secret_id)
        except SecretProblemError as problem:
            if not args.reset or "cannot be read" in str(problem):
                raise UsageError(f"{problem} (add --reset to start it from {{}})") from None
            current = {}
        merged = merge(current, key, values, allowed)
    except UsageError as error:
        print(f"lead-caller secrets: {error}", file=sys.stderr)
        return 2
    target.secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(merged))
    where = f"{secret_id}" + (f" [{key}]" if key else "")
    print(f"{where}: set {', '.join(sorted(values))} (other keys kept)")
    return 0
