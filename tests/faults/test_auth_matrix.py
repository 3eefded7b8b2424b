"""Per-source authentication matrix, through the real intake on moto and the dispatcher to Unpod's sandbox.

Each source gets one authentic delivery of a valid lead, then forged variants:
unsigned, tampered (body changed after signing, or the credential header
altered), wrong secret, stale (signed 10 minutes ago: Standard Webhooks and
HubSpot v3, the schemes with a timestamp), wrong URL (sent to another
source's route; for HubSpot v3 also signed for another URL) and replayed (the
authentic request again, a moment later and 10 minutes later). Figures per
source: forged requests accepted -> 0; calls caused by replays -> 0 (schemes
without a timestamp cannot tell a replay from a redelivery at the door, so a
replay must at least never call the lead again).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lead_caller.dispatcher import QueuedRecord
from lead_caller.sources.base import WebhookRequest
from local.signing import LOCAL_WEBHOOK_SECRETS, basic_authorization, hubspot_v3_headers, standard_webhook_headers
from tests.faults.hostile import BASE_URL, build_intake, drain

EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRETS: dict[str, dict[str, Any]] = {
    **LOCAL_WEBHOOK_SECRETS,
    "salesforce": {**LOCAL_WEBHOOK_SECRETS["salesforce"], "url_token": "sf-url-token-7c1d"},
}
STALE = 600.0  # seconds: beyond every timestamp tolerance (5 minutes)
#: sources whose signature carries a timestamp (Standard Webhooks, HubSpot v3)
TIMESTAMPED = frozenset({"generic", "hubspot"})


def sample_body(name: str) -> bytes:
    return str(json.loads((EVENTS / f"{name}.json").read_text())["body"]).encode()


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A request as sent: body, headers, URL (path + query) and when it arrives."""

    source: str
    body: bytes
    headers: dict[str, str]
    url: str
    received_at: float

    def request(self, route: str | None = None) -> WebhookRequest:
        source = route or self.source
        path, _, query = self.url.removeprefix(BASE_URL).partition("?")
        path = path.replace(f"/webhooks/{self.source}", f"/webhooks/{source}")
        return WebhookRequest(
            source=source,
            method="POST",
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.body,
            public_url=BASE_URL + path + (f"?{query}" if query else ""),
            received_at=self.received_at,
        )


Signer = Callable[[bytes, str, dict[str, Any], float], dict[str, str]]


def _generic(body: bytes, url: str, secrets: dict[str, Any], at: float) -> dict[str, str]:
    del url
    return standard_webhook_headers(secrets["signing_secret"], body, timestamp=at)


def _hubspot(body: bytes, url: str, secrets: dict[str, Any], at: float) -> dict[str, str]:
    return hubspot_v3_headers(secrets["client_secret"], "POST", url, body, int(at * 1000))


def _pipedrive(body: bytes, url: str, secrets: dict[str, Any], at: float) -> dict[str, str]:
    del body, url, at
    return basic_authorization(secrets["basic_username"], secrets["basic_password"])


def _zoho(body: bytes, url: str, secrets: dict[str, Any], at: float) -> dict[str, str]:
    del body, url, at
    return {"x-zoho-token": secrets["token"]}


def _salesforce(body: bytes, url: str, secrets: dict[str, Any], at: float) -> dict[str, str]:
    del body, url, at
    return {}  # the OrganizationId in the body and the url_token in the URL


_person = json.loads(sample_body("pipedrive-v2-person"))
del _person["data"]["org_id"]  # called from the webhook alone (no CRM API in this test)
PIPEDRIVE_PERSON = json.dumps(_person).encode()
GENERIC_LEAD = json.dumps(
    {"id": "auth-matrix-1", "name": "Maria Gonzalez", "phone": "+1 512 555 0142", "company": "Acme"}
).encode()
CASES: dict[str, tuple[bytes, str, Signer, bytes]] = {
    # source: (authentic body, content type, signer, the body tampered)
    "generic": (GENERIC_LEAD, "application/json", _generic, GENERIC_LEAD.replace(b"0142", b"0199")),
    "hubspot": (
        sample_body("hubspot-workflow-custom"),
        "application/json",
        _hubspot,
        sample_body("hubspot-workflow-custom").replace(b"1246978", b"1246979"),
    ),
    "pipedrive": (PIPEDRIVE_PERSON, "application/json", _pipedrive, b""),
    "zoho": (sample_body("zoho-workflow-json"), "application/json", _zoho, b""),
    "salesforce": (
        sample_body("salesforce-outbound-message"),
        "text/xml; charset=utf-8",
        _salesforce,
        sample_body("salesforce-outbound-message").replace(b"00D5f000005KcCnEAK", b"00D5f000005KcCoEAK"),
    ),
}
WRONG = {
    "generic": {"signing_secret": "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="},
    "hubspot": {"client_secret": "wrong-client-secret"},
    "pipedrive": {"basic_username": SECRETS["pipedrive"]["basic_username"], "basic_password": "wrong-password"},
    "zoho": {"token": "zwh_wrong0000000000000000000000000"},
}


