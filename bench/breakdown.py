"""Where one signed lead's time goes inside the webhook handler: `python -m bench.breakdown`.

The handler runs as `make bench`'s warm ingest runs it (in-process, against the embedded AWS, a
fresh signed one-lead delivery per invocation), with a timestamp taken on entering and leaving
each stage: the secret read, the signature check, parsing, the lead's mapping, policy facts and
document, the send, the answer, Powertools' flush. It prints the median microseconds of each
stretch between two timestamps, in situ (the real SendMessage) and with SQS stubbed (the same
code without the round trip), 11 x 30 invocations each. Each timestamp adds ~1 us. Nothing is
asserted; docs/performance.md quotes a run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from bench.run import Harness, lead_body

#: the stretch that ends at each timestamp, as printed
STRETCHES = {
    "receive>": "Powertools decorators (entry), correlation id",
    "credentials>": "route, request, size and media-type checks",
    "credentials<": "webhook credentials (Powertools' secret cache)",
    "authenticate>": "",
    "authenticate<": "signature (Standard Webhooks)",
    "parse>": "",
    "parse<": "parse the body",
    "accept>": "",
    "message>": "delivery set-up",
    "read_facts>": "mapping, routing",
    "read_facts<": "policy facts (country, opt-out, phone region)",
    "build_document>": "",
    "build_document<": "document: phone parse and validation, texts",
    "message<": "consent, message JSON and size",
    "send>": "queue: batch",
    "send<": "SendMessage",
    "accept<": "results, metrics, the delivery's line",
    "reply>": "",
    "reply<": "the answer",
    "receive<": "",
    "end": "Powertools flush, decorators (exit)",
}


@contextlib.contextmanager
def _timestamps(harness: Harness, marks: list[tuple[str, float]]) -> Iterator[None]:
    """Record (label, time) on entering and leaving each stage for as long as the block runs."""
    import lead_caller.intake as intake_module
    from lead_caller.sources.generic import GenericSource

    webhook = harness.webhook
    queue_client = webhook.intake.queue.client
    queue_client.send_message  # noqa: B018 - creates the lazy client, whose method is wrapped below
    stages: list[tuple[Any, str, str]] = [
        (webhook, "receive", "receive"),
        (webhook.intake, "credentials", "credentials"),
        (GenericSource, "authenticate", "authenticate"),
        (GenericSource, "parse", "parse"),
        (intake_module.Intake, "accept", "accept"),
        (intake_module.Intake, "_message", "message"),
        (intake_module, "read_facts", "read_facts"),
        (intake_module, "build_document", "build_document"),
        (queue_client._client, "send_message", "send"),
        (GenericSource, "reply_accepted", "reply"),
    ]

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            marks.append((label + ">", time.perf_counter()))
            try:
                return function(*args, **kwargs)
            finally:
                marks.append((label + "<", time.perf_counter()))

        return wrapper

    with contextlib.ExitStack() as patches:
        for owner, name, label in stages:
            patches.enter_context(mock.patch.object(owner, name, timed(getattr(owner, name), label)))
        yield


def _not_sent(**_: Any) -> dict[str, str]:
    """SendMessage's answer without the request (a plain function: a Mock's call costs ~10 us)."""
    return {"MessageId": "-"}


def stretches(harness: Harness, stub_send: bool, rounds: int = 11, invocations: int = 30) -> dict[str, float]:
    """Median microseconds of each stretch of the handler (keys: the timestamp that ends it)."""
    marks: list[tuple[str, float]] = []
    samples: dict[str, list[float]] = defaultdict(list)
    with contextlib.ExitStack() as patches:
        if stub_send:
            client = harness.webhook.intake.queue.client
            client.send_message  # noqa: B018 - creates the lazy client
            patches.enter_context(mock.patch.object(client._client, "send_message", _not_sent))
        patches.enter_context(_timestamps(harness, marks))

        def once() -> list[tuple[str, float]]:
            event, context = harness.event(lead_body(0)), harness.context()
            marks.clear()
            marks.append(("start", time.perf_counter()))
            harness.invoke(event, context)
            marks.append(("end", time.perf_counter()))
            return list(marks)

        for _ in range(10):
            once()
        for _ in range(rounds):
            harness.discard()
            for _ in range(invocations):
                taken = once()
                for (_, began), (label, ended) in itertools.pairwise(taken):
                    samples[label].append((ended - began) * 1e6)
    harness.discard()
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the table (stdout) of one run: in situ, then with SQS stubbed (`--quick`: a smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 x 5 invocations: checks the script, measures nothing")
    args = parser.parse_args(argv)
    rounds, invocations = (2, 5) if args.quick else (11, 30)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")  # the template's default
    report = sys.stdout
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), Harness(0.0, embedded_server=True) as h:
        in_situ = stretches(h, stub_send=False, rounds=rounds, invocations=invocations)
        stubbed = stretches(h, stub_send=True, rounds=rounds, invocations=invocations)
    rows = [(STRETCHES.get(label, ""), in_situ[label], stubbed.get(label, 0.0)) for label in in_situ]
    print("| stretch of one signed lead's invocation | in situ (us) | SQS stubbed (us) |", file=report)
    print("|---|---|---|", file=report)
    for name, situ, stub in rows:
        if name:  # the few-microsecond hops between stages (a call and its return) are summed below
            print(f"| {name} | {situ:.0f} | {stub:.0f} |", file=report)
    total, total_stubbed = sum(situ for _, situ, _ in rows), sum(stub for _, _, stub in rows)
    send, send_stubbed = in_situ.get("send<", 0.0), stubbed.get("send<", 0.0)
    but_send = (total - send, total_stubbed - send_stubbed)
    print(
        f"| **all but the send** (sums of the medians) | **{but_send[0]:.0f}** | **{but_send[1]:.0f}** |", file=report
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
