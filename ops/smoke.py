"""`lead-caller smoke`: end to end through a stack: doctor, one lead in, its call requested.

`--dry-run` stops after doctor's checks and the test delivery (no call). Otherwise one lead with
`--phone` (a number you own, for a test pilot) is sent to /webhooks/generic and followed until
Unpod accepted it (call_requested) or it was refused.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import urllib3

from ops import doctor
from ops.common import SecretProblemError, plain, read_secret
from ops.target import add_target_arguments, resolve_target

DONE = ("call_requested", "in_progress", "completed", "failed", "rejected", "suppressed", "outcome_unknown")


def register(subparsers: Any) -> None:
    """Add the `smoke` command."""
    parser = subparsers.add_parser("smoke", help="end-to-end check: one test lead in, its call requested")
    parser.add_argument("--dry-run", action="store_true", help="checks and a test delivery only; no call")
    parser.add_argument("--phone", help="the number to call (yours; the pilot should be a test pilot)")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the outcome (default 60)")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """0 when the lead reached call_requested (or, with --dry-run, every check passed)."""
    target = resolve_target(args)
    checks, documents = doctor.check_secrets(target)
    if documents["unpod"]:
        checks += doctor.check_unpod(target.unpod_base_url, documents["unpod"])
    checks.append(doctor.send_test_delivery(target, documents["webhooks"]))
    for check in checks:
        print(check.line())
    if any(not check.ok for check in checks):
        print("smoke: FAIL (fix the checks above first)")
        return 1
    if args.dry_run:
        print("smoke: PASS (dry run: no lead sent)")
        return 0
    if not args.phone:
        print("smoke: give --phone with a number you own (or --dry-run)")
        return 2
    return _one_lead(target, args.phone, args.wait)


def _one_lead(target: Any, phone: str, wait: float) -> int:
    from local.signing import standard_webhook_headers

    try:
        generic = read_secret(target.secretsmanager, target.webhook_secret_id).get("generic") or {}
    except SecretProblemError as problem:
        print(f"smoke: {problem}")
        return 1
    record = f"smoke-{uuid.uuid4().hex[:12]}"
    body = json.dumps({"id": record, "first_name": "Smoke", "last_name": "Test", "phone": phone}).encode()
    headers = {"Content-Type": "application/json"}
    if generic.get("signing_secret"):
        headers.update(standard_webhook_headers(str(generic["signing_secret"]), body))
    elif generic.get("bearer_token"):
        headers["Authorization"] = f"Bearer {generic['bearer_token']}"
    else:
        print("smoke: the webhooks secret has no generic signing_secret or bearer_token")
        return 1
    response = urllib3.request("POST", target.webhook_url("generic"), body=body, headers=headers, retries=False)
    print(f"POST {target.webhook_url('generic')} -> HTTP {response.status}")
    if response.status != 202:
        print(f"smoke: FAIL: {response.data.decode(errors='replace')[:300]}")
        return 1
    lead_id = f"generic#{record}"
    deadline = time.monotonic() + wait
    item: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = target.dynamodb.get_item(TableName=target.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True)
        item = plain(got.get("Item"))
        if item.get("status") in DONE:
            break
        time.sleep(1)
    status = item.get("status", "not recorded")
    ok = status in ("call_requested", "in_progress", "completed")
    print(f"lead {lead_id}: {status}" + (f" ({item.get('reason')})" if item.get("reason") else ""))
    print(f"smoke: {'PASS' if ok else 'FAIL'} (see: lead-caller status {lead_id})")
    return 0 if ok else 1
