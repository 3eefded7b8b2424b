"""Powertools Logger, Metrics and Tracer shared by both functions.

The service name, log level and metrics namespace come from the POWERTOOLS_*
environment variables that the template sets. Nothing personal is ever logged:
modules log lead ids, counts and error kinds, never documents, phone numbers,
emails or tokens; `redact` is a last line of defence for free text (e.g. an
error message quoted from Unpod).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="lead-caller")
metrics = Metrics(namespace="LeadCaller", service="lead-caller")
tracer = Tracer(service="lead-caller")

_EMAIL = re.compile(r"[^\s@\"']+@[^\s@\"']+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_TOKEN = re.compile(r"(?i)(token|bearer|whsec_|secret)[\s:=\"']*[A-Za-z0-9_\-./+=]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values, emails, phone-like digit runs and token-looking strings in free text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _EMAIL.sub("[email]", text)
    text = _TOKEN.sub(lambda match: f"{match.group(1)} [redacted]", text)
    return _PHONE.sub("[phone]", text)
