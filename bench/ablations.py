"""What each remaining warm-ingest lever would buy, and what it trades: `python -m bench.ablations`.

`make bench`'s warm-ingest figure (one signed lead, the webhook handler in-process against the
embedded AWS, vs a bare SendMessage) is measured here with each variant below applied to the
handler by patching, interleaved with the handler as shipped and the bare send (R x N
invocations, the median of each repetition, the ratio of the medians as `make bench` takes it).

A variant is a measurement, never shipped: each one either gives up something a user would notice
(its "trade" column) or changes nothing this figure shows. They are the levers left to the
project's owner in docs/performance.md ("What is not met"); the upper bounds say what the metrics
line and phone validation cost in all. Nothing is asserted: the figure moves by +-0.02x from run to
run of unchanged code, so compare the rows of one run, and runs with one another. The patched
rows read ~0.01x lower than `make bench`'s own figure: a lever worth shipping is confirmed in the
code, with `bench.run.warm_ingest` alternated against a checkout without it (docs/performance.md
does so for the two product-neutral ones).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from unittest import mock

from bench.run import Harness, lead_body

#: the delivery's metrics, as intake.Intake.accept adds them (name -> the count it is read from)
DELIVERY_METRICS = {
    "LeadsReceived": ("queued", "duplicate", "rejected"),
    "LeadsAccepted": ("queued",),
    "LeadsDuplicate": ("duplicate",),
    "LeadsRejected": ("rejected",),
}


@dataclass(frozen=True)
class Variant:
    """A change to the handler, applied for as long as `applied` is entered."""

    name: str
    trade: str
    applied: Callable[[Harness], contextlib.AbstractContextManager[Any]]


def _delivery_line(fields: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The delivery's metrics (in Powertools' stored shape) and metadata from annotate_metrics_line's
    fields, registered secrets masked as it masks them (the bench's lead is valid: no
    `LeadsRejected_<kind>` metric)."""
    from lead_caller.observability import _masked, known_secrets

    metrics = {
        name: {"Unit": "Count", "StorageResolution": 60, "Value": [float(sum(fields[key] for key in keys))]}
        for name, keys in DELIVERY_METRICS.items()
    }
    masking = bool(known_secrets())
    return metrics, {key: _masked(value) if masking else value for key, value in fields.items() if value is not None}


def _ignored(**_: Any) -> None:
    """add_metric, doing nothing."""


@contextlib.contextmanager
def _without_powertools_metrics(harness: Harness, write_line: Callable[[Mapping[str, Any]], None]) -> Iterator[None]:
    """The handler without `log_metrics` and `add_metric`: `write_line` writes the delivery's line
    (a metric added elsewhere, e.g. on a refused request, is still flushed)."""
    import lead_caller.intake as intake_module
    from lead_caller.observability import logger, metrics

    innermost = inspect.unwrap(harness.webhook.handler)

    def flushing_what_is_pending(event: dict[str, Any], context: Any) -> Any:
        try:
            return innermost(event, context)
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()

    handler = logger.inject_lambda_context(flushing_what_is_pending)
    with (
        mock.patch.object(harness.webhook, "handler", handler),
        mock.patch.object(intake_module, "annotate_metrics_line", write_line),
        mock.patch.object(metrics, "add_metric", _ignored),  # a plain function: a Mock's call costs ~10 us
    ):
        yield


def _line_by_hand(harness: Harness) -> contextlib.AbstractContextManager[Any]:
    def write(fields: Mapping[str, Any]) -> None:
        metrics, metadata = _delivery_line(fields)
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "LeadCaller",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                    }
                ],
            },
            "service": "lead-caller",
            **metadata,
            **{name: metric["Value"] for name, metric in metrics.items()},
        }
        print(json.dumps(line, separators=(",", ":")))

    return _without_powertools_metrics(harness, write)


def _line_by_powertools_serializer(harness: Harness) -> contextlib.AbstractContextManager[Any]:
    from lead_caller.observability import metrics

    def write(fields: Mapping[str, Any]) -> None:
        delivery, metadata = _delivery_line(fields)
        line = metrics.serialize_metric_set(metrics=delivery, dimensions={"service": "lead-caller"}, metadata=metadata)
        print(json.dumps(line, separators=(",", ":")))

    return _without_powertools_metrics(harness, write)


