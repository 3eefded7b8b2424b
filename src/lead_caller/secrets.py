"""Reads credentials from Secrets Manager through Powertools parameters (cached per container)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities import parameters

from lead_caller.config import ConfigError, Settings
from lead_caller.observability import register_secret_document
from lead_caller.unpod import UnpodCredentials


class SecretError(Exception):
    """A secret is missing, unreadable or incomplete."""


#: the document last registered for masking, per secret id: Powertools returns the same (parsed)
#: object from its cache until it fetches the secret again, so a warm request registers nothing
_registered: dict[str, Any] = {}


def _read_json_secret(secret_id: str, max_age: int, force: bool = False) -> Mapping[str, Any]:
    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=max_age, force_fetch=force)
    except parameters.exceptions.TransformParameterError:
        raise SecretError(f"secret {secret_id} is not a JSON object") from None
    except parameters.exceptions.GetParameterError as error:
        raise SecretError(f"secret {secret_id} could not be read: {type(error.__cause__).__name__}") from None
    if not isinstance(value, dict):
        raise SecretError(f"secret {secret_id} is not a JSON object")
    if _registered.get(secret_id) is not value:  # a fetched (new or rotated) document
        register_secret_document(value)  # masked in every log line and stored text from now on
        _registered[secret_id] = value  # held, so its identity cannot be reused by another object
    return value


def unpod_credentials(settings: Settings, force: bool = False) -> UnpodCredentials:
    """The Unpod api_token, space_token, org_handle and pilot (`force`: past the cache, e.g. after a 401)."""
    value = _read_json_secret(settings.unpod_secret_id, settings.secrets_max_age_seconds, force)
    missing = [key for key in ("api_token", "space_token", "pilot") if not str(value.get(key) or "").strip()]
    if missing:
        raise ConfigError(f"secret {settings.unpod_secret_id} lacks {', '.join(missing)}")
    return UnpodCredentials(
        api_token=str(value["api_token"]).strip(),
        space_token=str(value["space_token"]).strip(),
        org_handle=str(value.get("org_handle") or "").strip() or None,
        pilot=str(value["pilot"]).strip(),
    )


def crm_credentials(settings: Settings) -> Mapping[str, Any]:
    """CRM API credentials keyed by source (e.g. {"hubspot": {"access_token": ...}})."""
    return _read_json_secret(settings.crm_secret_id, settings.secrets_max_age_seconds)


def webhook_credentials(settings: Settings, source: str) -> Mapping[str, Any]:
    """The webhook credential object of one source (empty when none is configured)."""
    value = _read_json_secret(settings.webhook_secret_id, settings.secrets_max_age_seconds)
    credentials = value.get(source) or {}
    return credentials if isinstance(credentials, dict) else {}
