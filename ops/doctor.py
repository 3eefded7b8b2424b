"""`lead-caller doctor`: is the stack ready to call? One PASS/FAIL line per check.

* each secret exists, is a JSON object and has the keys each configured source needs;
* Unpod: GET /organizations/, /spaces/, /agents/ prove the token, the org handle, the space
  token and the pilot (exists, published);
* a signed test delivery (`X-Lead-Caller-Test: 1`) to the webhook URL is authenticated and
  answered as a test: nothing is queued, no call is placed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import urllib3

from ops import schema
from ops.common import SecretProblemError, read_secret
from ops.target import Target, add_target_arguments, resolve_target

TEST_HEADER = "X-Lead-Caller-Test"
#: sample credentials published in the README and local/signing.py: never valid on a real stack
PUBLISHED_PREFIXES = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "gen_9b2e7c4a1f6d8e3b5a0c2d4f6e8a1b3c")


@dataclass
class Check:
    """One line of the report."""

    ok: bool
    what: str
    detail: str

    def line(self) -> str:
        """PASS/FAIL what: detail."""
        return f"{'PASS' if self.ok else 'FAIL'} {self.what}: {self.detail}"


def register(subparsers: Any) -> None:
    """Add the `doctor` command."""
    parser = subparsers.add_parser("doctor", help="check secrets, Unpod credentials and pilot, and the webhook URL")
    parser.add_argument("--skip-delivery", action="store_true", help="do not send the test delivery")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def check_secrets(target: Target) -> tuple[list[Check], dict[str, dict[str, Any]]]:
    """Checks of the three secrets, and their documents ({} when unreadable)."""
    checks: list[Check] = []
    documents: dict[str, dict[str, Any]] = {}
    for name, secret_id in (
        ("unpod", target.unpod_secret_id),
        ("webhooks", target.webhook_secret_id),
        ("crm", target.crm_secret_id),
    ):
        try:
            documents[name] = read_secret(target.secretsmanager, secret_id)
        except SecretProblemError as problem:
            documents[name] = {}
            checks.append(Check(False, f"{name} secret", str(problem)))
            continue
        checks.append(Check(True, f"{name} secret", f"{secret_id} is a JSON object"))
    unpod = documents["unpod"]
    if unpod or not any(c.what == "unpod secret" and not c.ok for c in checks):
        missing = schema.missing_keys(unpod, schema.UNPOD[1])
        checks.append(
            Check(
                not missing,
                "unpod secret keys",
                f"lacks {', '.join(missing)}" if missing else "api_token, space_token, pilot set",
            )
        )
    webhooks = documents["webhooks"]
    if not webhooks:
        checks.append(Check(False, "webhook credentials", "no source has credentials: every webhook is refused"))
    # the sandbox stack of `make run` uses the published samples on purpose (it places no real call)
    samples_allowed = target.local and not target.extra.get("real_calls")
    for source, credentials in webhooks.items():
        checks.append(_source_check("webhooks", source, credentials, schema.WEBHOOKS, samples_allowed))
    for source, credentials in documents["crm"].items():
        checks.append(_source_check("crm", source, credentials, schema.CRM))
    return checks, documents


def _source_check(
    kind: str, source: str, credentials: Any, known: dict[str, Any], samples_allowed: bool = False
) -> Check:
    what = f"{kind} secret [{source}]"
    if source not in known:
        return Check(False, what, f"unknown source (known: {', '.join(known)})")
    if not isinstance(credentials, dict):
        return Check(False, what, "must be a JSON object of credentials")
    allowed, alternatives = known[source]
    if missing := schema.missing_keys(credentials, alternatives):
        return Check(False, what, f"lacks {', '.join(missing)}")
    if unknown := schema.unknown_keys(credentials, allowed):
        return Check(False, what, f"unknown key(s) {', '.join(unknown)} (a typo?)")
    published = [key for key, value in credentials.items() if isinstance(value, str) and value in PUBLISHED_PREFIXES]
    if published and not samples_allowed:
        return Check(False, what, f"{', '.join(published)} is the README's public sample: set your own")
    return Check(True, what, f"{', '.join(sorted(k for k in credentials if k in allowed))} set")


def _unpod_get(base_url: str, path: str, headers: dict[str, str], timeout: float) -> tuple[int, Any]:
    response = urllib3.request(
        "GET", base_url.rstrip("/") + path, headers=headers, timeout=timeout, retries=False, redirect=False
    )
    try:
        payload = json.loads(response.data) if response.data else {}
    except ValueError:
        payload = {}
    return response.status, payload


def _items(payload: Any) -> list[dict[str, Any]]:
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def check_unpod(base_url: str, unpod: dict[str, Any], timeout: float = 10.0) -> list[Check]:
    """Token, org handle, space token and pilot, against Unpod's read API."""
    token = str(unpod.get("api_token") or "")
    org = str(unpod.get("org_handle") or "")
    space = str(unpod.get("space_token") or "")
    pilot = str(unpod.get("pilot") or "")
    if not token:
        return [Check(False, "unpod token", "no api_token in the Unpod secret")]
    headers = {"Authorization": f"Token {token}"}
    try:
        status, payload = _unpod_get(base_url, "/organizations/", headers, timeout)
    except urllib3.exceptions.HTTPError as error:
        return [Check(False, "unpod reachable", f"{base_url}: {type(error).__name__}")]
    if status in (401, 403):
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        return [Check(False, "unpod token", f"rejected by Unpod (HTTP {status} {message}): set a valid api_token")]
    if status != 200:
        return [Check(False, "unpod token", f"GET /organizations/ answered HTTP {status}")]
    checks = [Check(True, "unpod token", "accepted")]
    handles = [str(o.get("domain_handle")) for o in _items(payload)]
    if org:
        if org not in handles:
            checks.append(
                Check(
                    False,
                    "unpod org_handle",
                    f"{org!r} is not one of your organizations ({', '.join(handles) or 'none'})",
                )
            )
            return checks
        checks.append(Check(True, "unpod org_handle", org))
        headers["Org-Handle"] = org
    status, payload = _unpod_get(base_url, "/spaces/", headers, timeout)
    tokens = [str(s.get("token")) for s in _items(payload)] if status == 200 else []
    if status != 200:
        checks.append(Check(False, "unpod space_token", f"GET /spaces/ answered HTTP {status}"))
    elif space not in tokens:
        checks.append(
            Check(
                False,
                "unpod space_token",
                f"{_hint(space)} is not a space of this organization ({len(tokens)} space(s))",
            )
        )
    else:
        checks.append(Check(True, "unpod space_token", f"{_hint(space)} found"))
    status, payload = _unpod_get(base_url, "/agents/", headers, timeout)
    agents = {str(a.get("handle")): a for a in _items(payload)} if status == 200 else {}
    if status != 200:
        checks.append(Check(False, "unpod pilot", f"GET /agents/ answered HTTP {status}"))
    elif pilot not in agents:
        checks.append(
            Check(False, "unpod pilot", f"{pilot!r} not found (agents: {', '.join(sorted(agents)) or 'none'})")
        )
    elif str(agents[pilot].get("state", "published")) != "published":
        state = agents[pilot].get("state")
        checks.append(Check(False, "unpod pilot", f"{pilot!r} is {state}, not published: publish it in Unpod"))
    else:
        checks.append(Check(True, "unpod pilot", f"{pilot!r} exists and is published"))
    return checks


