"""The in-memory compensation store (tests/fakes/compensation_store.py) answers as the real one does
(services/compensation/store.py on PostgreSQL): the same sequence of calls, the service layer's
most used ones, runs on both and must give the same results, so test_service.py's fake stays honest."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.compensation import store
from services.compensation.domain import BudgetCharge, CaseFacts, Decision
from shared.batch import Batch
from tests.fakes.compensation_store import MemoryCompensationStore
from tests.support.memory import MemoryWorld, migrated_transaction

pytestmark = pytest.mark.integration

NOV = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
DEC = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def decision(outcome: str, value: str, currency: str = "USD", budget: BudgetCharge | None = None) -> Decision:
    return Decision(outcome=outcome, rule_id="r", offers=[{"kind": "refund", "amount": float(value)}],
                    value=Decimal(value), currency=currency, authority="supervisor" if outcome == "pending_approval"
                    else "agent", reason_code="x", reason_codes=("x", "y"), explanation=("why",),
                    policy_version="v1", budget=budget)


async def insert(s: Any, conn: Any, decision_id: str, case_id: str, grant_round: int, made: Decision,
                 at: datetime = NOV, source: str = "crm-east") -> bool:
    return await s.insert_decision(conn, decision_id=decision_id, decision=made, case_id=case_id, customer_id="C-1",
                                   source=source, causation_id=f"evt-{decision_id}", grant_round=grant_round,
                                   inputs={"facts": s.facts_as_inputs(CaseFacts(granted_total=Decimal("1.5")))},
                                   decided_at=at)


async def scenario(s: Any, conn: Any, batch: Batch) -> list[Any]:
    """The calls, and what each answered (rounds sorted: array_agg's order is not part of the contract)."""
    out: list[Any] = []
    out.append(await s.lock_cases(batch, ["b", "a", "a"]))
    await s.record_reopen(conn, "a")
    await s.record_reopen(conn, "c")  # a case first seen by its reopen
    await s.record_reopen(conn, "c")
    out.append([await s.lock_case(batch, "a"), await s.lock_case(batch, "c"), await s.lock_case(batch, "d")])
    await s.lock_budgets(batch, [("crm-east", "USD"), ("crm-west", "EUR")])
    await s.lock_budget(batch, "crm-east", "USD")
    out.append(batch.locked)
    out.append([
        await insert(s, conn, "d1", "a", 2, decision("granted", "23")),
        await insert(s, conn, "d2", "a", 2, decision("pending_approval", "100")),  # the round has its grant
        await insert(s, conn, "d1", "a", 3, decision("granted", "5")),  # the id exists
        await insert(s, conn, "d3", "a", 2, decision("none", "0")),  # "none" is never refused by the round
        await insert(s, conn, "d4", "b", 1, decision("pending_approval", "100")),
        await insert(s, conn, "d5", "c", 3, decision("pending_approval", "45.00", "EUR",
                                                     BudgetCharge("USD", Decimal("48.91")))),
        await insert(s, conn, "d6", "d", 1, decision("pending_approval", "1.852", "BHD"), at=DEC),
        await insert(s, conn, "d7", "a", 1, decision("granted", "10"), source="crm-west"),
    ])
    for case_id, reopens, currency, budget_currency in (("a", 1, "USD", None), ("a", 1, "EUR", None),
                                                       ("c", 2, "EUR", "USD"), ("z", 0, "USD", None)):
        history = await s.case_history(conn, case_id, reopens, currency, "crm-east", NOV, budget_currency=budget_currency)
        out.append((history.reopens, sorted(history.compensated_rounds), history.granted_total, history.month_spent))
    out.append([await s.decision_for_update(conn, d) for d in ("d4", "d6", "nope")])
    await s.settle(conn, "d4", True, "supervisor", "S-1", DEC)  # decided in November: spends November
    await s.settle(conn, "d5", True, "supervisor", "S-1", DEC)  # spends its USD line
    await s.settle(conn, "d1", False, "manager", "M-1", DEC)  # denied: spends nothing more
    await s.settle(conn, "nope", True, "manager", "M-1", DEC)
    out.append([(await s.decision_for_update(conn, d))["status"] for d in ("d1", "d4", "d5")])
    out.append([await s.month_spent(conn, source, currency, at) for source, currency, at in (
        ("crm-east", "USD", NOV), ("crm-east", "EUR", NOV), ("crm-west", "USD", NOV), ("crm-west", "USD", DEC))])
    out.append(await s.spent_by_source(conn, NOV))
    out.append(await s.spent_by_source(conn, DEC))
    history = await s.case_history(conn, "a", 1, "USD", "crm-east", NOV)  # d1 denied: no longer in the total
    out.append((sorted(history.compensated_rounds), history.granted_total, history.month_spent))
    out.append(await s.pending_count(conn))
    out.append([await s.escalate(conn, "d6", "manager"), await s.escalate(conn, "d6", "director"),
                await s.escalate(conn, "nope", "manager")])
    out.append(await s.decision_for_update(conn, "d6"))
    for event_id, accepted in (("ans-1", True), ("ans-1", False), ("ans-2", False)):
        await s.record_answer(conn, event_id=event_id, decision_id="d4", answer="approved", approver_role="agent",
                              approver_id="A-1", accepted=accepted, reason=f"because {accepted}")
    # ---------- the batch functions (issue #15): one statement each ----------
    await s.record_reopens(conn, {"a": 2, "e": 1})  # a known case and a new one
    await s.record_reopens(conn, {})
    out.append(await s.lock_cases(batch, ["a", "e"]))
    rows = await s.compensations_of_cases(conn, ["a", "b", "c", "z"])
    out.append({case_id: sorted(rows[case_id], key=lambda c: (c.grant_round, c.value)) for case_id in sorted(rows)})
    out.append(await s.months_spent(conn, [("crm-east", "USD"), ("crm-west", "USD"), ("crm-east", "EUR"),
                                           ("crm-east", "USD")], NOV))
    out.append(await s.months_spent(conn, [], NOV))
    batch_decisions = [
        s.NewDecision("b1", decision("granted", "7"), "e", "C-1", "crm-east", "evt-b1", 2, {}, NOV),
        s.NewDecision("b2", decision("granted", "3"), "f", "C-1", "crm-east", "evt-b2", 1, {}, NOV),  # same ledger row
        s.NewDecision("b3", decision("pending_approval", "60"), "e", "C-1", "crm-east", "evt-b3", 2, {}, NOV),  # round taken
        s.NewDecision("d4", decision("none", "0"), "x", "C-1", "crm-east", "evt-x", 1, {}, NOV),  # the id exists
        s.NewDecision("b5", decision("pending_approval", "80", "EUR"), "g", "C-1", "crm-west", "evt-b5", 1, {}, DEC),
    ]
    out.append(sorted(await s.insert_decisions(conn, batch_decisions)))
    out.append(await s.insert_decisions(conn, []))
    out.append(await s.month_spent(conn, "crm-east", "USD", NOV))
    found = await s.decisions_for_update(conn, ["b5", "b1", "nope", "b5"])
    out.append(found)
    await s.settle_many(conn, [s.Settlement("b5", True, "manager", "M-1", DEC),
                               s.Settlement("b5", False, "manager", "M-2", DEC),  # the first one counts
                               s.Settlement("nope", True, "manager", "M-1", DEC)])
    await s.settle_many(conn, [])
    out.append((await s.decision_for_update(conn, "b5"))["status"])
    out.append(await s.spent_by_source(conn, DEC))
    await s.record_answers(conn, [s.Answer("ans-3", "b5", "approved", "manager", "M-1", True, "ok"),
                                  s.Answer("ans-3", "b5", "denied", "manager", "M-1", False, "second"),
                                  s.Answer("ans-1", "d4", "denied", "agent", "A-1", False, "replayed")])
    await s.record_answers(conn, [])
    compensated = (await s.compensations_of_cases(conn, ["e"]))["e"]
    out.append((s.history_of(3, compensated, "USD", Decimal("9")), s.round_taken(compensated, 2),
                s.round_taken(compensated, 3)))
    return out


async def real_answers(conn) -> list[tuple]:
    rows = await conn.fetch(f"SELECT event_id, decision_id, answer, approver_role, approver_id, accepted, reason "
                            f"FROM {store.SCHEMA}.approval_answers ORDER BY event_id")
    return [tuple(r) for r in rows]


def fake_answers(fake: MemoryCompensationStore) -> list[tuple]:
    return [tuple(a.values()) for _, a in sorted(fake.answers.items())]


async def test_the_fake_store_answers_as_postgresql_does(ns):
    async with migrated_transaction(ns.database_url, store) as conn:
        real_batch = Batch(conn, store.SCHEMA, "compensation")
        expected = await scenario(store, conn, real_batch)
        expected_answers = await real_answers(conn)
        inputs = await conn.fetchval(f"SELECT inputs FROM {store.SCHEMA}.decisions WHERE decision_id = 'd1'")

    fake = MemoryCompensationStore()
    got = await scenario(fake, None, MemoryWorld().batch())
    assert len(got) == len(expected)
    for step, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine == theirs, f"step {step}: fake {mine!r} != real {theirs!r}"
    assert fake_answers(fake) == expected_answers
    assert fake.decisions["d1"]["inputs"] == json.loads(inputs)
    assert expected[3] == [True, False, False, True, True, True, True, True]  # the refusals happened
    assert expected[-11] == {"a": 3, "e": 1}, "reopens added to a known case, a new case starts at its count"
    assert expected[-7] == ["b1", "b2", "b5"], "the taken round and the existing id are left out"
    assert expected[-5] - expected[-9][("crm-east", "USD")] == Decimal("10"), \
        "both batch grants added to November's row at once"
    assert sorted(expected[-4]) == ["b1", "b5"]
    assert expected[-3] == "approved"
    assert expected[-1][1:] == (True, False)
