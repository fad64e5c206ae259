"""A real service process's log file: one format, no colour codes, and a PostgreSQL outage (a cut
TCP proxy between the service and the shared server) told in a few lines, nothing lost."""
from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest

from shared.events import CLASSIFIED, SLA
from tests.builders import classified_json
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

# shared.service.LOG_FORMAT: "%(asctime)s %(levelname)s %(name)s %(message)s"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.\-]+ \S")


def classified(case_id: str) -> dict:
    now = datetime.now(timezone.utc)
    return classified_json(case_id=case_id, category="delay", temperament="upset", loyalty="loyal", priority="P2",
                           occurred_at=now, received_at=now)


def started(case_id: str):
    return lambda records: any(r.get("case_id") == case_id and r["type"] == "sla.started" for r in records)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")


async def wait_for_text(path, needles: list[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.5)


async def test_a_service_log_has_one_format_no_colour_and_an_outage_in_a_few_lines(ns):
    proxy, proxied_url = TcpProxy.for_url(ns.database_url)
    try:
        ns.extra_env["DATABASE_URL"] = proxied_url
        sla = ns.service("sla")
        before = f"CRM-{uuid.uuid4().hex[:8]}"
        await ns.kafka.publish(CLASSIFIED, classified(before))
        await ns.kafka.wait_for(SLA, started(before), timeout=30)

        mark = sla.log_path.stat().st_size
        outage_started = time.monotonic()
        proxy.cut()
        await asyncio.sleep(1)
        during = f"CRM-{uuid.uuid4().hex[:8]}"
        await ns.kafka.publish(CLASSIFIED, classified(during))  # arrives while the database is away
        await asyncio.sleep(6)
        with pytest.raises(Exception):  # /healthz says so meanwhile
            urllib.request.urlopen(f"http://127.0.0.1:{sla.port}/healthz", timeout=5)
        proxy.restore()
        outage = time.monotonic() - outage_started

        await ns.kafka.wait_for(SLA, started(during), timeout=60)  # nothing lost
        text = await wait_for_text(sla.log_path, ["postgres reachable again from the timers loop",
                                                  "postgres reachable again from the outbox loop"], timeout=20)
        metrics = sla.metrics()
    finally:
        proxy.stop()

    assert "\x1b[" not in text, "no colour codes in a log file"
    lines = text.splitlines()
    odd = [line for line in lines if not LINE.match(line)]
    assert not odd, "one format, every line:\n" + "\n".join(odd[:20])

    outage_lines = text[mark:].splitlines()
    shown = "\n".join(outage_lines)
    assert len(outage_lines) <= 12, f"a {outage:.0f} s outage, a few lines:\n{shown}"
    assert "Traceback" not in shown
    for loop in ("timers", "outbox"):
        assert sum(f"postgres unreachable from the {loop} loop: " in line for line in outage_lines) == 1, shown
        assert sum(f"postgres reachable again from the {loop} loop after " in line for line in outage_lines) == 1, shown
    for line in outage_lines:
        if " unreachable from the " in line:
            loop = line.split(" unreachable from the ")[1].split(" loop")[0]
            assert f"reachable again from the {loop} loop" in shown, f"{loop} said it was down, never back"

    assert metric(metrics, 'helpdesk_sla_dependency_retries_total{dependency="postgres",loop="timers"}') >= 3
    assert metric(metrics, 'helpdesk_sla_dependency_retries_total{dependency="kafka",loop="outbox"}') == 0
    assert metric(metrics, 'helpdesk_sla_dependency_up{dependency="postgres"}') == 1.0
    assert metric(metrics, 'helpdesk_sla_dependency_up{dependency="kafka"}') == 1.0
