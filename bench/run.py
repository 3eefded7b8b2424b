"""`make bench`: how fast lead-caller answers senders and how much batching saves.

Measures, in one run on this machine (quote ratios from one run, never absolute numbers
from another machine):

1. webhook latency over real HTTP through the local stack (in-process handler, moto
   server, sandbox): one lead per request and 100 leads per request, p50/p95;
2. dispatch of 100 queued leads with one contact per Create Task vs. grouped (10 per
   request, the SQS batch size): Unpod requests and wall time, with the sandbox adding
   a fixed per-request latency to stand in for a real API round trip;
3. cold starts of the functions `sam build` produced, under the Lambda Runtime Interface
   Emulator (INIT duration reported by the emulator), when the build exists.

Nothing here is asserted: tests never time things; this prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

# Quiet before the handlers' modules are imported: the benchmark prints its own report.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

import local  # noqa: F401 - puts src/ on sys.path
from lead_caller.contacts import ContactDocument
from lead_caller.dispatcher import Dispatcher, QueuedRecord
from lead_caller.leads import LeadMessage
from local.signing import LOCAL_BEARER_TOKEN
from local.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parent.parent
BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the sorted values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def lead_body(index: int) -> dict[str, Any]:
    """A valid generic lead with a unique id and phone."""
    return {
        "id": f"bench-{uuid.uuid4().hex[:10]}",
        "name": f"Bench Lead {index}",
        "phone": f"+1 512 555 {index % 10000:04d}",
        "email": f"lead{index}@example.com",
        "company": "Bench Corp",
    }


def webhook_latency(stack: LocalStack, requests: int, leads_per_request: int) -> dict[str, float]:
    """p50/p95/mean milliseconds of POST /webhooks/generic over HTTP."""
    timings: list[float] = []
    # In AWS the dispatcher runs in its own containers; here it would compete for the
    # same CPU and the same moto server, so it waits until the webhook was measured.
    stack.pause_dispatch()
    for number in range(requests):
        leads = [lead_body(number * leads_per_request + i) for i in range(leads_per_request)]
        body = json.dumps(leads if leads_per_request > 1 else leads[0]).encode()
        started = time.perf_counter()
        status, _ = stack.post("/webhooks/generic", body, BEARER)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 202, status
    stack.resume_dispatch()
    stack.wait_idle(timeout=300)
    return {"p50": percentile(timings, 0.5), "p95": percentile(timings, 0.95), "mean": statistics.fmean(timings)}


def dispatch_run(stack: LocalStack, leads: int, max_documents: int, latency: float) -> dict[str, float]:
    """Dispatch `leads` queued leads in SQS-sized batches of 10; Unpod requests and seconds."""
    assert stack.sandbox is not None
    assert stack._dispatch is not None
    dispatcher: Dispatcher = stack._dispatch.dispatcher
    original = dispatcher.settings
    dispatcher.settings = type(original)(**{**original.__dict__, "max_documents_per_request": max_documents})
    stack.sandbox.reset()
    stack.sandbox.response_delay = latency
    messages = [
        LeadMessage(
            "bench",
            f"d{max_documents}-{i}-{uuid.uuid4().hex[:6]}",
            time.time(),
            ContactDocument(name=f"Lead {i}", contact_number=f"+1512555{i % 10000:04d}", document_id=f"bench-{i}"),
        )
        for i in range(leads)
    ]
    started = time.perf_counter()
    for start in range(0, leads, 10):
        batch = [QueuedRecord(str(uuid.uuid4()), m.to_json(), 1) for m in messages[start : start + 10]]
        result = dispatcher.dispatch(batch)
        assert not result.retry, result.retry
    elapsed = time.perf_counter() - started
    requests = len(stack.sandbox.requests)
    stack.sandbox.response_delay = 0.0
    dispatcher.settings = original
    return {"seconds": elapsed, "requests": requests}


class _NoAWS:
    """Store and SQS stand-ins that answer at once: isolates lead-caller's own CPU time."""

    def recently_called(self, _lead_ids: Any) -> dict[str, str]:
        return {}

    def record_rejected(self, *_: Any) -> bool:
        return True

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        return {"Successful": [], "Failed": []}


