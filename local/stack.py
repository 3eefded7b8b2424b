"""The whole of lead-caller on one machine, without AWS or Docker (`make run`).

* embedded AWS: moto's server app on 127.0.0.1 (local/embedded_aws.py) with the table,
  queue + DLQ and secrets created from template.yaml (local/resources.py);
* the Unpod sandbox (local/unpod_sandbox.py) unless --unpod-base-url is given;
* an HTTP server on 127.0.0.1:3000 that turns requests into API Gateway v2
  events and invokes the same webhook handler that Lambda runs;
* a poller that feeds the queue to the same dispatch handler, like Lambda's
  SQS event source mapping (partial batch failures are left on the queue).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import urllib3

from lead_caller.config import ConfigError
from local.catch_hook import CatchHookStandIn
from local.embedded_aws import EmbeddedAwsServer
from local.hubspot_api import HubSpotApiStandIn
from local.moto_transactions import install as install_moto_transactions
from local.outcome_loops import (
    LOCAL_AGENT_WEBHOOK_TOKEN,
    LOCAL_OUTCOME_ENVIRONMENT,
    OutcomeLoops,
    with_agent_webhook_token,
)
from local.pipedrive_api import PipedriveApiStandIn
from local.policy_demo import demo_environment
from local.resources import (
    REGION,
    LocalResources,
    create_resources,
    embedded_aws_client,
    function_environment,
    reset_embedded_aws,
)
from local.salesforce_api import SalesforceApiStandIn
from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, LOCAL_WEBHOOK_SECRETS, sign_request
from local.standin import LISTEN_BACKLOG
from local.unpod_sandbox import UnpodSandbox
from local.writeback_local import LOCAL_WRITEBACK, WritebackRoute, print_writebacks
from local.zoho_api import ZohoApiStandIn

install_moto_transactions()  # the embedded AWS's TransactWriteItems backs up the items it writes, not the table

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/", "application/xml")
#: documented default ports of `make run` (`--port 0` picks free ones for all three)
DEFAULT_PORTS = {"api": 3000, "aws": 3001, "sandbox": 3002, "hubspot": 3003, "pipedrive": 3004, "zoho": 3005}
STATE_FILE = ROOT / "local" / ".state" / "stack.json"
DEFAULT_LOG_FILE = ROOT / "local" / ".state" / "run.log"
REFUSED_SAMPLE_CREDENTIALS = (
    "this stack places REAL calls and has no webhook credentials of its own: every request is refused. "
    'Put your own "webhooks" credentials in --config (the sample credentials of the README are public)'
)


@dataclass
class LambdaContextStub:
    """The parts of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        """A plausible function ARN."""
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        """Always $LATEST locally."""
        return "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (simulated) timeout."""
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass
class StackOptions:
    """What `make run` / tests can change."""

    port: int = 3000
    aws_port: int = 0
    sandbox_port: int = 0
    unpod_base_url: str | None = None
    unpod_secret: Mapping[str, Any] | None = None
    webhook_secret: Mapping[str, Any] | None = None
    #: CRM API credentials by source; given with a real base URL, the stand-in is not started
    crm_secret: Mapping[str, Any] | None = None
    hubspot_api_base_url: str | None = None
    pipedrive_api_base_url: str | None = None
    zoho_accounts_base_url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    public_url: str | None = None
    retry_delay_seconds: int = 2
    poll_wait_seconds: int = 1
    #: seconds between two runs of the outcome poller (in AWS: OutcomePollSchedule)
    outcome_poll_seconds: float = 1.0
    #: the sandbox's calls end by themselves and are POSTed to the local agent webhook (settings of
    #: CallSimulation.configure); None = tasks stay pending unless a test moves them (`make run` turns it on)
    simulate_calls: Mapping[str, Any] | None = None
    #: ports of the HubSpot, Pipedrive and Zoho stand-ins (0: any free one)
    crm_ports: tuple[int, int, int] = (0, 0, 0)
    #: when set, the local API refuses every webhook with this message (real Unpod, no own credentials)
    refuse_webhooks: str | None = None


def api_gateway_event(
    method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, host: str
) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) event as API Gateway builds it."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "")
    textual = any(content_type.startswith(kind) for kind in TEXT_TYPES)
    try:
        text = body.decode() if textual else None
    except UnicodeDecodeError:
        text = None
    parts = path.strip("/").split("/")
    route = "POST /webhooks/{source}" if len(parts) == 2 and parts[0] == "webhooks" else "$default"
    if parts == ["unpod", "calls"]:
        route = "POST /unpod/calls"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lower,
        "queryStringParameters": dict(parse_qsl(query, keep_blank_values=True)) or None,
        "pathParameters": {"source": parts[1]} if route.startswith("POST /webhooks/") else None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping passes to the dispatch function."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


