"""Powertools Logger, Metrics and Tracer shared by both functions.

The service name, log level and metrics namespace come from the POWERTOOLS_*
environment variables that the template sets. Nothing personal is ever logged:
modules log lead ids, counts and error kinds, never documents, phone numbers,
emails or tokens; `redact` is a last line of defence for free text (e.g. an
error message quoted from Unpod).

**Secrets, one place.** Every credential the functions use is registered here
when it is read (`secrets.py` for the Secrets Manager documents, the Unpod client
for the space token a request goes to, routing overrides included). Two things
then hold for every Unpod and CRM request, whatever module builds the text:
each log line is masked by the logger's formatter (`RedactingFormatter`) before
it is written, and `redact` masks them in anything stored (a lead's `reason`,
`unpod_message`). Values are matched as they are, URL-quoted and JSON-escaped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

#: shortest value treated as a secret: shorter ones (ids, flags) would mask ordinary text
MIN_SECRET_LENGTH = 6
#: keys of a secret document whose values are credentials (names of headers and parameters are not)
_SECRET_KEY = re.compile(r"(?i)(token|secret|password|passwd|api_?key|org_handle|client_id|credential|signing)")
_NOT_SECRET_KEY = re.compile(r"(?i)(_header|_param|_name)$")
_MASK = "[redacted]"

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
#: the same values, longest first (the order they are masked in), sorted once per registration
_longest_first: tuple[str, ...] = ()


def _forms(value: str) -> set[str]:
    """A secret as it may appear in text: raw, URL-quoted and JSON-escaped."""
    return {value, quote(value, safe=""), quote(value), json.dumps(value)[1:-1]}


def register_secrets(*values: Any) -> None:
    """Remember credential values so that logs and stored texts never show them."""
    global _secrets, _longest_first
    fresh = {form for value in values if isinstance(value, str) for form in _forms(value.strip())}
    fresh = {form for form in fresh if len(form) >= MIN_SECRET_LENGTH}
    if fresh <= _secrets:
        return
    with _lock:
        _secrets = _secrets | fresh
        _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def register_secret_document(document: Any, key: str = "") -> None:
    """Register every credential of a secret document (values under token/secret/password/... keys)."""
    if isinstance(document, Mapping):
        for name, value in document.items():
            register_secret_document(value, str(name))
    elif isinstance(document, list):
        for item in document:
            register_secret_document(item, key)
    elif isinstance(document, str) and _SECRET_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
        register_secrets(document)


def known_secrets() -> frozenset[str]:
    """The registered secret values (all their forms)."""
    return _secrets


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every registered (and given) secret value in `text`, longest first."""
    ordered: Iterable[str] = _longest_first  # every log line: no set union nor sort
    given = {form for secret in secrets if secret for form in _forms(secret)}
    if given - _secrets:
        ordered = sorted(_secrets | given, key=len, reverse=True)
    for value in ordered:
        if value and value in text:
            text = text.replace(value, _MASK)
    return text


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with every registered secret masked in the finished line."""

    def serialize(self, log: Any) -> str:
        """The JSON log line without secrets."""
        return mask_secrets(super().serialize(log))


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message and string extras, before any handler sees it
    (Powertools' own, the Lambda runtime's, a test's capture)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask in place; never drops a record."""
        if not _secrets:
            return True
        if record.args:
            record.msg, record.args = record.getMessage(), None
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, (str, list, dict)):
                record.__dict__[key] = _masked(value)
        return True


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def annotate_metrics_line(fields: Mapping[str, Any]) -> None:
    """Write `fields` into this invocation's metrics line (Powertools metadata: searchable in Logs
    Insights, never a metric), registered secrets masked as in a log record's extras. None is left out."""
    # `metadata_set` itself: `add_metadata` formats each value into a debug message first, one call per key
    metadata = metrics.metadata_set
    for key, value in fields.items():
        if value is not None:
            metadata[key] = _masked(value) if _secrets else value


logger = Logger(service="lead-caller", logger_formatter=RedactingFormatter())
logging.getLogger(logger.name).addFilter(RedactingFilter())
metrics = Metrics(namespace="LeadCaller", service="lead-caller")
# Powertools warns (to stderr, once per container) when an invocation adds no metric. Here that is
# expected: a 404, a refused payload, `lead-caller doctor`'s test delivery, a batch with nothing to
# do. The filter is the one Powertools' metrics docs give for this case.
warnings.filterwarnings("ignore", "No application metrics to publish*")

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
_PHONE = r"\+?\d[\d\s().-]{6,}\d"
#: an ISO 8601 timestamp (date and time, e.g. `since.isoformat()` in an error): its digit run is not
#: a phone number. A date alone stays masked: "2026-12-04" is also how some numbers are written.
_TIMESTAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
_PHONE_OR_TIMESTAMP = re.compile(f"(?P<timestamp>{_TIMESTAMP})|{_PHONE}")
_TOKEN = re.compile(r"(?i)(token|bearer|whsec_|secret)[\s:=\"']*[A-Za-z0-9_\-./+=]{6,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask registered and given secret values, emails, phone-like digit runs and token-looking strings."""
    text = mask_secrets(text, secrets)
    text = _EMAIL.sub("[email]", text)
    text = _TOKEN.sub(lambda match: f"{match.group(1)} [redacted]", text)
    return _PHONE_OR_TIMESTAMP.sub(lambda match: match.group("timestamp") or "[phone]", text)
