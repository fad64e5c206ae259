"""`make demo` tells the whole story: run it as a newcomer would and read what it prints."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_plays_every_story_and_stops_everything_it_started(servers):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap, "DATABASE_URL": servers.database_url}
    result = subprocess.run([sys.executable, "deploy/demo/demo.py", "--settle", "8"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for expected in (
        "classified wrong_item_or_install",  # the AC unit
        "classified damaged_in_transit",  # the suitcase posted publicly
        "rejected not_json",  # the garbage record
        "BREACHED first contact",  # the shoes: nobody called in time
        "BREACHED promise P-bag-1",  # the missed call-back
        "offer approved by supervisor",  # an over-limit offer approved
        "rejected approver_not_authorised",  # a manager above her limit
        "follow-up due now thank you note via mail",  # handwritten note for a loyal customer
        "follow-up cancelled retention checkin (customer_returned)",  # one customer came back
        "customer threatens legal action: 'sue you'",  # the decisive reason, never cut
        "approval escalated from manager to director",  # the suitcase: nobody answered the manager
        "follow-up skipped satisfaction survey (not planned: open_case)",  # her first case is still open
        "Classification",
        "queried from Prometheus over HTTP",
        "when they agreed",  # metrics and events read at one moment
        "stopped everything the demo started",
    ):
        assert expected in out, f"missing from the demo: {expected!r}"
    assert "customers returned after recovery          1" in out
    assert "EUR 9.20, USD " in out  # the delay story's gift in EUR, never added to the USD amounts
    assert "but the events say" not in out and "still differed" not in out
    # the admin's side: the recovery report and a simulated policy edit, through the real commands
    assert "$ helpdesk report recovery --since 1d --within 30s" in out
    assert re.search(r"\d+ cases, 1 came back within 30s", out), "the coffee customer came back"
    assert "$ helpdesk policy simulate --policy draft-compensation.yaml" in out
    assert "confusing_process: granted 26.00 USD (agent)" in out and "confusing_process: granted 32.00 USD (agent)" in out
    assert "26.00 USD → 32.00 USD" in out  # 5 points more of the 120.00 USD order; free shipping (8.00) unchanged
    pattern = f"^{sys.executable} -m services\\.(intake|sla|compensation|followup)$"
    leftover = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    assert not [p for p in leftover.stdout.split() if p], "the demo left services running"