class LocalStack:
    """Starts and stops everything; `invoke_*` call the real handlers in-process."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.moto: EmbeddedAwsServer | None = None
        self.sandbox: UnpodSandbox | None = None
        self.hubspot_api: HubSpotApiStandIn | None = None
        self.pipedrive_api: PipedriveApiStandIn | None = None
        self.zoho_api: ZohoApiStandIn | None = None
        self.salesforce_api: SalesforceApiStandIn | None = None
        self.catch_hook: CatchHookStandIn | None = None
        self.writeback_route: WritebackRoute | None = None
        self._writeback: ModuleType | None = None
        self._writeback_lock = threading.Lock()
        self.resources: LocalResources | None = None
        self.environment: dict[str, str] = {}
        self.http: ThreadingHTTPServer | None = None
        self._webhook: ModuleType | None = None
        self._dispatch: ModuleType | None = None
        self._events: ModuleType | None = None
        self._zoho_watch: ModuleType | None = None
        self._outcomes: ModuleType | None = None
        self._poller_fn: ModuleType | None = None
        self._call_events: ModuleType | None = None
        self.outcome_loops: OutcomeLoops | None = None
        self._lock = threading.Lock()  # one "container" per function: invocations are serial
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._busy = threading.Event()
        self._dispatch_paused = threading.Event()
        self._saved_env: dict[str, str | None] = {}
        self.dispatch_log: list[dict[str, Any]] = []

    # ---- lifecycle ---------------------------------------------------------------
    def start(self) -> LocalStack:
        """Start embedded AWS, the sandbox, the handlers, the HTTP API and the poller."""
        self.moto = EmbeddedAwsServer("127.0.0.1", self.options.aws_port)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        reset_embedded_aws(endpoint)  # a fresh account, even if this process ran another stack before
        if self.options.unpod_base_url:
            base_url = self.options.unpod_base_url
            unpod_secret = dict(self.options.unpod_secret or {})
        else:
            self.sandbox = UnpodSandbox(port=self.options.sandbox_port).start()
            base_url = self.sandbox.base_url
            unpod_secret = {
                "api_token": self.sandbox.api_token,
                "space_token": self.sandbox.space_token,
                "org_handle": self.sandbox.org_handle,
                "pilot": self.sandbox.pilots[0],
                **dict(self.options.unpod_secret or {}),
            }
        if self.options.unpod_base_url and self.options.webhook_secret is None:
            # Real calls: the published sample credentials must never authorise a request.
            self.options.refuse_webhooks = self.options.refuse_webhooks or REFUSED_SAMPLE_CREDENTIALS
        webhook_secret: dict[str, Any]
        if self.options.refuse_webhooks:
            webhook_secret = {}
        elif self.options.unpod_base_url:  # real calls: only the user's own credentials, no sample agent token
            webhook_secret = dict(self.options.webhook_secret or {})
        else:
            webhook_secret = with_agent_webhook_token(self.options.webhook_secret or LOCAL_WEBHOOK_SECRETS)
        crm_secret, crm_environment = self._start_crm_standins()
        max_receive = self.options.environment.get("MAX_RECEIVE_COUNT")
        self.resources = create_resources(
            endpoint,
            unpod_secret,
            webhook_secret,
            max_receive_count=int(max_receive) if max_receive else None,
            crm_secret=crm_secret,
        )
        demo = demo_environment()  # the calling-policy demo rule (local/policy_demo.py)
        overrides = {
            **LOCAL_OUTCOME_ENVIRONMENT,
            "UNPOD_BASE_URL": base_url,
            **crm_environment,
            **demo,
            **dict(self.options.environment),
        }
        if self.options.public_url:
            overrides["PUBLIC_BASE_URL"] = self.options.public_url
        self.environment = function_environment(self.resources, overrides)
        self._apply_environment()
        self._load_handlers()
        self._start_http()
        # Zoho calls back the notify_url the watch function registers: this stack's API.
        self.environment["ZOHO_NOTIFY_URL"] = (self.options.public_url or self.api_url).rstrip("/") + "/webhooks/zoho"
        self._apply_environment()
        self._poller = threading.Thread(target=self._poll, name="dispatch-poller", daemon=True)
        self._poller.start()
        self.writeback_route = WritebackRoute(
            self.client,
            self.invoke_writeback,
            retry_delay_seconds=self.options.retry_delay_seconds,
            poll_wait_seconds=self.options.poll_wait_seconds,
        ).start()
        self._start_outcomes(webhook_secret)
        return self

    def _start_outcomes(self, webhook_secret: Mapping[str, Any]) -> None:
        """The outcome poller, the Call Completed stream consumer and the sandbox's simulated calls."""
        assert self.resources is not None
        self.outcome_loops = OutcomeLoops(
            self.client,
            self.resources.table_name,
            self.invoke_poller,
            self.invoke_call_events,
            poll_interval=self.options.outcome_poll_seconds,
        )
        self.outcome_loops.create_resources()
        self.outcome_loops.start()
        if self.sandbox is not None and self.options.simulate_calls is not None:
            token = str((webhook_secret.get("unpod") or {}).get("agent_webhook_token") or LOCAL_AGENT_WEBHOOK_TOKEN)
            header = self.environment.get("AGENT_WEBHOOK_HEADER") or "x-lead-caller-token"
            self.sandbox.calls.configure(
                webhook_url=self.api_url + "/unpod/calls",
                webhook_headers={header: token},
                **dict(self.options.simulate_calls),
            )

    def _start_crm_standins(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Start the HubSpot, Pipedrive and Zoho API stand-ins unless real base URLs are given.

        Returns the CRM secret document and the environment pointing the dispatcher at them.
        """
        crm_secret: dict[str, Any] = {k: dict(v) for k, v in (self.options.crm_secret or {}).items()}
        environment: dict[str, str] = {}
        if self.options.hubspot_api_base_url:
            environment["HUBSPOT_API_BASE_URL"] = self.options.hubspot_api_base_url
        else:
            self.hubspot_api = HubSpotApiStandIn(port=self.options.crm_ports[0]).start()
            environment["HUBSPOT_API_BASE_URL"] = self.hubspot_api.base_url
            crm_secret.setdefault("hubspot", {"access_token": self.hubspot_api.access_token})
        if self.options.pipedrive_api_base_url:
            environment["PIPEDRIVE_API_BASE_URL"] = self.options.pipedrive_api_base_url
        else:
            self.pipedrive_api = PipedriveApiStandIn(port=self.options.crm_ports[1]).start()
            environment["PIPEDRIVE_API_BASE_URL"] = self.pipedrive_api.base_url
            crm_secret.setdefault("pipedrive", {"api_token": self.pipedrive_api.api_token})
        if self.options.zoho_accounts_base_url:
            environment["ZOHO_ACCOUNTS_BASE_URL"] = self.options.zoho_accounts_base_url
        else:
            self.zoho_api = ZohoApiStandIn(port=self.options.crm_ports[2]).start()
            environment["ZOHO_ACCOUNTS_BASE_URL"] = self.zoho_api.base_url
            crm_secret.setdefault(
                "zoho",
                {
                    "client_id": self.zoho_api.client_id,
                    "client_secret": self.zoho_api.client_secret,
                    "refresh_token": self.zoho_api.refresh_token,
                    "dc": "com",
                },
            )
        # Write-back (docs/writeback.md): a Salesforce stand-in and a catch hook for the outbound webhook.
        self.salesforce_api = SalesforceApiStandIn().start()
        crm_secret.setdefault(
            "salesforce",
            {
                "client_id": self.salesforce_api.client_id,
                "client_secret": self.salesforce_api.client_secret,
                "my_domain_url": self.salesforce_api.base_url,
            },
        )
        self.catch_hook = CatchHookStandIn().start()
        crm_secret.setdefault(
            "outbound_webhook", {"url": self.catch_hook.hook_url, "signing_secret": self.catch_hook.signing_secret}
        )
        environment["WRITEBACK"] = json.dumps(LOCAL_WRITEBACK)
        return crm_secret, environment

    def stop(self) -> None:
        """Stop everything and restore the process environment."""
        self._stop.set()
        # the loops end at their next long poll (up to a second each): stopped side by side
        stopping = [
            threading.Thread(target=loop.stop, name=f"stop-{type(loop).__name__}")
            for loop in (self.writeback_route, self.outcome_loops)
            if loop is not None
        ]
        for thread in stopping:
            thread.start()
        if self._poller:
            self._poller.join(timeout=self.options.poll_wait_seconds + 5)
        for thread in stopping:
            thread.join()
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        for standin in (self.hubspot_api, self.pipedrive_api, self.zoho_api, self.salesforce_api, self.catch_hook):
            if standin is not None:
                standin.stop()
        if self.sandbox:
            self.sandbox.stop()
        if self.moto:
            self.moto.stop()  # last: the loops above use it until they end
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _apply_environment(self) -> None:
        for name, value in self.environment.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _load_handlers(self) -> None:
        """Import (or re-import) the handlers so they read this stack's environment."""
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]
        for name in ("webhook", "dispatch", "events", "zoho_watch", "writeback", "outcomes", "poller", "call_events"):
            module_name = f"lead_caller.handlers.{name}"
            module = sys.modules.get(module_name)
            loaded = importlib.reload(module) if module else importlib.import_module(module_name)
            setattr(self, "_poller_fn" if name == "poller" else f"_{name}", loaded)

    # ---- URLs ----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """Base URL of the local HTTP API."""
        assert self.http is not None
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def aws_endpoint(self) -> str:
        """The embedded AWS endpoint (use with --endpoint-url)."""
        assert self.resources is not None
        return self.resources.endpoint_url or ""

    def client(self, service: str) -> Any:
        """A boto3 client for the embedded AWS (one per service and endpoint: `embedded_aws_client`)."""
        return embedded_aws_client(service, self.aws_endpoint)

    # ---- the two functions -----------------------------------------------------------
    def invoke_webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the webhook handler on an API Gateway v2 event."""
        assert self._webhook is not None
        with self._lock:
            result: dict[str, Any] = self._webhook.handler(
                event, LambdaContextStub("WebhookFunction", timeout_seconds=10)
            )
        return result

    def invoke_outcomes(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the outcome handler (Unpod's agent webhook) on an API Gateway v2 event."""
        assert self._outcomes is not None
        with self._lock:
            result: dict[str, Any] = self._outcomes.handler(
                event, LambdaContextStub("OutcomeFunction", timeout_seconds=15)
            )
        return result

    def invoke_poller(self) -> dict[str, Any]:
        """Run the scheduled outcome poller once."""
        assert self._poller_fn is not None
        with self._lock:
            result: dict[str, Any] = self._poller_fn.handler(
                {"source": "aws.events", "detail-type": "Scheduled Event"},
                LambdaContextStub("PollerFunction", timeout_seconds=240),
            )
        return result

    def invoke_call_events(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the call events handler on a DynamoDB stream batch."""
        assert self._call_events is not None
        with self._lock:
            result: dict[str, Any] = self._call_events.handler(event, LambdaContextStub("CallEventsFunction"))
        return result

    def invoke_dispatch(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the dispatch handler on an SQS event."""
        assert self._dispatch is not None
        with self._lock:
            result: dict[str, Any] = self._dispatch.handler(event, LambdaContextStub("DispatchFunction"))
        return result

    def put_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Deliver an EventBridge event to the event function, as a rule target would.

        Returns the function's result, or {"error": ...} when it raised (in AWS: retried,
        then kept in the events dead-letter queue).
        """
        assert self._events is not None
        with self._lock:
            try:
                result: dict[str, Any] = self._events.handler(
                    event, LambdaContextStub("EventFunction", timeout_seconds=30)
                )
            except Exception as error:  # the async invocation failed
                return {"error": type(error).__name__, "message": str(error)}
        return result

    def invoke_writeback(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the write-back handler on an SQS event (its own "container": it never waits for dispatch)."""
        assert self._writeback is not None
        with self._writeback_lock:
            result: dict[str, Any] = self._writeback.handler(event, LambdaContextStub("WritebackFunction"))
        return result

    def call_completed(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """Put a `Call Completed` event on the bus: the rule queues it for the write-back function."""
        assert self.writeback_route is not None
        return self.writeback_route.put(detail)

    def renew_zoho_watch(self) -> dict[str, Any]:
        """Run the scheduled Zoho watch function once (in AWS: daily)."""
        assert self._zoho_watch is not None
        with self._lock:
            try:
                result: dict[str, Any] = self._zoho_watch.handler({}, LambdaContextStub("ZohoWatchFunction"))
            except Exception as error:  # the scheduled invocation failed
                return {"error": type(error).__name__, "message": str(error)}
        return result

    def _start_http(self) -> None:
        stack = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no ~40 ms delayed-ACK stall on reused connections

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the handlers log what matters (without personal data)."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._send(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                if stack.options.refuse_webhooks:
                    refusal = {"error": "webhooks_refused", "message": stack.options.refuse_webhooks}
                    self._send(403, {"content-type": "application/json"}, json.dumps(refusal).encode())
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = api_gateway_event(self.command, path, query, headers, body, headers.get("host", "localhost"))
                try:
                    invoke = stack.invoke_outcomes if path.rstrip("/") == "/unpod/calls" else stack.invoke_webhook
                    result = invoke(event)
                except Exception:  # the real API Gateway answers 500 when the function errors
                    self._send(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
                    return
                payload = result.get("body") or ""
                data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
                self._send(int(result.get("statusCode", 200)), result.get("headers") or {}, data)

            def _send(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server naming

        class Server(ThreadingHTTPServer):
            request_queue_size = LISTEN_BACKLOG  # the default of 5 resets connections under 50 clients
            daemon_threads = True

        self.http = Server(("127.0.0.1", self.options.port), Handler)
        threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, name="local-http-api", daemon=True
        ).start()  # polls for shutdown every 0.05 s (the default 0.5 s was most of a test stack's teardown)

    # ---- the SQS event source mapping ----------------------------------------------
    def _poll(self) -> None:
        assert self.resources is not None
        sqs = self.client("sqs")
        queue_url = self.resources.queue_url
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        while not self._stop.is_set():
            if self._dispatch_paused.is_set():
                time.sleep(0.05)
                continue
            try:
                received = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.options.poll_wait_seconds,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:  # the embedded AWS is stopping
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            messages = received.get("Messages") or []
            if not messages:
                continue
            self._busy.set()
            try:
                self._deliver(sqs, queue_url, queue_arn, messages)
            finally:
                self._busy.clear()

    def _deliver(self, sqs: Any, queue_url: str, queue_arn: str, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, queue_arn)
        try:
            response = self.invoke_dispatch(event)
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except Exception as error:  # a crashed invocation: the whole batch comes back
            failed = {message["MessageId"] for message in messages}
            response = {"error": type(error).__name__}
        self.dispatch_log.append({"messages": len(messages), "failed": len(failed)})
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        crashed = "error" in response
        for message in messages:
            if crashed and message["MessageId"] in failed:
                # Lambda leaves failed messages invisible for the queue's visibility timeout
                # (360 s deployed); locally they come back after a short delay. A reported
                # failure keeps the delay the handler gave it (the retry schedule).
                sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.options.retry_delay_seconds,
                )

    def pause_dispatch(self) -> None:
        """Stop feeding the queue to the dispatcher (leads wait in SQS) until resume_dispatch()."""
        self._dispatch_paused.set()
        while self._busy.is_set():
            time.sleep(0.01)

    def resume_dispatch(self) -> None:
        """Feed the queue to the dispatcher again."""
        self._dispatch_paused.clear()

    def queue_depth(self) -> int:
        """Messages waiting or in flight on the leads queue."""
        assert self.resources is not None
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until the queue is empty and the dispatcher is not running. False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_depth() == 0 and not self._busy.is_set():
                time.sleep(0.05)
                if self.queue_depth() == 0 and not self._busy.is_set():
                    return True
            time.sleep(0.1)
        return False

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        """The DynamoDB item of a lead, as plain Python values."""
        assert self.resources is not None
        from boto3.dynamodb.types import TypeDeserializer

        item = (
            self.client("dynamodb")
            .get_item(TableName=self.resources.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        deserializer = TypeDeserializer()
        return {key: deserializer.deserialize(value) for key, value in item.items()}

    # ---- sending requests like a CRM would ------------------------------------------
    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST to the local HTTP API over real HTTP; returns (status, JSON body or {})."""
        response = urllib3.request("POST", self.api_url + path, body=body, headers=dict(headers), retries=False)
        try:
            payload = json.loads(response.data) if response.data else {}
        except ValueError:
            payload = {"raw": response.data.decode(errors="replace")}
        return response.status, payload


@contextmanager
def running_stack(options: StackOptions | None = None) -> Iterator[LocalStack]:
    """A started LocalStack, stopped on exit."""
    stack = LocalStack(options).start()
    try:
        yield stack
    finally:
        stack.stop()


# ---- `make run` ------------------------------------------------------------------------
def demo_requests(stack: LocalStack) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(name, path, body, headers) for each webhook sample in events/, authenticated for this stack.

    Signatures are made now, with the stack's webhook secrets, over the URL the stack sees
    (its --public-url, else https://127.0.0.1:<port>), as each CRM would sign them.
    """
    requests: list[tuple[str, str, bytes, dict[str, str]]] = []
    secrets = stack.options.webhook_secret or LOCAL_WEBHOOK_SECRETS
    base = (stack.options.public_url or f"https://{stack.api_url.split('://', 1)[1]}").rstrip("/")
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        raw_path = event.get("rawPath")
        if not isinstance(raw_path, str) or not raw_path.startswith("/webhooks/"):
            continue  # env.json, SQS and EventBridge samples
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items() if k.lower() != "host"}
        query = event.get("rawQueryString") or ""
        url = base + raw_path + (f"?{query}" if query else "")
        source = raw_path.rstrip("/").rsplit("/", 1)[-1]
        try:
            signed = sign_request(source, "POST", url, headers, raw, secrets)
        except Exception:  # your --config lacks this sample's credential: sent unsigned (answered 401)
            signed = headers
        requests.append((path.stem, raw_path + (f"?{query}" if query else ""), raw, signed))
    return requests


def _masked(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in ("authorization", "org-handle") else v) for k, v in headers.items()}


def _answer_counts(payload: Mapping[str, Any]) -> str:
    """ "accepted 2, rejected 1" from a webhook answer's counts ("" when it has none, e.g. a SOAP Ack)."""
    counts = [f"{key} {payload[key]}" for key in ("accepted", "rejected") if isinstance(payload.get(key), int)]
    return f" ({', '.join(counts)})" if counts else ""


def lead_rows(stack: LocalStack) -> list[dict[str, str]]:
    """One row per lead of the table: source, record, status, reason (no personal data)."""
    assert stack.resources is not None
    rows: list[dict[str, str]] = []
    paginator = stack.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=stack.resources.table_name):
        for raw in page.get("Items", []):
            lead = stack.lead(raw["pk"]["S"]) or {}
            if "source" not in lead:
                continue  # reserved items (dnc#, phone#, circuit#)
            rows.append(
                {
                    "source": str(lead.get("source", "")),
                    "record": str(lead.get("record_id", "")),
                    "status": str(lead.get("status", "")),
                    "reason": _row_reason(lead),
                }
            )
    rows.sort(key=lambda row: (row["source"], row["record"]))
    return rows