def url_of(source: str, token: str | None = None) -> str:
    token = SECRETS["salesforce"]["url_token"] if token is None and source == "salesforce" else token
    return f"{BASE_URL}/webhooks/{source}" + (f"?token={token}" if token else "")


def deliveries(source: str, now: float) -> dict[str, list[Delivery]]:
    """The authentic delivery and every forged variant, by cell of the matrix."""
    body, content_type, sign, tampered = CASES[source]
    secrets = SECRETS[source]
    url = url_of(source)

    def signed(
        payload: bytes, at: float, with_secrets: dict[str, Any] = secrets, signed_url: str = url
    ) -> dict[str, str]:
        return {"content-type": content_type, **sign(payload, signed_url, with_secrets, at)}

    authentic = Delivery(source, body, signed(body, now), url, now)
    cells: dict[str, list[Delivery]] = {"authentic": [authentic]}
    cells["unsigned"] = [Delivery(source, body, {"content-type": content_type}, url_of(source, ""), now)]
    if source == "salesforce":  # unsigned = no url_token; wrong secret = another url_token
        cells["wrong secret"] = [Delivery(source, body, signed(body, now), url_of(source, "sf-url-token-0000"), now)]
    else:
        cells["wrong secret"] = [Delivery(source, body, signed(body, now, WRONG[source]), url, now)]
    if tampered:
        cells["tampered"] = [Delivery(source, tampered, signed(body, now), url, now)]
    else:  # credentials in a header: tampering means a header altered in transit
        forged = {
            k: (v[:-2] + "xx" if k in ("authorization", "x-zoho-token") else v) for k, v in signed(body, now).items()
        }
        cells["tampered"] = [Delivery(source, body, forged, url, now)]
    replays = [dataclasses.replace(authentic, received_at=now + 1)]
    stale = Delivery(source, body, signed(body, now - STALE), url, now)
    # Only signatures with a timestamp can refuse a stale request; for the others it is a replay.
    cells["stale"] = [stale] if source in TIMESTAMPED else []
    replays += [] if source in TIMESTAMPED else [stale, dataclasses.replace(authentic, received_at=now + STALE)]
    other = "generic" if source != "generic" else "hubspot"
    cells["wrong URL"] = [dataclasses.replace(authentic, source=other, url=url_of(other))]  # another source's route
    if source == "hubspot":  # v3 signs the URL
        elsewhere = f"https://elsewhere.example/webhooks/{source}"
        cells["wrong URL"].append(Delivery(source, body, signed(body, now, signed_url=elsewhere), url, now))
    cells["replayed"] = replays
    return cells


@pytest.mark.parametrize("source", list(CASES))
def test_forged_requests_are_refused_and_replays_never_call_again(source, settings, dispatcher, sandbox, record_figure):
    intake = build_intake(settings)
    intake.credentials = lambda name: SECRETS.get(name, {})
    now = time.time()
    cells = deliveries(source, now)

    [authentic] = cells.pop("authentic")
    first = intake.handle(authentic.request())
    assert first.status in (200, 202), first.body
    list(_dispatch_all(settings, dispatcher))
    called = len(sandbox.created_tasks)
    assert called >= 1  # the authentic leads are called

    assert all(cells[cell] for cell in ("unsigned", "tampered", "wrong secret", "wrong URL", "replayed"))
    accepted: list[str] = []
    for cell in ("unsigned", "tampered", "wrong secret", "stale", "wrong URL"):
        for delivery in cells[cell]:
            reply = intake.handle(delivery.request())
            if reply.status < 300:
                accepted.append(f"{cell}: {reply.status}")
    queued_by_forgeries = sum(1 for _ in drain(settings))
    for delivery in cells["replayed"]:
        intake.handle(delivery.request())
    calls_before = len(sandbox.created_tasks)
    list(_dispatch_all(settings, dispatcher))
    replay_calls = len(sandbox.created_tasks) - calls_before

    forged = len(accepted) + queued_by_forgeries
    figures = [
        record_figure(f"auth {source}", "forged requests accepted", forged, "0", forged == 0),
        record_figure(f"auth {source}", "calls caused by replays", replay_calls, "0", replay_calls == 0),
    ]
    assert all(figure.on_target for figure in figures), (accepted, queued_by_forgeries, replay_calls)
    assert len(sandbox.created_tasks) == called


def _dispatch_all(settings: Any, dispatcher: Any) -> Any:
    """Dispatch every queued message (each once); yields the message bodies."""
    for body in drain(settings):
        dispatcher.dispatch([QueuedRecord(str(uuid.uuid4()), body, 1)])
        yield body