@contextlib.contextmanager
def _line_by_powertools_serializer_as_a_product(_harness: Harness) -> Iterator[None]:
    """The same line through Powertools' serializer, with what a shipped version must keep:
    `log_metrics` on the handler (it flushes what a refused request adds) and Powertools'
    POWERTOOLS_METRICS_DISABLED / POWERTOOLS_DEV switch."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    import lead_caller.intake as intake_module
    from lead_caller.observability import metrics

    def write(fields: Mapping[str, Any]) -> None:
        if is_metrics_disabled():
            return
        delivery, metadata = _delivery_line(fields)
        line = metrics.serialize_metric_set(metrics=delivery, dimensions=metrics.dimension_set, metadata=metadata)
        print(json.dumps(line, separators=(",", ":")))

    with (
        mock.patch.object(intake_module, "annotate_metrics_line", write),
        mock.patch.object(metrics, "add_metric", _ignored),
    ):
        yield


def _no_metrics_line(harness: Harness) -> contextlib.AbstractContextManager[Any]:
    return _without_powertools_metrics(harness, lambda _fields: None)


@contextlib.contextmanager
def _checked_once_provider(_harness: Harness) -> Iterator[None]:
    """Powertools' EMF provider subclassed (its documented extension point) so that a
    (name, unit, resolution) it accepted once is stored directly on later additions."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    from lead_caller.observability import metrics

    checked: dict[tuple[Any, ...], tuple[str, str, int]] = {}

    class CheckedOnce(AmazonCloudWatchEMFProvider):
        def add_metric(self, name: str, unit: Any, value: float, resolution: Any = 60) -> None:
            known = checked.get((name, unit, resolution))
            if known is not None and value.__class__ in (int, float) and len(self.metric_set) < 99:
                stored = self.metric_set.setdefault(known[0], defaultdict(list))
                if len(stored["Value"]) < 99:
                    stored["Unit"], stored["StorageResolution"] = known[1], known[2]
                    stored["Value"].append(float(value))
                    return
            super().add_metric(name=name, unit=unit, value=value, resolution=resolution)
            if (stored := self.metric_set.get(name.strip())) is not None:
                checked[(name, unit, resolution)] = (name.strip(), stored["Unit"], stored["StorageResolution"])

    provider = CheckedOnce(
        metric_set=metrics.metric_set,
        dimension_set=metrics.dimension_set,
        metadata_set=metrics.metadata_set,
        default_dimensions=metrics.default_dimensions,
        namespace="LeadCaller",
        service="lead-caller",
    )
    with mock.patch.object(metrics, "provider", provider):
        yield


def _no_phone_validation(_harness: Harness) -> contextlib.AbstractContextManager[Any]:
    import lead_caller.contacts as contacts

    def digits_only(raw: str | None, _region: str) -> str | None:
        digits = "".join(character for character in str(raw or "") if character.isdigit())
        return f"+{digits}" if digits else None

    return mock.patch.object(contacts, "normalise_phone", digits_only)


VARIANTS = (
    Variant(
        "the delivery's line written by hand (json.dumps)",
        "Powertools Metrics off the webhook's happy path: the EMF shape kept by lead-caller",
        _line_by_hand,
    ),
    Variant(
        "the line through Powertools' serializer, no add_metric nor log_metrics",
        "Powertools' per-metric checks and its decorator off the happy path",
        _line_by_powertools_serializer,
    ),
    Variant(
        "the same, log_metrics and POWERTOOLS_METRICS_DISABLED kept",
        "none a user sees: lead-caller builds Powertools' stored metric shape itself",
        _line_by_powertools_serializer_as_a_product,
    ),
    Variant(
        "Powertools' EMF provider checking each metric once (subclass)",
        "a subclass of Powertools' provider to keep up with its releases",
        _checked_once_provider,
    ),
    Variant(
        "upper bound: no metrics line at all",
        "no per-delivery line, no intake metrics on the dashboard",
        _no_metrics_line,
    ),
    Variant(
        "upper bound: phone numbers not validated in the webhook",
        "an invalid number is queued; the sender is not told (422) and the dispatcher must reject it",
        _no_phone_validation,
    ),
)

