"""Keeps the Zoho Notification API channel alive: Zoho ends a watch after at most a week.

A scheduled function calls `renew_watch` (daily is plenty): it asks Zoho for the
channel's watches (`GET /crm/{v}/actions/watch?channel_id=...`), then updates
the modules already watched (`PATCH`) and enables the others (`POST`) with

    {"watch": [{"channel_id", "events": ["Leads.create", "Contacts.create"],
                "channel_expiry": now + 6 days 23 hours, "token", "notify_url",
                "return_affected_field_values": true}]}

(Zoho silently falls back to a one-hour expiry when asked for more than a week:
`WATCH_LIFETIME` stays under it). `token` is the webhook secret's
`notification_token` (at most 50 characters), `channel_id` its `channel_id`:
what `crms/zoho/webhook.py` verifies on every callback.

Failures raise, so the scheduled invocation fails and the scheduler retries:
`WatchPermanentError` when retrying cannot help (bad configuration, refused
grant, Zoho's 4xx such as INVALID_DATA or a missing scope), `WatchTransientError`
for 429/5xx/network trouble. Tokens are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

from lead_caller.crms.zoho.api import ZohoAnswer, ZohoAuthError, ZohoConfig, ZohoCredentialsError, ZohoRecords
from lead_caller.crms.zoho.webhook import LEAD_MODULES, MAX_NOTIFICATION_TOKEN_LENGTH, record_id_of
from lead_caller.observability import logger

WATCH_RESOURCE = "actions/watch"
DEFAULT_EVENTS: tuple[str, ...] = tuple(f"{module}.create" for module in LEAD_MODULES)
#: how long a renewed channel lives: under Zoho's one-week maximum
WATCH_LIFETIME = timedelta(days=6, hours=23)
MAX_WATCH_LIFETIME = timedelta(days=7)
#: an expiry Zoho reports this much earlier than asked means it ignored ours
_SHORTENED = timedelta(hours=1)


class WatchError(Exception):
    """The channel could not be renewed."""

    permanent: bool = False


class WatchPermanentError(WatchError):
    """Retrying cannot help: configuration, credentials or Zoho's refusal of the request."""

    permanent = True


class WatchTransientError(WatchError):
    """Zoho was unreachable, throttled or failing: try again later."""


