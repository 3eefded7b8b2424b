"""The fault matrix (`make faults`): each test records figures against their targets.

A figure is one measured number (e.g. "calls per lead under a duplicate storm") with its
target. The table of every figure recorded in the run is printed at the end of the session
and written to `faults-report.json` (path in FAULTS_REPORT) for the README's guarantees
section. A test asserts its own figures too, so `make test` fails when one is off target.

Figures travel with the test's report (`user_properties`), so the table is whole when the tests
run in pytest-xdist workers (`make test`): the controller prints it from the reports it receives.

Profiles: FAULTS_PROFILE=quick (default, inside `make test`) or full (`make faults`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import pytest


@dataclass(frozen=True)
class Figure:
    """One row of the fault-matrix table."""

    case: str
    figure: str
    value: float
    target: str
    on_target: bool


#: (test node id, order recorded, figure) of every report received in this session
_FIGURES: list[tuple[str, int, Figure]] = []
_PROPERTY = "fault_figure"


def profile() -> str:
    """quick or full."""
    return "full" if os.environ.get("FAULTS_PROFILE", "quick").strip().lower() == "full" else "quick"


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Callable[..., Figure]:
    """record_figure(case, figure, value, target_text, on_target) -> Figure; also asserted by the caller."""

    def record(case: str, figure: str, value: float, target: str, on_target: bool) -> Figure:
        row = Figure(case, figure, value, target, bool(on_target))
        request.node.user_properties.append((_PROPERTY, asdict(row)))
        return row

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the figures of each test's call report (in this process or sent by an xdist worker)."""
    if report.when != "call":
        return
    for order, (name, value) in enumerate(report.user_properties):
        if name == _PROPERTY:
            _FIGURES.append((report.nodeid, order, Figure(**cast(dict[str, Any], value))))


@pytest.fixture
def faults_profile() -> str:
    """The profile this run uses (quick or full)."""
    return profile()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the table of figures and write it as JSON."""
    if not _FIGURES:
        return
    rows = [row for _, _, row in sorted(_FIGURES, key=lambda entry: entry[:2])]  # test order, as recorded
    write = terminalreporter.write_line
    write("")
    write(f"fault matrix ({profile()} profile)")
    width = max(len(f"{row.case}: {row.figure}") for row in rows)
    for row in rows:
        value = int(row.value) if float(row.value).is_integer() else round(row.value, 2)
        mark = "ok " if row.on_target else "OFF"
        write(f"  {mark} {f'{row.case}: {row.figure}':<{width}}  {value!s:>8}  target {row.target}")
    report = Path(os.environ.get("FAULTS_REPORT", "faults-report.json"))
    report.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n", encoding="utf-8")
