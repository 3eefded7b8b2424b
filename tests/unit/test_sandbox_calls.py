"""The Unpod sandbox's call simulation over real HTTP: tasks progress by themselves, are served on the
runs/tasks endpoints and POSTed to an agent webhook with delivery faults."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from local.outcome_loops import wait_until
from local.unpod_sandbox import UnpodSandbox

HEADERS = {"Authorization": "Token sandbox-api-token", "Content-Type": "application/json"}


class Receiver:
    """A local agent-webhook endpoint that records what it is sent and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/unpod/calls"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


def create(sandbox: UnpodSandbox, *document_ids: str) -> dict[str, Any]:
    documents = [{"name": "Ada", "contact_number": "+15125550142", "document_id": d} for d in document_ids]
    body = {"pilot": "sandbox-agent", "documents": documents, "context": "Call", "schedule": {"type": "now"}}
    url = f"{sandbox.base_url}/spaces/{sandbox.space_token}/tasks/create/"
    response = urllib3.request("POST", url, body=json.dumps(body).encode(), headers=HEADERS)
    data: dict[str, Any] = json.loads(response.data)["data"]
    return data


def run_tasks(sandbox: UnpodSandbox, run_id: str, page_size: int = 100, page: int = 1) -> dict[str, Any]:
    url = f"{sandbox.base_url}/spaces/{sandbox.space_token}/runs/{run_id}/tasks/?page={page}&page_size={page_size}"
    result: dict[str, Any] = json.loads(urllib3.request("GET", url, headers=HEADERS).data)
    return result


def test_tasks_end_by_themselves_and_are_posted_to_the_agent_webhook(sandbox, receiver):
    sandbox.calls.configure(
        delay_seconds=0.4,
        mix=["answered", "no_answer", "busy", "failed"],
        webhook_url=receiver.url,
        webhook_headers={"x-lead-caller-token": "tok"},
    )
    run = create(sandbox, "d1", "d2", "d3", "d4")

    assert wait_until(lambda: len(receiver.received) == 4, timeout=10)
    tasks = {t["ref_id"]: t for t in run_tasks(sandbox, run["run_id"])["data"]}
    assert {ref: (t["status"], t["output"]["call_status"]) for ref, t in tasks.items()} == {
        "d1": ("completed", "completed"),
        "d2": ("completed", "no_answer"),
        "d3": ("completed", "busy"),
        "d4": ("failed", "failed"),
    }
    assert tasks["d1"]["output"]["post_call_data"]["summary"]
    assert tasks["d1"]["output"]["transcript"]
    headers, body = receiver.received[0]
    assert headers["x-lead-caller-token"] == "tok"
    assert body["task_id"] in run["task_ids"]
    # paged like the real endpoint
    assert [len(run_tasks(sandbox, run["run_id"], 3, page)["data"]) for page in (1, 2)] == [3, 1]


def test_delivery_faults_duplicate_out_of_order_drop_and_retries(sandbox, receiver):
    sandbox.calls.configure(delay_seconds=0.2, webhook_url=receiver.url, faults=["duplicate", "out_of_order", "drop"])
    create(sandbox, "a")
    assert wait_until(lambda: len(receiver.received) == 2, timeout=10)
    create(sandbox, "b")
    assert wait_until(lambda: len(receiver.received) == 4, timeout=10)
    create(sandbox, "c")
    assert wait_until(lambda: len(sandbox.webhook_deliveries) == 5, timeout=10)

    statuses = [body["status"] for _, body in receiver.received]
    assert statuses == ["completed", "completed", "completed", "in_progress"]
    assert sandbox.webhook_deliveries[-1]["fault"] == "drop"
    assert len(receiver.received) == 4

    receiver.status = 500
    create(sandbox, "d")
    assert wait_until(lambda: len(receiver.received) == 8, timeout=10)  # the first try and 3 retries
    assert sandbox.webhook_deliveries[-1]["answer"] == 500


def test_the_admin_api_configures_the_simulation(sandbox):
    url = sandbox.admin_url + "/calls"
    bad = urllib3.request("POST", url, body=b'{"mix": ["teleported"]}')
    assert bad.status == 400
    good = urllib3.request("POST", url, body=b'{"mix": ["busy"], "delay_seconds": 1, "default_fault": "drop"}')
    assert good.status == 200
    view = json.loads(good.data)
    assert (view["enabled"], view["mix"], view["default_fault"]) == (True, ["busy"], "drop")
