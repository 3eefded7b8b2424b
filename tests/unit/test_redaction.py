"""Secrets masked in one place (observability): the registry fed by secrets.py and the Unpod client,
the log formatter, `redact` for stored texts, and Unpod lookup errors that never quote the space token."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lead_caller import observability
from lead_caller.observability import logger, mask_secrets, redact, register_secret_document, register_secrets
from lead_caller.secrets import webhook_credentials
from lead_caller.unpod import UnpodCredentials, UnpodLookupError
from tests.conftest import fast_client


def test_registered_secrets_are_masked_raw_quoted_and_json_escaped():
    register_secrets("s3cret/Token+value")

    text = "url /spaces/s3cret%2FToken%2Bvalue/runs/ and s3cret/Token+value"

    assert "s3cret" not in mask_secrets(text)
    assert "s3cret" not in redact(text)


def test_only_credential_keys_of_a_secret_document_are_registered():
    register_secret_document(
        {
            "hubspot": {"client_secret": "hs-client-zz91", "api_key_header": "x-api-key-header", "portal_id": 62515},
            "zoho": {"token": "zoho-tok-zz92", "token_header": "x-zoho-token", "channel_id": "1000000068001"},
            "pipedrive": {"basic_username": "pd-user-zz93", "basic_password": "pd-pass-zz94"},
        }
    )
    known = observability.known_secrets()

    assert {"hs-client-zz91", "zoho-tok-zz92", "pd-pass-zz94"} <= known
    assert not {"x-api-key-header", "x-zoho-token", "1000000068001", "pd-user-zz93"} & known


def test_secrets_read_from_secrets_manager_never_reach_a_log_line(settings, captured_logs, aws):
    credentials = webhook_credentials(settings, "generic")

    logger.warning("oops", extra={"detail": f"bearer was {credentials['bearer_token']}"})
    logger.info(f"signing secret {credentials['signing_secret']}")

    logs = captured_logs()
    assert "oops" in logs
    assert credentials["bearer_token"] not in logs
    assert credentials["signing_secret"] not in logs
    assert "[redacted]" in logs


def test_unpod_lookup_errors_do_not_quote_the_space_token(sandbox, credentials):
    rotated = UnpodCredentials("expired-token-zz95", credentials.space_token, credentials.org_handle, "p")
    client = fast_client(sandbox.base_url, max_retries=0)

    with pytest.raises(UnpodLookupError) as raised:
        client.find_task(rotated, "generic-x", datetime.now(UTC), "routing-space-zz96")

    message = str(raised.value)
    assert "answered HTTP" in message
    assert "routing-space-zz96" not in message
    assert credentials.space_token not in json.dumps(message)
    assert "[redacted]" in message


@pytest.mark.parametrize(
    "timestamp",
    ["2026-12-04T21:52:07.123456+00:00", "2026-12-04T21:52:07Z", "2026-12-04 21:52", "2026-12-04T21:52:07+0530"],
)
def test_redact_keeps_timestamps_and_still_masks_the_phone_beside_them(timestamp):
    text = f"runs not paged back to {timestamp} within 5 pages; lead +1 (512) 555-0199"

    assert redact(text) == f"runs not paged back to {timestamp} within 5 pages; lead [phone]"


@pytest.mark.parametrize(
    "number", ["+44 20 7946 0958", "(512) 555-0199", "512.555.0199", "0044 20 7946 0958", "2026-12-0419", "5125550199"]
)
def test_redact_masks_phone_numbers_in_every_common_shape(number):
    masked = redact(f"Unpod refused {number}: invalid")

    assert "[phone]" in masked
    assert not any(character.isdigit() for character in masked)