def _row_reason(lead: Mapping[str, Any]) -> str:
    """Why a lead is where it is: the refusal, the call's result and attempt, or the calling plan."""
    if lead.get("reason"):
        return str(lead["reason"])
    attempt = lead.get("call_attempt")
    if lead.get("status") in ("completed", "no_answer", "busy", "voicemail", "call_failed", "recall_pending"):
        result = lead.get("outcome") or lead.get("call_status") or ""
        return f"attempt {attempt}" + (f": {result}" if result else "")
    return str(lead.get("plan_reason") or "")


def summary_table(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The leads as an aligned text table (reasons cut to 70 characters)."""
    header = {"source": "SOURCE", "record": "RECORD", "status": "STATUS", "reason": "REASON"}
    table = [header, *({**row, "reason": _cut(row["reason"], 100)} for row in rows)]
    widths = {key: max(len(row[key]) for row in table) for key in ("source", "record", "status")}
    return [
        f"{row['source']:<{widths['source']}}  {row['record']:<{widths['record']}}  "
        f"{row['status']:<{widths['status']}}  {row['reason']}".rstrip()
        for row in table
    ]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def run_demo(
    stack: LocalStack, say: Callable[[str], None] = print, detail: Callable[[str], None] | None = None
) -> None:
    """Send every sample event through the stack; say one line per request and a table of leads.

    `detail` (default: `say`) receives the full answers and the Create Task requests as JSON.
    """
    detail = detail or say
    for name, path, body, headers in demo_requests(stack):
        status, payload = stack.post(path, body, headers)
        say(f"=== {name}: POST {path} -> HTTP {status}{_answer_counts(payload)}")
        detail(f"--- answer to {name}\n{json.dumps(payload, indent=2)}")
    watch = stack.renew_zoho_watch()
    say(f"=== zoho watch renewal (the scheduled ZohoWatchFunction): {_short(watch)}")
    detail(json.dumps(watch, indent=2))
    for sample_file in sorted(EVENTS.glob("eventbridge-*.json")):
        sample = json.loads(sample_file.read_text())
        result = stack.put_event(sample)
        say(f"=== {sample_file.stem}: EventBridge {sample.get('detail-type')} -> {_short(result)}")
        detail(f"--- result of {sample_file.stem}\n{json.dumps(result, indent=2)}")
    stack.wait_idle(timeout=30)
    if stack.sandbox is not None:
        requests = stack.sandbox.requests
        answers = sorted({str(request["status"]) for request in requests})
        say(
            f"=== the Unpod sandbox received {len(requests)} Create Task request(s): "
            f"POST .../tasks/create/ -> HTTP {', '.join(answers) or '-'}"
        )
        for request in requests:
            detail(f"--- {request['method']} {request['path']} -> HTTP {request['status']}")
            detail(json.dumps({"headers": _masked(request["headers"]), "body": request["json"]}, indent=2))
    show_outcomes(stack, say, detail)
    if stack.writeback_route is not None:  # Call Completed events -> notes in the CRM stand-ins, catch hook
        stack.writeback_route.wait_idle(timeout=30)
        print_writebacks(stack, say, detail)
    assert stack.resources is not None
    rows = lead_rows(stack)
    say(f"=== {len(rows)} lead(s) in DynamoDB table {stack.resources.table_name}")
    for line in summary_table(rows):
        say(line)
    for raw in stack.client("dynamodb").scan(TableName=stack.resources.table_name).get("Items", []):
        detail(json.dumps(stack.lead(raw["pk"]["S"]), indent=2, default=str))


#: `make run`'s simulated calls: mostly answered, some re-called after no answer or busy
DEMO_CALLS = {"delay_seconds": 1.0, "mix": ["answered", "answered", "no_answer", "answered", "busy"]}
OPEN_STATUSES = ("dispatching", "call_requested", "in_progress", "recall_pending")
FINAL_STATUSES = ("completed", "no_answer", "busy", "voicemail", "call_failed")


def open_leads(stack: LocalStack) -> list[str]:
    """Lead ids whose call has not reached a final outcome yet.

    One consistent Scan: a lead's status moves on (recall_pending -> dispatching -> call_requested
    -> in_progress) while the statuses are read, and reading them one query at a time can miss a
    lead that changed between two queries. A call planned for later (a custom schedule outside
    calling hours) is not waited for.
    """
    assert stack.resources is not None
    dynamodb = stack.client("dynamodb")
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    found: list[str] = []
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=stack.resources.table_name,
        ConsistentRead=True,
        FilterExpression="#s IN (" + ", ".join(f":s{index}" for index in range(len(OPEN_STATUSES))) + ")",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={f":s{index}": {"S": status} for index, status in enumerate(OPEN_STATUSES)},
        ProjectionExpression="pk, #s, planned_at",
    )
    for page in pages:
        for item in page.get("Items", []):
            planned = str((item.get("planned_at") or {}).get("S") or "")
            if item["status"]["S"] == "call_requested" and planned[:19] > now:
                continue
            found.append(item["pk"]["S"])
    return sorted(found)


def show_outcomes(
    stack: LocalStack,
    say: Callable[[str], None] = print,
    detail: Callable[[str], None] | None = None,
    timeout: float = 90.0,
) -> None:
    """Wait for every called lead to reach a final outcome, then count the Call Completed events."""
    from local.outcome_loops import wait_until

    detail = detail or say
    if stack.sandbox is None or stack.outcome_loops is None or not stack.sandbox.calls.enabled:
        return
    say("=== waiting for the sandbox's calls to end (agent webhook, poller, re-calls)")
    ended = wait_until(lambda: not open_leads(stack), timeout, interval=0.5)
    if not ended:
        say(f"still open after {timeout:.0f} s: {', '.join(open_leads(stack))}")
    loops = stack.outcome_loops
    finals = sum(1 for row in lead_rows(stack) if row["status"] in FINAL_STATUSES)

    def published() -> bool:  # the stream consumer publishes the last events a moment later
        return sum(1 for event in loops.drain_events() if (event.get("detail") or {}).get("final")) >= finals

    wait_until(published, 30.0, interval=0.5)
    events = loops.drain_events()
    kinds = [
        f"{(event.get('detail') or {}).get('status')}{'' if (event.get('detail') or {}).get('final') else ' (re-call)'}"
        for event in events
    ]
    counts = ", ".join(f"{kind} {kinds.count(kind)}" for kind in dict.fromkeys(kinds))
    say(f"=== {len(events)} Call Completed event(s) on the bus: {counts or 'none'}")
    for event in events:
        detail(f"--- Call Completed\n{json.dumps(event.get('detail') or {}, indent=2, default=str)}")


def _short(result: Mapping[str, Any]) -> str:
    """A one-line view of a function result: counts, channel and errors, never documents."""
    if "error" in result:
        return f"error {result['error']}"
    results = result.get("results")
    if isinstance(results, list):
        statuses = [str(item.get("status")) for item in results if isinstance(item, dict)]
        return ", ".join(f"{status} {statuses.count(status)}" for status in dict.fromkeys(statuses)) or "no leads"
    if "channel_id" in result:
        events = len(result.get("enabled") or []) + len(result.get("updated") or [])
        return f"channel {result['channel_id']} watching {events} event(s) until {result.get('channel_expiry')}"
    return "ok"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `make run` (pass options with ARGS="...")."""
    parser = argparse.ArgumentParser(prog="make run ARGS=...", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORTS["api"],
        help="port of the local HTTP API (default 3000; 0: "
        "any free port, and free ports for the embedded AWS and the sandbox too)",
    )
    parser.add_argument("--aws-port", type=int, help="port of the embedded AWS (default 3001)")
    parser.add_argument("--sandbox-port", type=int, help="port of the Unpod sandbox (default 3002)")
    parser.add_argument("--unpod-base-url", help="use this Unpod API instead of the sandbox (places REAL calls)")
    parser.add_argument(
        "--config",
        type=Path,
        help='JSON file: {"unpod": {api_token, space_token, org_handle, pilot}, "webhooks": {...}, "crm": {...}, '
        '"env": {...}} (see config.example.json)',
    )
    parser.add_argument(
        "--hubspot-api-base-url", help='real HubSpot API instead of the stand-in (needs "crm" in --config)'
    )
    parser.add_argument("--pipedrive-api-base-url", help='real Pipedrive API instead of the stand-in (needs "crm")')
    parser.add_argument(
        "--zoho-accounts-base-url", help='real Zoho accounts server instead of the stand-in (needs "crm")'
    )
    parser.add_argument("--public-url", help="public base URL used when verifying URL-bound signatures")
    parser.add_argument(
        "--demo", action="store_true", help="send the sample events even with --unpod-base-url (calls the samples)"
    )
    parser.add_argument("--no-demo", action="store_true", help="do not send the sample events at start")
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo (for scripts)")
    parser.add_argument(
        "--log-file",
        type=_optional_path,
        default=DEFAULT_LOG_FILE,
        help='the functions\' JSON logs (default local/.state/run.log; "" for the terminal)',
    )
    parser.add_argument(
        "--state-file",
        type=_optional_path,
        default=STATE_FILE,
        help="where `lead-caller --local` finds this stack (default local/.state/stack.json)",
    )
    return parser.parse_args(argv)


