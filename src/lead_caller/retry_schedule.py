"""When a lead that could not be dispatched is tried again, and when it is given up.

A schedule, not a fixed delay: exponential steps (30 s, 2 min, 10 min, 30 min, 1 h by
default, then hourly), each with +/-20 % jitter so that leads failing together do not
come back together. Delays are applied per message with SQS `ChangeMessageVisibility`
(the handler), so they must stay within SQS's 12 h visibility limit; the lead's message
is kept at most 14 days (the queue's retention), the horizon (24 h default) is far below.

Time compression (`RETRY_TIME_SCALE`) multiplies every delay and the horizon: the fault
matrix runs a simulated day of outage in seconds with scale 1/3600.

Hand-written (no library): it is a few lines, and it has to produce integer seconds for
SQS rather than sleep in-process as tenacity/backoff do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: SQS ChangeMessageVisibility maximum (12 h)
MAX_VISIBILITY_SECONDS = 43_200
DEFAULT_STEPS: tuple[float, ...] = (30, 120, 600, 1_800, 3_600)


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between tries of one lead and the horizon after which it is given up."""

    steps: tuple[float, ...] = DEFAULT_STEPS
    horizon_seconds: float = 86_400
    jitter: float = 0.2
    time_scale: float = 1.0
    random: Callable[[], float] = random.random

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure (1-based; the last step repeats)."""
        steps: Sequence[float] = self.steps or DEFAULT_STEPS
        base = steps[min(max(failures, 1), len(steps)) - 1]
        spread = 1.0 + self.jitter * (2.0 * self.random() - 1.0)
        return max(0.0, base * spread * self.time_scale)

    @property
    def horizon(self) -> float:
        """The horizon in (scaled) seconds."""
        return self.horizon_seconds * self.time_scale

    @property
    def min_failures_to_give_up(self) -> int:
        """Per-lead failures needed (besides the horizon) before a lead is given up: the schedule's length."""
        return max(1, len(self.steps))

    def gives_up(self, first_try_at: float, now: float, lead_failures: int) -> bool:
        """True when a lead with these per-lead failures, first tried then, is given up now."""
        return lead_failures >= self.min_failures_to_give_up and now - first_try_at >= self.horizon

    def scaled(self, seconds: float) -> float:
        """A duration in schedule time (e.g. a circuit delay) in real seconds."""
        return seconds * self.time_scale


def visibility_seconds(delay: float) -> int:
    """A delay as the whole seconds SQS accepts (rounded up, never before; at most 12 h)."""
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(delay)))


def parse_steps(raw: str) -> tuple[float, ...]:
    """ "30,120,600" -> (30.0, 120.0, 600.0); ValueError when a step is not a positive number."""
    steps = tuple(float(part) for part in raw.replace(" ", "").split(",") if part)
    if not steps or any(not math.isfinite(step) or step <= 0 or step > MAX_VISIBILITY_SECONDS for step in steps):
        raise ValueError(f"steps must be positive numbers of seconds up to {MAX_VISIBILITY_SECONDS}")
    return steps
