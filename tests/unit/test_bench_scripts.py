"""The bench scripts still run against the code (`make test` measures nothing: a smoke run only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.breakdown import STRETCHES

ROOT = Path(__file__).resolve().parents[2]


def test_the_breakdown_times_every_stage_of_a_signed_lead(tmp_path):
    """In a process of its own: the bench's harness reloads the handler modules with its environment."""
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.breakdown", "--quick"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[0].strip("| ") for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {name for name in STRETCHES.values() if name} <= rows
    [total] = [line for line in done.stdout.splitlines() if "all but the send" in line]
    in_situ = float(total.split("|")[2].strip(" *"))
    assert in_situ > 0
