"""The whole of lead-caller on one machine, without AWS or Docker (`make run`).

* embedded AWS: a moto server on 127.0.0.1 with the table, queue + DLQ and
  secrets created from template.yaml (local/resources.py);
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
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import boto3
import urllib3
from moto.server import ThreadedMotoServer

from local.hubspot_api import HubSpotApiStandIn
from local.pipedrive_api import PipedriveApiStandIn
from local.resources import REGION, LocalResources, create_resources, function_environment, reset_embedded_aws
from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET, LOCAL_WEBHOOK_SECRETS, sign_request
from local.standin import LISTEN_BACKLOG
from local.unpod_sandbox import UnpodSandbox
from local.zoho_api import ZohoApiStandIn

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/", "application/xml")


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
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lower,
        "queryStringParameters": dict(parse_qsl(query, keep_blank_values=True)) or None,
        "pathParameters": {"source": parts[1]} if route != "$default" else None,
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
        self.moto: ThreadedMotoServer | None = None
        self.sandbox: UnpodSandbox | None = None
        self.hubspot_api: HubSpotApiStandIn | None = None
        self.pipedrive_api: PipedriveApiStandIn | None = None
        self.zoho_api: ZohoApiStandIn | None = None
        self.resources: LocalResources | None = None
        self.environment: dict[str, str] = {}
        self.http: ThreadingHTTPServer | None = None
        self._webhook: ModuleType | None = None
        self._dispatch: ModuleType | None = None
        self._events: ModuleType | None = None
        self._zoho_watch: ModuleType | None = None
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
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.options.aws_port, verbose=False)
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
        webhook_secret = self.options.webhook_secret or LOCAL_WEBHOOK_SECRETS
        crm_secret, crm_environment = self._start_crm_standins()
        max_receive = self.options.environment.get("MAX_RECEIVE_COUNT")
        self.resources = create_resources(
            endpoint,
            unpod_secret,
            webhook_secret,
            max_receive_count=int(max_receive) if max_receive else None,
            crm_secret=crm_secret,
        )
        overrides = {"UNPOD_BASE_URL": base_url, **crm_environment, **dict(self.options.environment)}
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
        return self

    def _start_crm_standins(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Start the HubSpot, Pipedrive and Zoho API stand-ins unless real base URLs are given.

        Returns the CRM secret document and the environment pointing the dispatcher at them.
        """
        crm_secret: dict[str, Any] = {k: dict(v) for k, v in (self.options.crm_secret or {}).items()}
        environment: dict[str, str] = {}
        if self.options.hubspot_api_base_url:
            environment["HUBSPOT_API_BASE_URL"] = self.options.hubspot_api_base_url
        else:
            self.hubspot_api = HubSpotApiStandIn().start()
            environment["HUBSPOT_API_BASE_URL"] = self.hubspot_api.base_url
            crm_secret.setdefault("hubspot", {"access_token": self.hubspot_api.access_token})
        if self.options.pipedrive_api_base_url:
            environment["PIPEDRIVE_API_BASE_URL"] = self.options.pipedrive_api_base_url
        else:
            self.pipedrive_api = PipedriveApiStandIn().start()
            environment["PIPEDRIVE_API_BASE_URL"] = self.pipedrive_api.base_url
            crm_secret.setdefault("pipedrive", {"api_token": self.pipedrive_api.api_token})
        if self.options.zoho_accounts_base_url:
            environment["ZOHO_ACCOUNTS_BASE_URL"] = self.options.zoho_accounts_base_url
        else:
            self.zoho_api = ZohoApiStandIn().start()
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
        return crm_secret, environment

    def stop(self) -> None:
        """Stop everything and restore the process environment."""
        self._stop.set()
        if self._poller:
            self._poller.join(timeout=self.options.poll_wait_seconds + 5)
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        for standin in (self.hubspot_api, self.pipedrive_api, self.zoho_api):
            if standin is not None:
                standin.stop()
        if self.sandbox:
            self.sandbox.stop()
        if self.moto:
            self.moto.stop()
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
        for name in ("webhook", "dispatch", "events", "zoho_watch"):
            module_name = f"lead_caller.handlers.{name}"
            module = sys.modules.get(module_name)
            loaded = importlib.reload(module) if module else importlib.import_module(module_name)
            setattr(self, f"_{name}", loaded)

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
        """A boto3 client for the embedded AWS."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        )

    # ---- the two functions -----------------------------------------------------------
    def invoke_webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the webhook handler on an API Gateway v2 event."""
        assert self._webhook is not None
        with self._lock:
            result: dict[str, Any] = self._webhook.handler(
                event, LambdaContextStub("WebhookFunction", timeout_seconds=10)
            )
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
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = api_gateway_event(self.command, path, query, headers, body, headers.get("host", "localhost"))
                try:
                    result = stack.invoke_webhook(event)
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
        threading.Thread(target=self.http.serve_forever, name="local-http-api", daemon=True).start()

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
        for message in messages:
            if message["MessageId"] in failed:
                # Lambda leaves failed messages invisible for the queue's visibility timeout
                # (360 s deployed); locally they come back after a short delay.
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
        signed = sign_request(source, "POST", url, headers, raw, secrets)
        requests.append((path.stem, raw_path + (f"?{query}" if query else ""), raw, signed))
    return requests