def _hint(token: str) -> str:
    return f"{token[:4]}..." if len(token) > 8 else "(short token)"


def send_test_delivery(target: Target, webhooks: dict[str, Any], timeout: float = 10.0) -> Check:
    """A signed test delivery to /webhooks/generic (or pipedrive) that must be answered as a test."""
    from local.signing import basic_authorization, standard_webhook_headers

    body = json.dumps({"test": True, "message": "lead-caller doctor"}).encode()
    headers = {"Content-Type": "application/json", TEST_HEADER: "1"}
    generic = webhooks.get("generic") if isinstance(webhooks.get("generic"), dict) else None
    pipedrive = webhooks.get("pipedrive") if isinstance(webhooks.get("pipedrive"), dict) else None
    if generic and generic.get("signing_secret"):
        source = "generic"
        headers.update(standard_webhook_headers(str(generic["signing_secret"]), body))
    elif generic and generic.get("bearer_token"):
        source = "generic"
        header = str(generic.get("token_header") or "authorization")
        token = str(generic["bearer_token"])
        headers[header] = f"Bearer {token}" if header.lower() == "authorization" else token
    elif pipedrive and pipedrive.get("basic_username"):
        source = "pipedrive"
        headers.update(basic_authorization(str(pipedrive["basic_username"]), str(pipedrive.get("basic_password", ""))))
    else:
        return Check(False, "test delivery", "no generic or pipedrive credentials to sign it with")
    url = target.webhook_url(source)
    try:
        response = urllib3.request("POST", url, body=body, headers=headers, timeout=timeout, retries=False)
    except urllib3.exceptions.HTTPError as error:
        return Check(False, "test delivery", f"{url}: {type(error).__name__}")
    try:
        answer = json.loads(response.data)
    except ValueError:
        answer = {}
    if response.status == 200 and isinstance(answer, dict) and answer.get("test") is True:
        return Check(True, "test delivery", f"{url} authenticated it and queued nothing")
    if response.status == 401:
        return Check(False, "test delivery", f"{url} answered 401: the {source} credentials do not match")
    return Check(False, "test delivery", f"{url} answered HTTP {response.status}, not as a test (an older version?)")


def run(args: argparse.Namespace) -> int:
    """Print every check; exit 1 when one failed."""
    target = resolve_target(args)
    checks, documents = check_secrets(target)
    if documents["unpod"]:
        checks += check_unpod(target.unpod_base_url, documents["unpod"], args.timeout)
    if not args.skip_delivery:
        checks.append(send_test_delivery(target, documents["webhooks"], args.timeout))
    for check in checks:
        print(check.line())
    failed = sum(1 for check in checks if not check.ok)
    print(f"{len(checks) - failed} passed, {failed} failed" + (f" ({target.name})" if target.name else ""))
    return 1 if failed else 0
