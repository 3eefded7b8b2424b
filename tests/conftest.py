"""Shared fixtures: the Unpod sandbox over real HTTP, moto for AWS, ready-made settings."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

import local  # noqa: F401 - puts src/ on sys.path
from lead_caller.config import Settings
from lead_caller.dispatcher import Dispatcher
from lead_caller.store import LeadStore
from lead_caller.unpod import UnpodClient, UnpodCredentials
from local.moto_transactions import install as install_moto_transactions
from local.resources import LocalResources, create_resources
from local.signing import LOCAL_BEARER_TOKEN, LOCAL_SIGNING_SECRET
from local.unpod_sandbox import UnpodSandbox
from tests.ordering import spread_long_modules

REGION = "us-east-1"


def _share_botocore_models() -> None:
    """Load each botocore JSON model, and list botocore's data directories, once per test process.

    moto's `mock_aws` starts every test with a fresh boto3 session, whose loader would parse
    the same service models again (about 0.1 s per test, most of the unit suite's time).
    The parsed models are read-only for botocore, so one copy per process is safe.
    """
    original = botocore.loaders.JSONFileLoader.load_file
    cache: dict[tuple[str, str | None], Any] = {}

    def load_file(self: Any, file_path: str, *args: Any, **kwargs: Any) -> Any:
        key = (file_path, repr((args, kwargs)))
        if key not in cache:
            cache[key] = original(self, file_path, *args, **kwargs)
        return cache[key]

    botocore.loaders.JSONFileLoader.load_file = load_file  # type: ignore[method-assign]

    # moto starts each test with a new boto3 session, hence a new botocore Loader, which would
    # list the data directories again (thousands of stat/listdir calls, ~10 ms per client): the
    # Loader's own per-instance cache of listings and models is shared by every Loader with the
    # same search paths and extras instead.
    shared: dict[tuple[Any, ...], Any] = {}

    class SharedCache:
        def __init__(self, loader: botocore.loaders.Loader) -> None:
            self.loader = loader

        def _key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
            return (tuple(self.loader.search_paths), tuple(self.loader.extras_types), *key)

        def __contains__(self, key: tuple[Any, ...]) -> bool:
            return self._key(key) in shared

        def __getitem__(self, key: tuple[Any, ...]) -> Any:
            return shared[self._key(key)]

        def __setitem__(self, key: tuple[Any, ...], value: Any) -> None:
            shared[self._key(key)] = value

    original_init = botocore.loaders.Loader.__init__

    def init(self: botocore.loaders.Loader, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._cache = SharedCache(self)  # type: ignore[attr-defined]

    botocore.loaders.Loader.__init__ = init  # type: ignore[method-assign]


_share_botocore_models()
install_moto_transactions()  # moto's TransactWriteItems without a deep copy of the table per item

#: local-stack modules that take longest (mostly waiting on simulated calls): started first
_LONGEST_MODULES = ("test_outcomes_stack.py", "test_make_run.py", "test_local_stack.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In parallel runs, spread the integration modules evenly through the unit tests.

    They mostly wait (simulated calls, pollers, a `make run` subprocess) while the unit tests
    keep the CPUs busy. Collected last, they ran together at the end, one module per worker
    and the CPUs half idle (`make test` on 2 cores: ~4 s of its ~60 s). Each module stays in
    one block, so its local stack (a module fixture) starts once. The order is the same in
    every xdist worker, as xdist requires.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    items[:] = spread_long_modules(
        items,
        lambda item: item.path.name if item.get_closest_marker("integration") else None,
        _LONGEST_MODULES,
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1),
    )


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reaches real AWS; secrets caches never leak between tests."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "lead-caller",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    parameters.clear_caches()
    yield
    parameters.clear_caches()


@pytest.fixture
def sandbox() -> Iterator[UnpodSandbox]:
    """A fresh Unpod sandbox on 127.0.0.1."""
    with UnpodSandbox() as running:
        yield running


@pytest.fixture
def credentials(sandbox: UnpodSandbox) -> UnpodCredentials:
    """Credentials the sandbox accepts."""
    return UnpodCredentials(
        api_token=sandbox.api_token,
        space_token=sandbox.space_token,
        org_handle=sandbox.org_handle,
        pilot=sandbox.pilots[0],
    )


def fast_client(base_url: str, **overrides: Any) -> UnpodClient:
    """An Unpod client with test-sized timeouts and backoff."""
    options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": 1.0,
        "max_retries": 2,
        "max_retry_after": 0.2,
        "backoff_factor": 0.01,
    }
    options.update(overrides)
    return UnpodClient(base_url, **options)


@pytest.fixture
def client(sandbox: UnpodSandbox) -> UnpodClient:
    """An Unpod client pointed at the sandbox."""
    return fast_client(sandbox.base_url)


@pytest.fixture
def aws(sandbox: UnpodSandbox) -> Iterator[LocalResources]:
    """moto (in-process) holding the table, queues and secrets of template.yaml."""
    with mock_aws():
        resources = create_resources(
            None,
            unpod_secret={
                "api_token": sandbox.api_token,
                "space_token": sandbox.space_token,
                "org_handle": sandbox.org_handle,
                "pilot": sandbox.pilots[0],
            },
            webhook_secret={"generic": {"signing_secret": LOCAL_SIGNING_SECRET, "bearer_token": LOCAL_BEARER_TOKEN}},
        )
        yield resources


@pytest.fixture
def settings(aws: LocalResources, sandbox: UnpodSandbox) -> Settings:
    """Settings pointing at the moto resources and the sandbox."""
    return Settings(
        table_name=aws.table_name,
        queue_url=aws.queue_url,
        unpod_secret_id=aws.unpod_secret_id,
        webhook_secret_id=aws.webhook_secret_id,
        unpod_base_url=sandbox.base_url,
        max_receive_count=3,
        # calls "now" whatever the hour the tests run at; tests/unit/test_policy*.py turn these on
        calling_policy={"enforce_hours": False, "dedupe_by_phone": False},
    )


@pytest.fixture
def store(settings: Settings) -> LeadStore:
    """The lead store on moto."""
    return LeadStore(boto3.client("dynamodb"), settings.table_name, settings.dedupe_window_seconds)


@pytest.fixture
def dispatcher(settings: Settings, store: LeadStore, client: UnpodClient, credentials: UnpodCredentials) -> Dispatcher:
    """A dispatcher wired to moto and the sandbox."""
    return Dispatcher(settings, store, client, lambda: credentials)


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Everything logged (Powertools JSON lines included) or printed during a test, as one string,
    pending metrics included: reading it writes their line first, as a handler's end does.

    Call the fixture value to read it.
    """
    from lead_caller.observability import logger, metrics

    caplog.set_level(logging.INFO)  # what Lambda's runtime logs; botocore's DEBUG wire dumps are off there
    caplog.set_level(logging.DEBUG, logger="lead-caller")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous_level = logger.log_level
    logger.setLevel("DEBUG")

    def text() -> str:
        if metrics.metric_set:  # the delivery's line (metrics and what happened to its leads)
            metrics.flush_metrics()
        out, err = capsys.readouterr()
        return "\n".join([stream.getvalue(), out, err, caplog.text])

    yield text
    logger.removeHandler(handler)  # type: ignore[attr-defined]
    logger.setLevel(previous_level)
