"""The bench scripts still run against the code (`make test` measures nothing: a smoke run only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.ablations import VARIANTS
from bench.breakdown import STRETCHES

ROOT = Path(__file__).resolve().parents[2]


def quick_run(module: str, cwd: Path) -> list[str]:
    """The stdout lines of `python -m <module> --quick`, in a process of its own (the bench's harness
    reloads the handler modules with its environment)."""
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick"],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def table_rows(lines: list[str]) -> dict[str, list[str]]:
    """A Markdown table's rows by their first cell."""
    rows = [
        [cell.replace("*", "").strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| ")
    ]
    return {row[0]: row[1:] for row in rows}


def test_the_breakdown_times_every_stage_of_a_signed_lead(tmp_path):
    lines = quick_run("bench.breakdown", tmp_path)

    rows = table_rows(lines)
    assert {name for name in STRETCHES.values() if name} <= set(rows)
    in_situ = float(rows["all but the send (sums of the medians)"][0])
    assert in_situ > 0


def test_the_ablations_measure_every_variant_against_the_bare_send_and_keep_the_line(tmp_path):
    lines = quick_run("bench.ablations", tmp_path)

    assert lines[0].endswith("are the shipped line: yes")  # the variants writing the line write what ships
    rows = table_rows(lines)
    assert {"as shipped"} | {variant.name for variant in VARIANTS} <= set(rows)
    for name, cells in rows.items():
        if name != "warm ingest, one signed lead":  # the header
            assert float(cells[2].removesuffix("x")) > 0, name
