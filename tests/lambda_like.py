"""The environment of a fresh interpreter that imports the functions as Lambda would (tests that
check what a cold start loads run their code in one)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lambda_like_environment(**overrides: str) -> dict[str, str]:
    """`src/` as the task root, a region, moto's dummy credentials, quiet logs; `overrides` win."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "src"),
        "LAMBDA_TASK_ROOT": str(ROOT / "src"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "LEADS_QUEUE_URL": "http://127.0.0.1:9/queue",
        **overrides,
    }