def intake_cpu(leads_per_request: int, requests: int = 50) -> dict[str, float]:
    """p50/p95 ms of the webhook's own work (auth, parse, validate, serialise), AWS calls stubbed."""
    from lead_caller.config import Settings
    from lead_caller.intake import Intake
    from lead_caller.queue import LeadQueue
    from lead_caller.sources.base import WebhookRequest

    stub = _NoAWS()
    intake = Intake(Settings(), stub, LeadQueue(stub, "https://sqs.invalid/q"), lambda _: {"bearer_token": "t"})
    timings = []
    for number in range(requests):
        body = [lead_body(number * leads_per_request + i) for i in range(leads_per_request)]
        request = WebhookRequest(
            "generic",
            "POST",
            "/webhooks/generic",
            "",
            {"content-type": "application/json", "authorization": "Bearer t"},
            json.dumps(body).encode(),
            "https://x/webhooks/generic",
            time.time(),
        )
        started = time.perf_counter()
        reply = intake.handle(request)
        timings.append((time.perf_counter() - started) * 1000)
        assert reply.status == 202, reply.body
    return {"p50": percentile(timings, 0.5), "p95": percentile(timings, 0.95)}


class _SlowSQS:
    """An SQS client stand-in whose SendMessageBatch takes a fixed network round trip."""

    def __init__(self, round_trip: float) -> None:
        self.round_trip = round_trip

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        time.sleep(self.round_trip)
        return {"Successful": [], "Failed": []}


def queue_fan_out(round_trip: float, leads: int = 100, repeats: int = 5) -> dict[str, float]:
    """Milliseconds to queue `leads` leads: batches one after another vs. concurrently."""
    from lead_caller import queue as queue_module

    messages = [
        LeadMessage("bench", f"q{i}", time.time(), ContactDocument(f"Lead {i}", f"+1512555{i:04d}", f"bench-q{i}"))
        for i in range(leads)
    ]
    sender = queue_module.LeadQueue(_SlowSQS(round_trip), "https://sqs.invalid/queue")
    results: dict[str, float] = {}
    for label, parallel in (("sequential", 1), ("concurrent", queue_module.MAX_PARALLEL_BATCHES)):
        saved = queue_module.MAX_PARALLEL_BATCHES
        queue_module.MAX_PARALLEL_BATCHES = parallel
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            sender.send(messages)
            timings.append((time.perf_counter() - started) * 1000)
        queue_module.MAX_PARALLEL_BATCHES = saved
        results[label] = statistics.median(timings)
    return results


