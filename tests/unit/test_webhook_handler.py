"""The webhook handler's translation of API Gateway v2 events: raw bytes, headers, public URL, routing."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.stack import LambdaContextStub, api_gateway_event
from tests.lambda_like import lambda_like_environment

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def webhook() -> ModuleType:
    """The handler module, imported after the test environment is in place."""
    return importlib.import_module("lead_caller.handlers.webhook")


def event(body: bytes, content_type: str = "application/json", **changes: Any) -> dict[str, Any]:
    built = api_gateway_event("POST", "/webhooks/generic", "", {"content-type": content_type}, body, "api.example.com")
    built.update(changes)
    return built


def test_base64_bodies_are_decoded_to_the_exact_bytes(webhook):
    raw = b"\x00\xffbinary\r\n"
    request = webhook.webhook_request(event(raw, "application/octet-stream"), "generic", public_base_url=None)

    assert request.body == raw


def test_text_bodies_are_kept_byte_for_byte(webhook):
    raw = '{"name": "Zoë",  "phone":"+1 512 555 0142"}\n'.encode()
    request = webhook.webhook_request(event(raw), "generic", public_base_url=None)

    assert request.body == raw


def test_public_url_comes_from_the_host_header_or_the_configured_base(webhook):
    built = event(b"{}", rawQueryString="a=1&b=2")

    from_host = webhook.webhook_request(built, "generic", public_base_url=None)
    configured = webhook.webhook_request(built, "generic", public_base_url="https://hooks.example.org")

    assert from_host.public_url == "https://api.example.com/webhooks/generic?a=1&b=2"
    assert configured.public_url == "https://hooks.example.org/webhooks/generic?a=1&b=2"
    assert from_host.headers["content-type"] == "application/json"
    assert from_host.method == "POST"


def test_received_at_is_api_gateways_request_time(webhook):
    built = event(b"{}")
    built["requestContext"]["timeEpoch"] = 1767225600123

    assert webhook.webhook_request(built, "generic", None).received_at == pytest.approx(1767225600.123)


def test_other_routes_and_methods_get_a_json_404(webhook):
    get = api_gateway_event("GET", "/webhooks/generic", "", {}, b"", "api.example.com")
    elsewhere = api_gateway_event("POST", "/admin", "", {}, b"", "api.example.com")

    for request in (get, elsewhere):
        response = webhook.handler(request, LambdaContextStub("WebhookFunction"))
        assert response["statusCode"] == 404
        assert json.loads(response["body"])["error"] == "not_found"


def test_an_answer_without_metrics_writes_no_powertools_warning_to_the_logs():
    """A 404 (or a refused payload, or `lead-caller doctor`'s test delivery) adds no metric: expected
    here, so Powertools' "No application metrics to publish" warning would only be noise. Checked in
    a fresh interpreter, whose stderr is what Lambda logs (pytest resets warning filters per test)."""
    code = (
        "from lead_caller.handlers import webhook\n"
        "context = type('Context', (), {'function_name': 'f', 'memory_limit_in_mb': 512, "
        "'invoked_function_arn': 'arn', 'aws_request_id': 'r'})()\n"
        "for _ in range(2):\n"
        "    webhook.handler({'rawPath': '/nowhere', 'requestContext': {'http': {'method': 'GET'}}}, context)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=lambda_like_environment(POWERTOOLS_TRACE_DISABLED="true"),  # the template's default
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""


def test_a_bug_answers_500_json_without_a_stack_trace(webhook, monkeypatch):
    def broken(_: Any) -> Any:
        raise RuntimeError("secret detail: +15125550142")

    monkeypatch.setattr(webhook.intake, "handle", broken)

    response = webhook.handler(event(b"{}"), LambdaContextStub("WebhookFunction"))

    assert response["statusCode"] == 500
    body = json.loads(response["body"])
    assert body["error"] == "internal"
    assert "Traceback" not in response["body"]
    assert "+15125550142" not in response["body"]


def test_a_body_with_a_lone_surrogate_is_bad_input_not_a_500(webhook):
    built = event(b"{}")
    built["body"] = '{"name": "\ud800"}'

    request = webhook.webhook_request(built, "generic", public_base_url=None)
    response = webhook.handler(built, LambdaContextStub("WebhookFunction"))

    assert request.body == b'{"name": "\xed\xa0\x80"}'
    assert response["statusCode"] != 500  # the intake answers it (here: no secret to read, 503)
    assert json.loads(response["body"])["error"] != "internal"


def test_a_delivery_line_names_api_gateways_request_id_and_the_invocation(webhook, settings, monkeypatch, capsys):
    """The correlation id (API Gateway's `requestContext.requestId`) and Lambda's request id are in the
    one line a delivery writes, so it joins the sender's request and the invocation's other lines."""
    import boto3

    from lead_caller.intake import Intake
    from lead_caller.queue import LeadQueue
    from lead_caller.secrets import webhook_credentials
    from lead_caller.store import LeadStore
    from local.signing import LOCAL_BEARER_TOKEN

    wired = Intake(
        settings=settings,
        store=LeadStore(boto3.client("dynamodb"), settings.table_name),
        queue=LeadQueue(boto3.client("sqs"), settings.queue_url),
        credentials=lambda source: webhook_credentials(settings, source),
    )
    monkeypatch.setattr(webhook, "intake", wired)
    body = json.dumps({"id": "corr-1", "name": "Maria Gonzalez", "phone": "+1 512 555 0142"}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}
    built = api_gateway_event("POST", "/webhooks/generic", "", headers, body, "api.example.com")
    built["requestContext"]["requestId"] = "api-gw-request-42"
    context = LambdaContextStub("WebhookFunction", aws_request_id="lambda-request-7")
    capsys.readouterr()

    response = webhook.handler(built, context)

    assert response["statusCode"] == 202
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.startswith('{"_aws"')]
    assert line["correlation_id"] == "api-gw-request-42"
    assert line["function_request_id"] == "lambda-request-7"
    assert line["lead_ids"] == ["generic#corr-1"]
    documented = json.loads(OPERATIONS.read_text().split("## Logs", 1)[1].split("```json\n", 1)[1].split("```", 1)[0])
    assert set(documented) == set(line)  # docs/operations.md shows the line as the handler writes it
    assert documented["_aws"]["CloudWatchMetrics"][0]["Metrics"] == line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
