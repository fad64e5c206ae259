"""Issue 12 through real Kafka and PostgreSQL: a repeat complaint that raises the priority re-targets
the open clocks (keeping counted and paused time, also across a later pause read back from the
database), and an automated contact meets no clock and is counted apart.

Business instants come from the events (`occurred_at`, `received_at`), so the expected deadlines are
exact; when they fire is checked with a tolerance, as in test_sla_service.py.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.events import CASE_ACTIVITY, CLASSIFIED
from tests.sla.test_sla_service import (
    LATE_TOLERANCE, activity, classified, instant, new_case, of_case, utcnow, wait_sla,
)

pytestmark = pytest.mark.integration

# P3 slow, P1 fast; everything round the clock, no escalations.
TWO_SPEEDS = """\
targets:
  P1: {first_contact: 4s, update: 6s, resolution: 10s}
  P3: {first_contact: 20s, update: 30s, resolution: 60s}
warnings: [0.5, 0.75]
calendar:
  default: 24x7
"""


@pytest.fixture
def ns_two_speeds(ns, tmp_path: Path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "sla.yaml").write_text(TWO_SPEEDS)
    ns.config_dir = config
    return ns


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - utcnow()).total_seconds()))


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def test_a_higher_priority_re_targets_open_clocks_keeping_paused_time(ns_two_speeds):
    ns = ns_two_speeds
    sla = ns.service("sla")
    case, t0 = new_case(), utcnow()
    await ns.kafka.publish(CLASSIFIED, classified(case, t0, priority="P3"))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted", t0 + s(1)))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.paused", t0 + s(1)))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.resumed", t0 + s(4)))  # 3s waiting on the customer
    await sleep_until(t0 + s(5))
    repeat = classified(case, t0 + s(5), priority="P1")
    repeat["repeat_contacts"] = 1
    await ns.kafka.publish(CLASSIFIED, repeat)
    records = await wait_sla(ns, lambda rs: len(of_case(rs, case, "sla.retargeted")) == 2)
    moved = {r["clock"]: r for r in of_case(records, case, "sla.retargeted")}
    assert set(moved) == {"update", "resolution"}  # first contact was met at t0+1: nothing to re-target
    # resolution: 5s - 3s paused = 2s counted of P1's 10s: due t0+13 (P3's was t0 + 60 + 3 = t0+63;
    # without the pause kept it would be t0+10)
    assert (instant(moved["resolution"]["old_due_at"]), instant(moved["resolution"]["due_at"])) == (t0 + s(63), t0 + s(13))
    assert (moved["resolution"]["old_priority"], moved["resolution"]["priority"], moved["resolution"]["elapsed_seconds"]) == ("P3", "P1", 2)
    # update, started at the contact t0+1: 4s - 3s paused = 1s counted of P1's 6s: due t0+10 (was 1 + 30 + 3 = t0+34)
    assert (instant(moved["update"]["old_due_at"]), instant(moved["update"]["due_at"])) == (t0 + s(34), t0 + s(10))

    # Paused again t0+6 .. t0+8: the re-targeted clocks are read back from PostgreSQL and move out by 2s.
    await sleep_until(t0 + s(6))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.paused", t0 + s(6)))
    await sleep_until(t0 + s(8))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.resumed", t0 + s(8)))
    records = await wait_sla(ns, lambda rs: of_case(rs, case, "sla.breached", "resolution"), timeout=40)
    breach = of_case(records, case, "sla.breached", "resolution")[0]
    due = t0 + s(15)  # 2s counted before the repeat + 1s (t0+5..6) + 7s after t0+8 = 10s at t0+15
    assert instant(breach["due_at"]) == due and breach["priority"] == "P1"
    assert due <= instant(breach["occurred_at"]) <= due + LATE_TOLERANCE
    update_breach = of_case(records, case, "sla.breached", "update")[0]
    assert instant(update_breach["due_at"]) == t0 + s(12)  # 1s + 1s (t0+5..6) + 4s after t0+8 = 6s at t0+12
    assert 'helpdesk_sla_clocks_retargeted_total{clock="resolution",old_priority="P3",priority="P1"} 1.0' in sla.metrics()


async def test_an_automated_contact_meets_no_clock_and_is_counted_apart(ns_fast):
    ns = ns_fast
    sla = ns.service("sla")
    case, t0 = new_case(), utcnow()
    await ns.kafka.publish(CLASSIFIED, classified(case, t0))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted", t0 + s(0.5), automated=True, by="system"))
    # first contact (4s) is still owed: breached at t0+4 although the CRM acknowledged at t0+0.5
    records = await wait_sla(ns, lambda rs: of_case(rs, case, "sla.breached", "first_contact"))
    assert of_case(records, case, "sla.met", "first_contact") == []
    assert of_case(records, case, clock="update") == []  # not a first contact: no update clock either
    await sleep_until(t0 + s(5))
    await ns.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted", t0 + s(5), by="agent"))
    records = await wait_sla(ns, lambda rs: of_case(rs, case, "sla.met", "first_contact"))
    met = of_case(records, case, "sla.met", "first_contact")[0]
    assert (met["breached"], met["late_by_seconds"]) == (True, 1)  # the agent called at t0+5: 1s past the 4s target
    assert len(of_case(records, case, "sla.started", "update")) == 1  # started by the agent's contact
    assert 'helpdesk_sla_automated_contacts_total{by="system",type="case.contacted"} 1.0' in sla.metrics()