def cold_starts(runs: int) -> dict[str, list[float]]:
    """INIT durations (ms) of the built functions under the Runtime Interface Emulator."""
    try:
        from local.rie import rie_binary, run_built_function
    except ImportError:
        return {}
    build = ROOT / ".aws-sam" / "build"
    if rie_binary() is None or not (build / "WebhookFunction").exists():
        return {}
    from local.resources import REGION

    environment = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LEADS_QUEUE_URL": "http://127.0.0.1:9/queue",  # init only: nothing is called
    }
    # A sample API Gateway event sent as GET: the router answers 404 without calling AWS.
    event = json.loads((ROOT / "events" / "generic-bearer.json").read_text())
    event["requestContext"]["http"]["method"] = "GET"
    event["routeKey"] = "$default"
    results: dict[str, list[float]] = {}
    for function, handler in (
        ("WebhookFunction", "lead_caller.handlers.webhook.handler"),
        ("DispatchFunction", "lead_caller.handlers.dispatch.handler"),
    ):
        durations = []
        for _ in range(runs):
            with run_built_function(build / function, handler, environment) as running:
                running.invoke(event if function == "WebhookFunction" else {"Records": []})
                duration = running.init_duration_ms()
                if duration is not None:
                    durations.append(duration)
        results[function] = durations
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print a report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=200, help="single-lead webhook requests (default 200)")
    parser.add_argument("--leads", type=int, default=100, help="leads to dispatch (default 100)")
    parser.add_argument("--unpod-latency", type=float, default=0.15, help="sandbox seconds per request (0.15)")
    parser.add_argument("--sqs-round-trip", type=float, default=0.015, help="simulated SQS seconds (0.015)")
    parser.add_argument("--cold-runs", type=int, default=3, help="emulator starts per function (default 3)")
    args = parser.parse_args(argv)

    options = StackOptions(port=0, environment={"POWERTOOLS_LOG_LEVEL": "ERROR"})
    # The functions print their logs and EMF metrics to stdout, as in Lambda: keep them out of the report.
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), LocalStack(options) as stack:
        single = webhook_latency(stack, args.requests, 1)
        hundred = webhook_latency(stack, max(5, args.requests // 20), 100)
        one_each = dispatch_run(stack, args.leads, 1, args.unpod_latency)
        grouped = dispatch_run(stack, args.leads, 10, args.unpod_latency)
    fan_out = queue_fan_out(args.sqs_round_trip)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        cpu_one, cpu_hundred = intake_cpu(1), intake_cpu(100)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        cold = cold_starts(args.cold_runs)

    hundred_requests = max(5, args.requests // 20)
    lines = [
        "lead-caller benchmark (one run; compare ratios, not absolute numbers)",
        "",
        f"webhook, 1 lead/request ({args.requests} requests): p50 {single['p50']:.1f} ms, p95 {single['p95']:.1f} ms",
        f"webhook, 100 leads/request ({hundred_requests} requests): "
        f"p50 {hundred['p50']:.1f} ms, p95 {hundred['p95']:.1f} ms",
        "  (moto answers each AWS call in tens of ms and slows down as its queue grows; real SQS/DynamoDB do not)",
        f"webhook's own work, AWS calls stubbed: 1 lead p50 {cpu_one['p50']:.2f} ms; "
        f"100 leads p50 {cpu_hundred['p50']:.1f} ms, p95 {cpu_hundred['p95']:.1f} ms "
        f"({cpu_hundred['p95'] / 50:.2f}% of HubSpot's 5000 ms)",
        "",
        f"queueing 100 leads (10 SendMessageBatch calls, {args.sqs_round_trip * 1000:.0f} ms simulated round trip): "
        f"sequential {fan_out['sequential']:.0f} ms, concurrent {fan_out['concurrent']:.0f} ms, "
        f"{fan_out['sequential'] / fan_out['concurrent']:.1f}x faster",
        "  (moto serialises requests, so the stack numbers above cannot show this)",
        "",
        f"dispatch of {args.leads} leads, Unpod answering in {args.unpod_latency * 1000:.0f} ms:",
        f"  1 contact per Create Task:   {one_each['requests']:.0f} requests, {one_each['seconds']:.2f} s",
        f"  up to 10 per Create Task:    {grouped['requests']:.0f} requests, {grouped['seconds']:.2f} s",
        f"  grouping: {one_each['requests'] / grouped['requests']:.1f}x fewer requests, "
        f"{one_each['seconds'] / grouped['seconds']:.1f}x faster",
        "",
    ]
    if any(cold.values()):
        lines.append("cold start of the sam build artifact (Runtime Interface Emulator INIT duration):")
        for function, durations in cold.items():
            if durations:
                rounded = [round(duration) for duration in durations]
                lines.append(
                    f"  {function}: median {statistics.median(durations):.0f} ms over {len(durations)} starts {rounded}"
                )
    else:
        lines.append("cold start: skipped (run `make sam-build` first; needs python3.13 and the SAM CLI's emulator)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
