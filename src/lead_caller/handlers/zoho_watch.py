"""Zoho watch function: renews the Zoho CRM notification channel every day (channels expire within a week)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lead_caller.config import Settings
from lead_caller.crms.zoho.api import ZohoRecords
from lead_caller.crms.zoho.watch import renew_watch, watch_settings
from lead_caller.observability import logger, tracer
from lead_caller.secrets import crm_credentials, webhook_credentials

settings = Settings.from_env()
client = ZohoRecords(settings.zoho_accounts_base_url, settings.zoho_api_base_url)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001 - Lambda signature
    """Enable or extend the watch; does nothing until the webhook secret names a Zoho channel.

    An exception fails the invocation (the scheduled rule's retries, then the alarm on errors).
    """
    hook = webhook_credentials(settings, "zoho")
    if not hook.get("channel_id"):
        logger.info("no Zoho channel configured: nothing to renew")
        return {"skipped": "no zoho channel_id in the webhook secret"}
    channel_id, token = watch_settings(hook)
    result = renew_watch(
        crm_credentials(settings).get("zoho") or {},
        os.environ.get("ZOHO_NOTIFY_URL", ""),
        channel_id=channel_id,
        token=token,
        now=datetime.now(UTC),
        client=client,
    )
    logger.info("Zoho watch renewed", extra={"channel_id": result.channel_id, "expiry": result.channel_expiry})
    return {
        "channel_id": result.channel_id,
        "channel_expiry": result.channel_expiry,
        "enabled": list(result.enabled),
        "updated": list(result.updated),
    }
