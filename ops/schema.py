"""Which keys each secret (and each source in it) takes, and which it needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: secret -> source (None for the flat Unpod secret) -> (allowed keys, required alternatives)
#: a source is complete when every key of at least one alternative is set
UNPOD: tuple[set[str], list[tuple[str, ...]]] = (
    {"api_token", "space_token", "org_handle", "pilot"},
    [("api_token", "space_token", "pilot")],
)
WEBHOOKS: dict[str, tuple[set[str], list[tuple[str, ...]]]] = {
    "generic": (
        {"signing_secret", "bearer_token", "token_header", "basic_username", "basic_password"},
        [("signing_secret",), ("bearer_token",), ("basic_username", "basic_password")],
    ),
    "hubspot": (
        {"client_secret", "api_key", "api_key_header", "portal_id", "allow_v1"},
        [("client_secret",), ("api_key",)],
    ),
    "pipedrive": ({"basic_username", "basic_password"}, [("basic_username", "basic_password")]),
    "salesforce": ({"organization_ids", "url_token"}, [("organization_ids",)]),
    "zoho": (
        {"token", "token_header", "token_param", "notification_token", "channel_id", "always_fetch"},
        [("token",), ("notification_token", "channel_id")],
    ),
    # not a CRM: the token Unpod's agent webhook sends (docs/outcomes.md)
    "unpod": ({"agent_webhook_token"}, [("agent_webhook_token",)]),
}
CRM: dict[str, tuple[set[str], list[tuple[str, ...]]]] = {
    "hubspot": ({"access_token", "extra_properties"}, [("access_token",)]),
    "pipedrive": ({"api_token", "company_domain"}, [("api_token",)]),
    "zoho": (
        {"client_id", "client_secret", "refresh_token", "dc", "api_version", "extra_fields"},
        [("client_id", "client_secret", "refresh_token")],
    ),
    # write-back only (docs/writeback.md)
    "salesforce": (
        {"client_id", "client_secret", "my_domain_url", "api_version"},
        [("client_id", "client_secret", "my_domain_url")],
    ),
    "outbound_webhook": ({"url", "signing_secret"}, [("url", "signing_secret")]),
}


def _set(value: Any) -> bool:
    return value not in (None, "", [], {})


def missing_keys(values: Mapping[str, Any], alternatives: list[tuple[str, ...]]) -> list[str]:
    """[] when one alternative is complete; else the keys the closest alternative lacks."""
    lacks = [[key for key in keys if not _set(values.get(key))] for keys in alternatives]
    return [] if any(not keys for keys in lacks) else min(lacks, key=len)


def unknown_keys(values: Mapping[str, Any], allowed: set[str]) -> list[str]:
    """Keys the source does not read (a typo, usually)."""
    return sorted(set(values) - allowed)