def _optional_path(text: str) -> Path | None:
    """A path; "" for none."""
    return Path(text) if text else None


class StartError(Exception):
    """A problem a person can fix, said in one line."""


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        raise StartError(f"--config {path}: {error.strerror}") from None
    except ValueError as error:
        raise StartError(f"--config {path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise StartError(f"--config {path} must be a JSON object (see config.example.json)")
    return config


def published_credentials(webhooks: Mapping[str, Any]) -> list[str]:
    """`source.key` of every configured webhook credential that is one of the published sample values."""
    published = {
        str(value)
        for credentials in LOCAL_WEBHOOK_SECRETS.values()
        for value in credentials.values()
        if isinstance(value, str) and len(value) >= 8
    }
    return [
        f"{source}.{key}"
        for source, credentials in webhooks.items()
        if isinstance(credentials, dict)
        for key, value in credentials.items()
        if isinstance(value, str) and value in published
    ]


def _ports(args: argparse.Namespace) -> tuple[int, int, int]:
    """(api, aws, sandbox) ports: the documented defaults, or all free ones with --port 0."""
    free = args.port == 0
    aws = args.aws_port if args.aws_port is not None else (0 if free else DEFAULT_PORTS["aws"])
    sandbox = args.sandbox_port if args.sandbox_port is not None else (0 if free else DEFAULT_PORTS["sandbox"])
    return args.port, aws, sandbox


def _check_port(port: int, option: str) -> None:
    """Fail in one line, with the fix, when a port is taken (a second `make run`, another server)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the servers do: connections of a stopped run (TIME_WAIT) do not make the port taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise StartError(
                f"port {port} ({option}) is already in use (another `make run`?): stop it, or pick free ports "
                'with make run ARGS="--port 0"'
            ) from None


def options_from(args: argparse.Namespace, config: Mapping[str, Any]) -> StackOptions:
    """StackOptions of the command line and --config; StartError when they are unsafe or incomplete."""
    real = bool(args.unpod_base_url)
    if real and not config.get("unpod"):
        raise StartError('--unpod-base-url needs --config with the Unpod credentials ("unpod": {...})')
    webhooks = config.get("webhooks")
    if webhooks is not None and not isinstance(webhooks, dict):
        raise StartError('--config "webhooks" must be an object of credentials by source')
    if real and webhooks and (published := published_credentials(webhooks)):
        raise StartError(
            f"--config webhooks {', '.join(published)}: these sample credentials are public; use your own "
            "with real calls"
        )
    api, aws, sandbox = _ports(args)
    crm_ports = (
        (0, 0, 0) if args.port == 0 else (DEFAULT_PORTS["hubspot"], DEFAULT_PORTS["pipedrive"], DEFAULT_PORTS["zoho"])
    )
    for port, option in ((api, "--port"), (aws, "--aws-port"), (sandbox, "--sandbox-port")):
        if option != "--sandbox-port" or not real:
            _check_port(port, option)
    for port, name, real_url in zip(
        crm_ports,
        ("HubSpot", "Pipedrive", "Zoho"),
        (args.hubspot_api_base_url, args.pipedrive_api_base_url, args.zoho_accounts_base_url),
        strict=True,
    ):
        if not real_url:
            _check_port(port, f"the {name} API stand-in")
    return StackOptions(
        port=api,
        aws_port=aws,
        sandbox_port=sandbox,
        crm_ports=crm_ports,
        unpod_base_url=args.unpod_base_url,
        unpod_secret=config.get("unpod"),
        webhook_secret=webhooks or None,
        crm_secret=config.get("crm"),
        hubspot_api_base_url=args.hubspot_api_base_url,
        pipedrive_api_base_url=args.pipedrive_api_base_url,
        zoho_accounts_base_url=args.zoho_accounts_base_url,
        environment={k: str(v) for k, v in (config.get("env") or {}).items()},
        public_url=args.public_url,
        simulate_calls=DEMO_CALLS,
    )


def banner(stack: LocalStack, log_file: Path | None = None) -> list[str]:
    """What `make run` prints first: where everything is, and whether calls are real."""
    assert stack.resources is not None
    endpoint = stack.aws_endpoint
    lines = [
        "lead-caller local stack",
        f"  API:           {stack.api_url}/webhooks/{{source}}",
        f"  embedded AWS:  {endpoint}  (AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"aws --region {REGION} --endpoint-url {endpoint} ...)",
        f"  table:         {stack.resources.table_name}",
        f"  queue:         {stack.resources.queue_url}",
    ]
    if stack.sandbox is not None:
        lines.append(f"  Unpod:         sandbox at {stack.sandbox.base_url} (no real calls)")
        lines.append(f"  sandbox admin: {stack.sandbox.admin_url}/config  (also /tasks, /runs, /requests)")
    else:
        lines.append(f"  Unpod:         {stack.environment.get('UNPOD_BASE_URL')}  *** REAL calls to real phones ***")
    for label, standin in (
        ("HubSpot", stack.hubspot_api),
        ("Pipedrive", stack.pipedrive_api),
        ("Zoho", stack.zoho_api),
    ):
        if standin is not None:
            lines.append(f"  {label + ' API:':<14} stand-in at {standin.base_url}")
    if stack.options.refuse_webhooks:
        lines.append('  webhooks:      REFUSED: no "webhooks" credentials in --config (sample ones are public)')
    elif stack.options.webhook_secret is None:
        lines.append(
            f"  generic auth:  Authorization: Bearer {LOCAL_BEARER_TOKEN}  or signing secret {LOCAL_SIGNING_SECRET}"
        )
    if log_file is not None:
        shown = log_file.relative_to(Path.cwd()) if log_file.is_relative_to(Path.cwd()) else log_file
        lines.append(f"  JSON logs:     {shown}  (the functions' logs and metrics, the full answers)")
    return lines


def state_of(stack: LocalStack) -> dict[str, Any]:
    """What `lead-caller --local` needs to find this stack (written to local/.state/stack.json)."""
    assert stack.resources is not None
    resources = stack.resources
    return {
        "api_url": stack.api_url,
        "aws_endpoint": stack.aws_endpoint,
        "region": REGION,
        "table_name": resources.table_name,
        "queue_url": resources.queue_url,
        "dlq_url": resources.dlq_url,
        "events_dlq_url": None,
        "unpod_secret_id": resources.unpod_secret_id,
        "webhook_secret_id": resources.webhook_secret_id,
        "crm_secret_id": resources.crm_secret_id,
        "unpod_base_url": stack.environment.get("UNPOD_BASE_URL"),
        "sandbox_admin_url": stack.sandbox.admin_url if stack.sandbox is not None else None,
        "public_url": stack.options.public_url,
        "real_calls": stack.sandbox is None,
        "pid": os.getpid(),
    }


@contextmanager
def logs_to(log_file: Path | None) -> Iterator[Any]:
    """Send the functions' JSON logs and metrics (Powertools writes both to stdout) to `log_file`.

    Yields the terminal's stream, for what `make run` says to the person; restores everything on exit.
    """
    terminal = sys.stdout
    if log_file is None:
        yield terminal
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    moved: list[logging.StreamHandler[Any]] = []
    with log_file.open("w", buffering=1) as handle:
        for name in ("lead-caller", *list(logging.root.manager.loggerDict)):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (terminal, sys.__stdout__):
                    handler.setStream(handle)
                    moved.append(handler)
        sys.stdout = handle
        try:
            yield terminal
        finally:
            sys.stdout = terminal
            for handler in moved:
                handler.setStream(terminal)


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run the demo (sandbox only, unless --demo), serve until Ctrl-C."""
    args = parse_args(argv)
    # Powertools warns when an invocation published no metric (a duplicate, a test delivery): noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        config = _load_config(args.config)
        options = options_from(args, config)
    except StartError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    with stop_signals(), logs_to(args.log_file) as terminal:
        return _serve(args, options, terminal)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl-C and `kill` stop the stack (state file removed); the previous handlers come back after.

    SIGINT is set explicitly: a process started with SIGINT ignored (`make run &` in a script, or
    by a parent that ignores it) would otherwise never see Ctrl-C; Python installs its handler
    only when the inherited one is the default. The handlers are restored so that a caller of
    `main()` (the tests run it in-process) keeps its own, not the "ignore" set while stopping.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _ignore_interrupts() -> None:
    """Stop taking Ctrl-C and SIGTERM (the stack is stopping already)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _serve(args: argparse.Namespace, options: StackOptions, terminal: Any) -> int:
    def say(line: str) -> None:
        print(line, file=terminal, flush=True)

    def detail(line: str) -> None:
        print(line, file=sys.stdout)

    stack = LocalStack(options)
    try:
        try:
            stack.start()
        except ConfigError as error:
            say(f'make run: invalid configuration: {error} (fix it in the "env" of --config)')
            return 2
        except OSError as error:
            say(f'make run: could not start: {error.strerror or error} (a port in use? try ARGS="--port 0")')
            return 2
        for line in banner(stack, args.log_file):
            say(line)
        _write_state(args.state_file, state_of(stack))
        real = stack.sandbox is None
        if args.demo or (not real and not args.no_demo):
            say("")
            run_demo(stack, say, detail)
        elif real:
            say("\nNo demo: with a real Unpod the samples are not sent (ask with --demo).")
        if args.exit_after_demo:
            return 0
        say("\nServing; press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        _ignore_interrupts()  # a second Ctrl-C (or kill) while stopping: no traceback
        stack.stop()
        if args.state_file:
            args.state_file.unlink(missing_ok=True)


def _write_state(path: Path | None, state: Mapping[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
