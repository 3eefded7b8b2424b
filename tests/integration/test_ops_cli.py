"""`lead-caller` against the local stack (`--local`, through make run's state file)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lead_caller.leads import LeadMessage
from local.signing import LOCAL_BEARER_TOKEN
from local.stack import LocalStack, StackOptions, state_of
from ops.cli import main

pytestmark = pytest.mark.integration
BEARER = {"content-type": "application/json", "authorization": f"Bearer {LOCAL_BEARER_TOKEN}"}


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """Overrides the unit-test fixture: the stack owns the environment here."""


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(port=0, retry_delay_seconds=1)) as running:
        yield running


@pytest.fixture(scope="module")
def state_file(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "stack.json"
    path.write_text(json.dumps(state_of(stack)))
    return path


@pytest.fixture
def cli(state_file: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> tuple[int, str]:
        command, *rest = args
        if command in ("secrets", "suppress"):  # target options belong to the action
            code = main([command, *rest[:1], "--local", "--state-file", str(state_file), *rest[1:]])
        else:
            code = main([command, "--local", "--state-file", str(state_file), *rest])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.fixture
def unpod_secret(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """The Unpod secret as the stack made it; restored after the test."""
    assert stack.resources is not None
    client = stack.client("secretsmanager")
    original = client.get_secret_value(SecretId=stack.resources.unpod_secret_id)["SecretString"]
    yield json.loads(original)
    client.put_secret_value(SecretId=stack.resources.unpod_secret_id, SecretString=original)
    assert stack.sandbox is not None
    stack.sandbox.agent_states.clear()


def _fails(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FAIL")]


def _post_lead(stack: LocalStack, phone: str = "+1 512 555 0142") -> str:
    record = f"ops-{uuid.uuid4().hex[:10]}"
    body = {"id": record, "first_name": "Ops", "last_name": "Test", "phone": phone}
    status, _ = stack.post("/webhooks/generic", json.dumps(body).encode(), BEARER)
    assert status == 202
    assert stack.wait_idle()
    return record


def test_doctor_passes_on_the_local_stack_and_its_test_delivery_queues_nothing(stack, cli):
    assert stack.sandbox is not None
    stack.sandbox.reset()

    code, out = cli("doctor")

    assert code == 0, out
    assert _fails(out) == []
    assert "PASS unpod pilot: 'sandbox-agent' exists and is published" in out
    assert re.search(r"^PASS test delivery: http://127\.0\.0\.1:\d+/webhooks/generic authenticated it", out, re.M)
    assert stack.wait_idle()
    assert stack.sandbox.requests == []  # no call placed


def test_doctor_reports_a_wrong_pilot_in_one_line(cli, unpod_secret):
    assert cli("secrets", "set", "unpod", "pilot=no-such-agent")[0] == 0

    code, out = cli("doctor", "--skip-delivery")

    assert code == 1
    assert _fails(out) == ["FAIL unpod pilot: 'no-such-agent' not found (agents: sandbox-agent)"]


def test_doctor_reports_an_unpublished_pilot_in_one_line(stack, cli, unpod_secret):
    stack.sandbox.agent_states[unpod_secret["pilot"]] = "draft"

    code, out = cli("doctor", "--skip-delivery")

    assert code == 1
    assert _fails(out) == ["FAIL unpod pilot: 'sandbox-agent' is draft, not published: publish it in Unpod"]


def test_doctor_reports_a_wrong_space_token_in_one_line(cli, unpod_secret):
    assert cli("secrets", "set", "unpod", "space_token=WRONGSPACE000000")[0] == 0

    code, out = cli("doctor", "--skip-delivery")

    assert code == 1
    assert _fails(out) == ["FAIL unpod space_token: WRON... is not a space of this organization (1 space(s))"]


def test_doctor_reports_a_wrong_token_in_one_line(cli, unpod_secret):
    assert cli("secrets", "set", "unpod", "api_token=not-the-token")[0] == 0

    code, out = cli("doctor", "--skip-delivery")

    assert code == 1
    assert len(_fails(out)) == 1
    assert _fails(out)[0].startswith("FAIL unpod token: rejected by Unpod (HTTP 401")


def test_doctor_reports_a_missing_secret_key_in_one_line(stack, cli, unpod_secret):
    without_pilot = {k: v for k, v in unpod_secret.items() if k != "pilot"}
    stack.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.unpod_secret_id, SecretString=json.dumps(without_pilot)
    )

    code, out = cli("doctor", "--skip-delivery")

    assert code == 1
    assert _fails(out)[0] == "FAIL unpod secret keys: lacks pilot"


def test_secrets_set_merges_validates_and_never_prints_values(stack, cli):
    client = stack.client("secretsmanager")
    secret_id = stack.resources.webhook_secret_id
    original = client.get_secret_value(SecretId=secret_id)["SecretString"]
    try:
        code, out = cli("secrets", "set", "hubspot", "portal_id:=99", "api_key=a-new-long-key-0123456789")
        assert code == 0, out
        assert "a-new-long-key" not in out
        document = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
        assert document["hubspot"]["portal_id"] == 99
        assert document["hubspot"]["client_secret"]  # kept
        assert document["generic"] == json.loads(original)["generic"]  # other sources kept

        code, out = cli("secrets", "set", "hubspot", "clientsecret=x")
        assert code == 2
        assert "unknown key(s) clientsecret" in out
        code, out = cli("secrets", "set", "nosuch", "a=b")
        assert code == 2
        assert "unknown source 'nosuch'" in out

        # Unpod's agent webhook token goes under "unpod" in the webhooks secret, not the Unpod secret
        code, out = cli("secrets", "set", "agent-webhook", "agent_webhook_token=tok-0123456789abcdef")
        assert code == 0, out
        assert "tok-0123456789abcdef" not in out
        document = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
        assert document["unpod"]["agent_webhook_token"] == "tok-0123456789abcdef"
        assert document["hubspot"]["portal_id"] == 99  # kept
    finally:
        client.put_secret_value(SecretId=secret_id, SecretString=original)


def test_status_finds_a_lead_by_id_record_and_phone(stack, cli):
    record = _post_lead(stack, "+1 512 555 0199")

    # the number as stored, with the international prefix 00, and national (the default region, US)
    for key in (f"generic#{record}", record, "+15125550199", "001 512 555 0199", "(512) 555-0199"):
        code, out = cli("status", key)
        assert code == 0, (key, out)
        assert f"lead generic#{record}" in out
        assert "call_requested" in out
        assert "Unpod accepted" in out
        assert "5125550199" not in out  # masked
    code, out = cli("status", record, "--json")
    items = json.loads(out)
    assert items[0]["status"] == "call_requested"
    assert items[0]["document"]["contact_number"] == "***"
    assert cli("status", "no-such-record")[0] == 1


def test_leads_lists_by_status_in_pages(stack, cli):
    records = {_post_lead(stack, f"+1 512 555 01{n:02d}") for n in (10, 11)}

    code, out = cli("leads", "--status", "call_requested", "--since", "1h", "--limit", "1")
    assert code == 0
    token = re.search(r"--page (\S+)", out)
    assert token, out
    code, second = cli("leads", "--status", "call_requested", "--since", "1h", "--limit", "1", "--page", token[1])
    assert code == 0
    assert out.splitlines()[1] != second.splitlines()[1]
    code, out = cli("leads", "--status", "call_requested", "--since", "1h", "--limit", "100", "--json")
    listed = {json.loads(line)["record_id"] for line in out.splitlines() if line.startswith("{")}
    assert records <= listed


def test_replay_dry_run_changes_nothing_then_replays_once(stack, cli):
    assert stack.resources is not None
    sqs = stack.client("sqs")
    fresh = f"dlq-{uuid.uuid4().hex[:8]}"
    called = _post_lead(stack)
    calls_before = len(stack.sandbox.requests)
    for record in (fresh, called):
        message = {
            "v": 1,
            "source": "generic",
            "record_id": record,
            "received_at": 1.0,
            "document": {"document_id": record, "name": "Dlq Test", "contact_number": "+15125550177"},
            "routing": {},
        }
        message = json.loads(LeadMessage.from_json(json.dumps(message)).to_json())
        sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=json.dumps(message))

    code, out = cli("replay", "--dry-run", "--queue", "leads")
    assert code == 0
    assert "leads DLQ: 2 message(s) (dry run: nothing re-sent)" in out
    assert re.search(rf"generic#{fresh} +no record .*re-send", out)
    assert re.search(rf"generic#{called} +call_requested .*remove \(already called\)", out)
    code, again = cli("replay", "--dry-run", "--queue", "leads")
    assert "leads DLQ: 2 message(s)" in again  # the dry run left them

    code, out = cli("replay", "--queue", "leads")
    assert code == 0
    assert "leads DLQ: 2 handled (1 re-sent)" in out
    assert stack.wait_idle()
    assert stack.lead(f"generic#{fresh}")["status"] == "call_requested"
    assert len(stack.sandbox.requests) == calls_before + 1  # the called lead was not called again
    code, out = cli("replay", "--queue", "leads")
    assert "leads DLQ: 0 message(s)" in out


def test_smoke_places_one_test_call_through_the_stack(stack, cli):
    code, out = cli("smoke", "--dry-run")
    assert code == 0, out
    assert "smoke: PASS (dry run: no lead sent)" in out

    code, out = cli("smoke", "--phone", "+1 512 555 0188", "--wait", "30")
    assert code == 0, out
    assert re.search(r"lead generic#smoke-\w+: call_requested", out)


def test_no_target_is_one_line_with_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LEAD_CALLER_STACK", raising=False)

    code = main(["leads", "--state-file", str(tmp_path / "none.json")])

    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "lead-caller: which stack? give --stack NAME (a deployed stack) or --local (start it with `make run`)"
    )


def test_suppress_through_the_command_keeps_a_number_from_being_called(stack, cli, tmp_path):
    assert stack.sandbox is not None
    code, out = cli("suppress", "add", "(512) 555-0166", "--phone-region", "US")
    assert code == 0, out
    assert "added to the do-not-call list" in out
    assert "555" not in out

    record = _post_lead(stack, "+1 512 555 0166")
    lead = stack.lead(f"generic#{record}")
    assert lead is not None
    assert lead["status"] == "suppressed"
    assert "do-not-call list" in str(lead["reason"])
    assert not [r for r in stack.sandbox.requests if "5125550166" in json.dumps(r.get("json"))]

    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("phone\n+44 20 7946 0958\nnot a number\n", encoding="utf-8")
    code, out = cli("suppress", "import", str(csv_file))
    assert code == 2  # one invalid line is reported
    assert "added 1, already listed 0, invalid 1" in out
    assert cli("suppress", "remove", "+15125550166")[0] == 0