def _masked(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in ("authorization", "org-handle") else v) for k, v in headers.items()}


def run_demo(stack: LocalStack, say: Callable[[str], None] = print) -> None:
    """Send every sample event through the stack and print what happened."""
    for name, path, body, headers in demo_requests(stack):
        status, payload = stack.post(path, body, headers)
        say(f"\n=== {name}: POST {path} -> HTTP {status}")
        say(json.dumps(payload, indent=2))
    say("\n=== Zoho watch renewal (the scheduled ZohoWatchFunction)")
    say(json.dumps(stack.renew_zoho_watch(), indent=2))
    for sample_file in sorted(EVENTS.glob("eventbridge-*.json")):
        sample = json.loads(sample_file.read_text())
        say(f"\n=== {sample_file.stem}: EventBridge {sample.get('source')} / {sample.get('detail-type')}")
        say(json.dumps(stack.put_event(sample), indent=2))
    stack.wait_idle(timeout=30)
    if stack.sandbox is not None:
        say(f"\n=== the Unpod sandbox received {len(stack.sandbox.requests)} Create Task request(s)")
        for request in stack.sandbox.requests:
            say(f"--- {request['method']} {request['path']} -> HTTP {request['status']}")
            say(json.dumps({"headers": _masked(request["headers"]), "body": request["json"]}, indent=2))
    say("\n=== DynamoDB items (table lead-caller-leads)")
    assert stack.resources is not None
    scanned = stack.client("dynamodb").scan(TableName=stack.resources.table_name).get("Items", [])
    for raw in scanned:
        lead = stack.lead(raw["pk"]["S"])
        say(json.dumps(lead, indent=2, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `make run` (pass options with ARGS="...")."""
    parser = argparse.ArgumentParser(prog="make run ARGS=...", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--port", type=int, default=3000, help="port of the local HTTP API (default 3000)")
    parser.add_argument("--aws-port", type=int, default=0, help="port of the embedded AWS (default: any free one)")
    parser.add_argument("--sandbox-port", type=int, default=0, help="port of the Unpod sandbox (default: any free)")
    parser.add_argument("--unpod-base-url", help="use this Unpod API instead of the sandbox (places real calls)")
    parser.add_argument(
        "--config",
        type=Path,
        help='JSON file: {"unpod": {api_token, space_token, org_handle, pilot}, "webhooks": {...}, "crm": {...}, '
        '"env": {...}}',
    )
    parser.add_argument(
        "--hubspot-api-base-url", help='real HubSpot API instead of the stand-in (needs "crm" in --config)'
    )
    parser.add_argument("--pipedrive-api-base-url", help='real Pipedrive API instead of the stand-in (needs "crm")')
    parser.add_argument(
        "--zoho-accounts-base-url", help='real Zoho accounts server instead of the stand-in (needs "crm")'
    )
    parser.add_argument("--public-url", help="public base URL used when verifying URL-bound signatures")
    parser.add_argument("--no-demo", action="store_true", help="do not send the sample events at start")
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo (for scripts)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run the demo, serve until Ctrl-C."""
    args = parse_args(argv)
    config: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    if args.unpod_base_url and not config.get("unpod"):
        print('--unpod-base-url needs --config with the Unpod credentials ("unpod": {...})', file=sys.stderr)
        return 2
    options = StackOptions(
        port=args.port,
        aws_port=args.aws_port,
        sandbox_port=args.sandbox_port,
        unpod_base_url=args.unpod_base_url,
        unpod_secret=config.get("unpod"),
        webhook_secret=config.get("webhooks"),
        crm_secret=config.get("crm"),
        hubspot_api_base_url=args.hubspot_api_base_url,
        pipedrive_api_base_url=args.pipedrive_api_base_url,
        zoho_accounts_base_url=args.zoho_accounts_base_url,
        environment={k: str(v) for k, v in (config.get("env") or {}).items()},
        public_url=args.public_url,
    )
    stack = LocalStack(options).start()
    assert stack.resources is not None
    try:
        print("lead-caller local stack")
        print(f"  API:          {stack.api_url}/webhooks/{{source}}")
        print(f"  embedded AWS: {stack.aws_endpoint}  (aws --endpoint-url {stack.aws_endpoint} ...)")
        print(f"  table:        {stack.resources.table_name}")
        print(f"  queue:        {stack.resources.queue_url}")
        if stack.sandbox is not None:
            print(f"  Unpod:        sandbox at {stack.sandbox.base_url} (admin: {stack.sandbox.admin_url})")
        if stack.hubspot_api is not None:
            print(f"  HubSpot API:  stand-in at {stack.hubspot_api.base_url}")
        if stack.pipedrive_api is not None:
            print(f"  Pipedrive API: stand-in at {stack.pipedrive_api.base_url}")
        if stack.zoho_api is not None:
            print(f"  Zoho API:     stand-in at {stack.zoho_api.base_url}")
        else:
            print(f"  Unpod:        {args.unpod_base_url} (REAL calls)")
        if not config.get("webhooks"):
            print(
                f"  generic auth: Authorization: Bearer {LOCAL_BEARER_TOKEN}  or signing secret {LOCAL_SIGNING_SECRET}"
            )
        if not args.no_demo:
            run_demo(stack)
        if args.exit_after_demo:
            return 0
        print("\nServing; press Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