#: the variants that write the delivery's line themselves (checked against the shipped line)
LINE_VARIANTS = {variant.name: variant for variant in VARIANTS[:3]}


def written_line(harness: Harness, variant: Variant | None) -> dict[str, Any]:
    """The JSON line one signed lead's invocation writes, without what differs per request."""
    stream = io.StringIO()
    with variant.applied(harness) if variant else contextlib.nullcontext(), contextlib.redirect_stdout(stream):
        harness.invoke(harness.event(lead_body(0)), harness.context())
    [line] = [json.loads(text) for text in stream.getvalue().splitlines() if text.startswith('{"_aws"')]
    assert isinstance(line, dict)
    for key in ("lead_ids", "function_request_id", "correlation_id"):
        line.pop(key)
    line["_aws"].pop("Timestamp")
    return line


def measure(harness: Harness, reps: int, invocations: int) -> dict[str, list[float]]:
    """Per-repetition median ms of the bare send, the handler as shipped and each variant, interleaved
    (a variant is applied around a repetition's invocations, outside their timers)."""
    import boto3

    sqs = boto3.client("sqs")
    queue_url = harness.resources.queue_url

    def bare(count: int) -> list[float]:
        taken = []
        for _ in range(count):
            body = json.dumps(lead_body(0))
            started = time.perf_counter()
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
            taken.append((time.perf_counter() - started) * 1000)
        return taken

    def handler(variant: Variant | None) -> Callable[[int], list[float]]:
        def invocations_of(count: int) -> list[float]:
            taken = []
            with variant.applied(harness) if variant else contextlib.nullcontext():
                for _ in range(count):
                    event, context = harness.event(lead_body(0)), harness.context()
                    started = time.perf_counter()
                    harness.invoke(event, context)
                    taken.append((time.perf_counter() - started) * 1000)
            return taken

        return invocations_of

    runs: dict[str, Callable[[int], list[float]]] = {"bare": bare, "as shipped": handler(None)}
    runs.update({variant.name: handler(variant) for variant in VARIANTS})
    for run in runs.values():  # warm: clients, caches, pools
        run(3)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            harness.discard()
            samples[name].append(statistics.median(run(invocations)))
    harness.discard()
    return samples


def main(argv: list[str] | None = None) -> int:
    """Print the table (stdout) of one run (`--quick`: a smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 x 5 invocations: checks the script, measures nothing")
    parser.add_argument("--reps", type=int, default=15, help="repetitions (default 15)")
    args = parser.parse_args(argv)
    reps, invocations = (2, 5) if args.quick else (args.reps, 30)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")  # the template's default
    report = sys.stdout
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), Harness(0.0, embedded_server=True) as h:
        shipped_line = written_line(h, None)
        lines = [name for name, variant in LINE_VARIANTS.items() if written_line(h, variant) != shipped_line]
        samples = measure(h, reps, invocations)
    print(
        "the lines written by hand and through Powertools' serializer (three variants) are the shipped line: "
        + ("yes" if not lines else f"NO ({', '.join(lines)})"),
        file=report,
    )
    bare = statistics.median(samples.pop("bare"))
    shipped = statistics.median(samples["as shipped"]) / bare
    trades = {variant.name: variant.trade for variant in VARIANTS}
    print(f"bare SendMessage: {bare:.3f} ms (median of {reps} x {invocations})", file=report)
    print("| warm ingest, one signed lead | trade | ms (median) | ratio | vs as shipped |", file=report)
    print("|---|---|---|---|---|", file=report)
    for name, values in samples.items():
        ratio = statistics.median(values) / bare
        change = "" if name == "as shipped" else f"{ratio - shipped:+.3f}x"
        print(
            f"| {name} | {trades.get(name, '')} | {statistics.median(values):.3f} | {ratio:.3f}x | {change} |",
            file=report,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
