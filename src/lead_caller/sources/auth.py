"""Authentication schemes shared by sources: Standard Webhooks signatures, bearer/header tokens, Basic.

All comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from lead_caller.sources.base import AuthenticationError, text_bytes


def verify_standard_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a Standard Webhooks signature (`webhook-id/-timestamp/-signature`, 5-minute tolerance).

    Uses the reference library; its other failure modes (malformed header,
    bad base64, non-UTF-8 body) are turned into AuthenticationError too.
    """
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as error:
        raise AuthenticationError(f"signature: {error}") from None
    except EmptyWebhookSecretError:
        raise AuthenticationError("signature: the configured signing secret is empty") from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("signature: malformed webhook-signature header or body") from None


def verify_token(expected: str, headers: Mapping[str, str], header: str = "authorization") -> None:
    """Check a static token sent as `Authorization: Bearer <token>` or in a custom header."""
    presented = headers.get(header.lower(), "")
    if header.lower() == "authorization":
        scheme, _, value = presented.partition(" ")
        presented = value.strip() if scheme.lower() == "bearer" else ""
    if not presented or not hmac.compare_digest(text_bytes(presented), text_bytes(expected)):
        raise AuthenticationError("token: missing or wrong")


def verify_basic(username: str, password: str, headers: Mapping[str, str]) -> None:
    """Check HTTP Basic credentials (split on the first colon, constant-time)."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationError("basic: missing credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError("basic: malformed credentials") from None
    user, sep, secret = decoded.partition(b":")
    ok_user = hmac.compare_digest(user, text_bytes(username))
    ok_password = hmac.compare_digest(secret, text_bytes(password))
    if not (sep and ok_user and ok_password):
        raise AuthenticationError("basic: wrong credentials")
