"""Powertools Logger, Metrics and Tracer shared by both functions.

The service name, log level and metrics namespace come from the POWERTOOLS_*
environment variables that the template sets. Nothing personal is ever logged:
modules log lead ids, counts and error kinds, never documents, phone numbers,
emails or tokens; `redact` is a last line of defence for free text (e.g. an
error message quoted from Unpod).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="lead-caller")
metrics = Metrics(namespace="LeadCaller", service="lead-caller")

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class HandlerTracer(Protocol):
    """The part of Powertools' Tracer the handlers use."""

    def capture_lambda_handler(self, lambda_handler: _Handler) -> _Handler:
        """Trace a Lambda handler."""
        ...


class _NoTracer:
    """Tracing SDK off: handlers run undecorated.

    Why not Powertools' own `Tracer(disabled=True)`: even disabled, it imports the
    X-Ray SDK, whose global recorder builds a sampler with botocore clients
    (~130 ms of every cold start, measured with `make bench`). Lambda's active
    tracing (template `Tracing: Active`) still records each invocation's segment,
    including the init phase, without the SDK in the function.
    """

    def capture_lambda_handler(self, lambda_handler: _Handler) -> _Handler:
        """Return the handler unchanged."""
        return lambda_handler


def tracing_sdk_enabled(env: Any = None) -> bool:
    """True when the X-Ray SDK should add subsegments (POWERTOOLS_TRACE_DISABLED not true, in Lambda)."""
    env = os.environ if env is None else env
    disabled = str(env.get("POWERTOOLS_TRACE_DISABLED", "false")).strip().lower() in ("1", "true", "yes", "on", "y")
    in_lambda = bool(env.get("LAMBDA_TASK_ROOT")) and not env.get("AWS_SAM_LOCAL")
    return in_lambda and not disabled


def _tracer() -> HandlerTracer:
    if not tracing_sdk_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer  # imports the X-Ray SDK: only when asked for

    return cast(HandlerTracer, Tracer(service="lead-caller"))


tracer = _tracer()

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
