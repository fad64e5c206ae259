"""The recovery read model's pure rules (services/followup/domain/recovery.py): folding events into a
case's facts is idempotent and order-independent, and the report's figures are the ones worked out
by hand below (the scenario's comments give every step)."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.followup.domain.recovery import (
    NO_CONTACT, Breached, CaseFacts, Classified, CompensationDecided, Contacted, Reopened, Resolved, Return,
    first_contact_bucket, fold, recovery_report,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def facts_of(*events) -> CaseFacts:
    out = None
    for e in events:
        out = fold(out, e)
    assert out is not None
    return out


def granted(case: str, decision: str, rule: str | None, value: str, currency: str, at: datetime,
            status: str = "granted") -> CompensationDecided:
    return CompensationDecided(case, decision, status, rule, Decimal(value), currency, at)  # type: ignore[arg-type]


def case(case_id: str, customer: str, category: str, received: datetime, *, contact_after: timedelta | None,
         resolved: datetime | None, breached: bool = False, decisions=(), repeat_contacts: int = 0,
         reopened: datetime | None = None) -> CaseFacts:
    events: list = [Classified(case_id, customer, category, received, repeat_contacts)]
    if contact_after is not None:
        events.append(Contacted(case_id, received + contact_after))
    if resolved is not None:
        events.append(Resolved(case_id, resolved))
    if reopened is not None:
        events.append(Reopened(case_id, reopened))
    if breached:
        events.append(Breached(case_id))
    events.extend(decisions)
    return facts_of(*events)


# ---------- buckets ----------
@pytest.mark.parametrize("elapsed, bucket", [
    (timedelta(0), "<1h"), (59 * timedelta(minutes=1), "<1h"), (HOUR, "1-4h"), (4 * HOUR - timedelta(seconds=1), "1-4h"),
    (4 * HOUR, "4-24h"), (24 * HOUR, ">24h"), (None, NO_CONTACT),
])
def test_first_contact_buckets_have_exclusive_upper_bounds(elapsed, bucket):
    assert first_contact_bucket(elapsed) == bucket


# ---------- folding ----------
T = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
EVENTS = [
    Classified("K", "C1", "billing", T, 1),
    Contacted("K", T + 3 * HOUR),
    Contacted("K", T + 2 * HOUR),
    Breached("K"),
    Resolved("K", T + DAY),
    Reopened("K", T + 2 * DAY),
    Resolved("K", T + 3 * DAY),
    granted("K", "d1", "late-delivery", "12.50", "USD", T + HOUR, status="pending"),
    granted("K", "d1", "late-delivery", "12.50", "USD", T + 2 * HOUR, status="granted"),
    granted("K", "d2", None, "0", "USD", T + 30 * timedelta(minutes=1), status="none"),
]


def test_folding_sets_each_fact_once_whatever_the_order_and_redeliveries():
    expected = facts_of(*EVENTS)
    assert expected.first_contact_at == T + 2 * HOUR  # the earliest contact
    assert expected.breached and expected.resolved and expected.resolved_at == T + 3 * DAY
    assert expected.granted == {"USD": Decimal("12.50")}  # d1 once, approved; d2 granted nothing
    assert expected.rule_id == "late-delivery"  # d2 (earlier) named no rule
    assert expected.first_contact_bucket == "1-4h"
    for order in itertools.islice(itertools.permutations(EVENTS), 0, None, 997):
        assert facts_of(*order) == expected
    assert facts_of(*EVENTS, *EVENTS) == expected  # every event redelivered


def test_a_reopen_after_the_last_resolution_leaves_the_case_unresolved():
    facts = facts_of(Resolved("K", T), Reopened("K", T + HOUR))
    assert not facts.resolved
    assert facts_of(Reopened("K", T + HOUR), Resolved("K", T)).resolved is False
    assert fold(facts, Resolved("K", T + 2 * HOUR)).resolved


def test_a_denied_decision_is_not_granted_and_a_later_pending_cannot_undo_it():
    facts = facts_of(granted("K", "d", "r", "40", "EUR", T, status="denied"),
                     granted("K", "d", "r", "40", "EUR", T - HOUR, status="pending"))
    assert facts.decisions["d"].status == "denied" and facts.granted == {}


def test_folding_an_event_of_another_case_is_refused():
    with pytest.raises(ValueError):
        fold(CaseFacts("A"), Resolved("B", T))


# ---------- the report, worked out by hand ----------
def scenario() -> tuple[list[CaseFacts], list[Return]]:
    a_res, b_res, c_res, d_res, i_res = NOW - 60 * DAY, NOW - 50 * DAY, NOW - 40 * DAY, NOW - 45 * DAY, NOW - 35 * DAY
    cases = [
        # A: C1, billing, contacted after 30 min, R1 grants USD 20.00; C1 is back 10 days later: returned.
        case("A", "C1", "billing", a_res - 5 * DAY, contact_after=timedelta(minutes=30), resolved=a_res,
             decisions=[granted("A", "a1", "R1", "20.00", "USD", a_res - 4 * DAY)]),
        # B: C2, billing, contact after 2h, breached, R1 grants USD 10.00 (d3 still pending: not granted);
        # C2 never returns but complains again 5 days later (case E): a repeat complaint.
        case("B", "C2", "billing", b_res - 2 * DAY, contact_after=2 * HOUR, resolved=b_res, breached=True,
             decisions=[granted("B", "b1", "R1", "10.00", "USD", b_res - DAY),
                        granted("B", "b2", "R1", "99.00", "USD", b_res - DAY, status="pending")]),
        # C: C3, delivery, contact after 30h, breached, R2 grants EUR 15.00 (another decision denied);
        # C3 returns 1 day before the resolution and 31 days after: neither counts.
        case("C", "C3", "delivery", c_res - 3 * DAY, contact_after=30 * HOUR, resolved=c_res, breached=True,
             decisions=[granted("C", "c1", "R2", "15.00", "EUR", c_res - 2 * DAY),
                        granted("C", "c2", "R2", "30.00", "EUR", c_res - DAY, status="denied")]),
        # D: C4, delivery, never contacted, no compensation, had to ask twice; back 29 days later: returned.
        case("D", "C4", "delivery", d_res - DAY, contact_after=None, resolved=d_res, repeat_contacts=2),
        # E: C2's new complaint, received 5 days after B's resolution; still open: not in the population.
        case("E", "C2", "billing", b_res + 5 * DAY, contact_after=HOUR, resolved=None),
        # I: C1's second case, received 38 days ago (within A's window: A is a repeat complaint), contact
        # after exactly 4h, R1 grants USD 5.00; C1 is back 20 days ago, 15 days after I: returned.
        case("I", "C1", "billing", NOW - 38 * DAY, contact_after=4 * HOUR, resolved=i_res,
             decisions=[granted("I", "i1", "R1", "5.00", "USD", i_res - DAY)]),
        # F: resolved 10 days ago: its window is open (awaiting), though C5 is back already.
        case("F", "C5", "billing", NOW - 12 * DAY, contact_after=HOUR, resolved=NOW - 10 * DAY),
        # G: resolved 100 days ago: outside --since.
        case("G", "C6", "billing", NOW - 101 * DAY, contact_after=HOUR, resolved=NOW - 100 * DAY),
        # H: resolved then reopened: not resolved.
        case("H", "C7", "billing", NOW - 70 * DAY, contact_after=HOUR, resolved=NOW - 60 * DAY,
             reopened=NOW - 55 * DAY),
    ]
    returns = [
        Return("r1", "C1", "A", a_res + 10 * DAY),
        Return("r2", "C3", "C", c_res - DAY),
        Return("r3", "C3", "C", c_res + 31 * DAY),
        Return("r4", "C4", "D", d_res + 29 * DAY),
        Return("r5", "C1", "I", NOW - 20 * DAY),
        Return("r6", "C5", "F", NOW - 5 * DAY),
        Return("r7", "C6", "G", NOW - 95 * DAY),
        Return("r8", "C7", "H", NOW - 50 * DAY),
    ]
    return cases, returns


def test_the_report_of_the_hand_worked_scenario():
    cases, returns = scenario()
    r = recovery_report(cases, returns, now=NOW, since=90 * DAY, within=30 * DAY)
    # population A, B, C, D, I; back: A, D, I.
    assert (r.overall.cases, r.overall.returned, r.overall.customers, r.overall.returned_customers) == (5, 3, 4, 2)
    assert r.overall.ratio == pytest.approx(0.6)
    assert r.awaiting == 1  # F
    shares = lambda d: {k: (v.cases, v.returned) for k, v in d.items()}  # noqa: E731
    assert shares(r.by_category) == {"billing": (3, 2), "delivery": (2, 1)}
    assert shares(r.by_rule) == {"R1": (3, 2), "R2": (1, 0), "none": (1, 1)}
    assert shares(r.by_breach) == {"breached": (2, 0), "not breached": (3, 3)}
    assert shares(r.by_first_contact) == {"<1h": (1, 1), "1-4h": (1, 0), "4-24h": (1, 1), ">24h": (1, 0),
                                          NO_CONTACT: (1, 1)}
    assert list(r.by_first_contact) == ["<1h", "1-4h", "4-24h", ">24h", NO_CONTACT]  # fastest first
    costs = {(c.rule_id, c.currency): (c.granted, c.retained, c.per_retained) for c in r.cost_per_retained}
    # R1: 20.00 + 10.00 + 5.00 = 35.00 USD over one customer back (C1, on A and I); R2: nobody back.
    assert costs == {("R1", "USD"): (Decimal("35.00"), 1, Decimal("35.00")),
                     ("R2", "EUR"): (Decimal("15.00"), 0, None)}
    assert (r.repeat_complaints, r.repeat_complaint_rate) == (2, pytest.approx(0.4))  # A (I), B (E)
    assert (r.repeat_contact_cases, r.repeat_contact_rate) == (1, pytest.approx(0.2))  # D


def test_a_narrower_window_changes_what_counts_as_back():
    cases, returns = scenario()
    # within 20d: D's return (29 days) no longer counts; A (10d) and I (15d) still do. A window closes
    # 20 days after: F (10 days ago) still awaits; nothing else changes in the population.
    r = recovery_report(cases, returns, now=NOW, since=90 * DAY, within=20 * DAY)
    assert (r.overall.cases, r.overall.returned, r.awaiting) == (5, 2, 1)
    assert r.repeat_complaints == 1  # I was received 22 days after A's resolution: no longer; E 5 days after B's: yes


def test_cost_per_retained_rounds_to_the_currencys_minor_units():
    cases = [case(f"K{i}", f"C{i}", "billing", NOW - 60 * DAY, contact_after=HOUR, resolved=NOW - 59 * DAY,
                  decisions=[granted(f"K{i}", f"k{i}", "R", value, "JPY", NOW - 59 * DAY)])
             for i, value in enumerate(["1000", "1000", "0"])]
    returns = [Return(f"r{i}", f"C{i}", f"K{i}", NOW - 50 * DAY) for i in range(3)]
    (cost,) = recovery_report(cases, returns, now=NOW, since=90 * DAY, within=30 * DAY).cost_per_retained
    assert (cost.granted, cost.retained, cost.per_retained) == (Decimal("2000"), 3, Decimal("667"))  # 666.67 → 667


def test_the_report_refuses_a_naive_now():
    with pytest.raises(ValueError):
        recovery_report([], [], now=NOW.replace(tzinfo=None), since=DAY, within=DAY)