@dataclass(frozen=True)
class WatchResult:
    """What `renew_watch` did."""

    channel_id: str
    channel_expiry: str
    enabled: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    #: module -> the expiry Zoho reported
    expiries: Mapping[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """ "enabled", "updated" or "enabled+updated"."""
        return "+".join(name for name, events in (("enabled", self.enabled), ("updated", self.updated)) if events)


def channel_expiry(now: datetime, lifetime: timedelta = WATCH_LIFETIME) -> str:
    """The ISO-8601 expiry Zoho expects ("2026-01-07T23:00:00+00:00"); a naive `now` is UTC."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return (moment.astimezone(UTC) + lifetime).replace(microsecond=0).isoformat()


def watch_settings(webhook_credentials: Mapping[str, Any]) -> tuple[str, str]:
    """(channel_id, notification_token) of the webhook secret's `zoho` object; WatchPermanentError if unusable."""
    channel_id = record_id_of(webhook_credentials.get("channel_id"))
    token = webhook_credentials.get("notification_token")
    if channel_id is None:
        raise WatchPermanentError('the webhook secret has no "zoho": {"channel_id": "<digits>"}')
    if not isinstance(token, str) or not token.strip():
        raise WatchPermanentError('the webhook secret has no "zoho": {"notification_token": "..."}')
    return channel_id, token.strip()


def renew_watch(
    credentials: Mapping[str, Any],
    notify_url: str,
    *,
    channel_id: str,
    token: str,
    now: datetime,
    client: ZohoRecords,
    events: Sequence[str] = DEFAULT_EVENTS,
    lifetime: timedelta = WATCH_LIFETIME,
) -> WatchResult:
    """Enable or extend the channel's watch of `events` until now + `lifetime`.

    `credentials`: the CRM secret's `zoho` object (OAuth); `channel_id`/`token`: the
    webhook secret's `zoho.channel_id`/`notification_token`; `notify_url`: the
    public `.../webhooks/zoho` URL. Raises WatchPermanentError / WatchTransientError.
    """
    config = _config(credentials)
    channel = _check(notify_url, channel_id, token, events, lifetime)
    expiry = channel_expiry(now, lifetime)
    watched = _watched_modules(client, config, channel)
    to_update = tuple(event for event in events if event.split(".", 1)[0] in watched)
    to_enable = tuple(event for event in events if event.split(".", 1)[0] not in watched)
    entry = {
        "channel_id": channel,
        "channel_expiry": expiry,
        "token": token,
        "notify_url": notify_url,
        "return_affected_field_values": True,
    }
    expiries: dict[str, str] = {}
    for method, chosen in (("PATCH", to_update), ("POST", to_enable)):
        if chosen:
            answer = _call(client, config, method, body={"watch": [{**entry, "events": list(chosen)}]})
            expiries.update(_accepted(answer, method))
    _warn_if_shortened(expiries, now + lifetime)
    result = WatchResult(channel, expiry, enabled=to_enable, updated=to_update, expiries=expiries)
    logger.info(
        "Zoho watch renewed",
        extra={"channel_id": channel, "action": result.action, "channel_expiry": expiry, "events": list(events)},
    )
    return result


def _config(credentials: Mapping[str, Any]) -> ZohoConfig:
    try:
        return ZohoConfig.from_credentials(credentials)
    except ZohoCredentialsError as error:
        raise WatchPermanentError(str(error)) from None


def _check(notify_url: str, channel_id: str, token: str, events: Sequence[str], lifetime: timedelta) -> str:
    """Validate the watch's settings before asking Zoho; returns the channel id as text."""
    channel = record_id_of(channel_id)
    if channel is None:
        raise WatchPermanentError("channel_id must be a number (Zoho's channel ids are longs)")
    if not token or len(token) > MAX_NOTIFICATION_TOKEN_LENGTH:
        raise WatchPermanentError(f"the notification token must be 1-{MAX_NOTIFICATION_TOKEN_LENGTH} characters")
    url = urlsplit(notify_url or "")
    if url.scheme not in ("https", "http") or not url.netloc:
        raise WatchPermanentError("notify_url must be an absolute URL, e.g. https://<api>/webhooks/zoho")
    if not events or any(event.split(".", 1)[0] not in LEAD_MODULES for event in events):
        raise WatchPermanentError(f"events must name the modules {', '.join(LEAD_MODULES)}")
    if not timedelta(0) < lifetime <= MAX_WATCH_LIFETIME:
        raise WatchPermanentError("the channel lifetime must be at most one week (Zoho's limit)")
    return channel


def _call(client: ZohoRecords, config: ZohoConfig, method: str, **options: Any) -> ZohoAnswer:
    try:
        return client.request(config, method, WATCH_RESOURCE, **options)
    except ZohoAuthError as error:
        kind = WatchPermanentError if error.outcome == "permanent" else WatchTransientError
        raise kind(error.message) from None


def _watched_modules(client: ZohoRecords, config: ZohoConfig, channel: str) -> set[str]:
    """The modules this channel already watches (none when Zoho answers 204)."""
    answer = _call(client, config, "GET", query={"channel_id": channel})
    if answer.status == 204:
        return set()
    if answer.status != 200 or not isinstance(answer.payload, dict):
        _raise(answer, "reading the channel's watches")
    watches = answer.payload.get("watch")
    modules: set[str] = set()
    for item in watches if isinstance(watches, list) else []:
        if isinstance(item, dict) and str(item.get("channel_id")) == channel:
            modules.add(str(item.get("resource_name") or ""))
            modules.update(str(event).split(".", 1)[0] for event in item.get("events") or [])
    return modules


def _accepted(answer: ZohoAnswer, method: str) -> dict[str, str]:
    """module -> expiry of a successful enable/update answer; raises otherwise."""
    payload = answer.payload
    items = payload.get("watch") if isinstance(payload, dict) else None
    if answer.status not in (200, 201, 202) or not isinstance(items, list) or not items:
        _raise(answer, f"{method} actions/watch")
    expiries: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or str(item.get("status", "")).lower() != "success":
            code = item.get("code") if isinstance(item, dict) else None
            message = item.get("message") if isinstance(item, dict) else None
            raise WatchPermanentError(f"Zoho refused {method} actions/watch: {code}: {str(message or '')[:200]}")
        details = item.get("details")
        events = details.get("events") if isinstance(details, dict) else None
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and event.get("resource_name"):
                expiries[str(event["resource_name"])] = str(event.get("channel_expiry") or "")
    return expiries


def _raise(answer: ZohoAnswer, doing: str) -> NoReturn:
    """Raise the error matching a failed answer."""
    status = answer.status
    logger.warning("Zoho watch request failed", extra={"http_status": status, "code": answer.code, "doing": doing})
    if status is None or status == 429 or status >= 500:
        raise WatchTransientError(f"{doing}: {answer.message}")
    raise WatchPermanentError(f"{doing}: {answer.message}")


def _warn_if_shortened(expiries: Mapping[str, str], wanted: datetime) -> None:
    """Log when Zoho reports an expiry well before the one asked for (it fell back to one hour)."""
    target = wanted if wanted.tzinfo is not None else wanted.replace(tzinfo=UTC)
    for module, text in expiries.items():
        try:
            reported = datetime.fromisoformat(text)
        except ValueError:
            continue
        if reported.tzinfo is None:
            reported = reported.replace(tzinfo=UTC)
        if reported < target - _SHORTENED:
            logger.warning("Zoho shortened the channel expiry", extra={"zoho_module": module, "channel_expiry": text})
