"""The fault-matrix table is built from test reports, so it is whole under pytest-xdist too."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from tests.faults import conftest


def _report(nodeid: str, when: str, properties: list[tuple[str, Any]]) -> Any:
    return SimpleNamespace(nodeid=nodeid, when=when, user_properties=properties)


def test_figures_come_from_call_reports_in_test_order(monkeypatch) -> None:
    figures: list[Any] = []
    monkeypatch.setattr(conftest, "_FIGURES", figures)
    first = {"case": "a", "figure": "x", "value": 1, "target": "1", "on_target": True}
    second = {"case": "a", "figure": "y", "value": 2.5, "target": "<= 3", "on_target": True}
    other = {"case": "b", "figure": "z", "value": 0, "target": "0", "on_target": False}

    # as an xdist controller receives them: out of test order, with setup/teardown reports too
    conftest.pytest_runtest_logreport(_report("tests/faults/test_b.py::t", "call", [("fault_figure", other)]))
    conftest.pytest_runtest_logreport(_report("tests/faults/test_a.py::t", "setup", [("fault_figure", first)]))
    conftest.pytest_runtest_logreport(
        _report("tests/faults/test_a.py::t", "call", [("fault_figure", first), ("other", 1), ("fault_figure", second)])
    )
    conftest.pytest_runtest_logreport(_report("tests/faults/test_a.py::t", "teardown", [("fault_figure", first)]))

    lines: list[str] = []
    monkeypatch.setenv("FAULTS_REPORT", os.devnull)
    conftest.pytest_terminal_summary(SimpleNamespace(write_line=lines.append))

    rows = [line.split() for line in lines if line.startswith("  ")]
    assert [(row[0], row[1], row[2]) for row in rows] == [("ok", "a:", "x"), ("ok", "a:", "y"), ("OFF", "b:", "z")]
    assert lines[1] == f"fault matrix ({conftest.profile()} profile)"
