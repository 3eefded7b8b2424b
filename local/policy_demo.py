"""The calling policy in `make run`'s demo: one lead scheduled for later, one suppressed.

`events/generic-after-hours.json` carries `"campaign": "after-hours demo"`; the routing rule
below gives that lead calling hours that are closed now whatever the time the demo runs (one
hour, two days from now in the lead's zone), so the dispatcher asks Unpod for a custom
schedule at the next opening. `events/generic-do-not-call.json` carries `"do_not_call": true`
and is recorded `suppressed`. A user's own SOURCE_ROUTING (--config "env") replaces this rule.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from lead_caller.policy import DAYS

DEMO_ZONE = "Asia/Tokyo"


def demo_environment() -> dict[str, str]:
    """SOURCE_ROUTING with the after-hours demo rule for the generic source."""
    day = DAYS[(datetime.now(ZoneInfo(DEMO_ZONE)) + timedelta(days=2)).weekday()].title()
    rule = {
        "when": {"path": "campaign", "equals": "after-hours demo"},
        "calling_policy": {"windows": [f"{day} 10:00-11:00"], "timezone": DEMO_ZONE},
    }
    return {
        "SOURCE_ROUTING": json.dumps({"generic": {"rules": [rule]}}),
        # The rest of the demo is called at once whatever the hour the demo runs, and the samples
        # share a few phone numbers, so the one-call-per-number rule is off here (it is on by default).
        "CALLING_POLICY": json.dumps({"windows": ["Mon-Sun 00:00-24:00"], "dedupe_by_phone": False}),
    }
