"""An in-memory stand-in for services/compensation/store.py: the same functions with the same
signatures (the connection, first, is ignored; lock functions take the Batch and lock through it,
as the real ones do), backed by dicts, so `Compensation(runtime, policy, store=MemoryCompensationStore())`
runs without PostgreSQL. tests/compensation/test_store_fake.py checks it against the real store.

What it reproduces of the SQL: the `cases` upserts; `decisions` with its primary key and the partial
unique index `one_compensation_per_round` (case_id, grant_round) over granted and pending decisions,
both as ON CONFLICT DO NOTHING; the monthly budget ledger `budget_spent` (what a granted or approved
decision spends, in its budget line's currency, in the UTC month it was decided); `approval_answers`
keyed by event id.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from services.compensation import store as real
from services.compensation.domain import CaseHistory, Decision
from shared import locks
from shared.batch import Batch

_STATUS = {"granted": "granted", "pending_approval": "pending", "none": "none"}
_ROW_FIELDS = ("decision_id", "case_id", "customer_id", "causation_id", "status", "offers", "value", "currency",
               "rule_id", "policy_version", "authority", "reason_code", "reason_codes", "decided_at", "escalations")


def _month(at: datetime) -> date:
    return at.astimezone(timezone.utc).date().replace(day=1)


class MemoryCompensationStore:
    """The compensation tables in dicts: `cases` (case_id → reopens), `decisions` (decision_id →
    row, in insertion order), `budget_spent` ((source, currency, month) → spent), `answers`
    (event_id → row)."""

    SCHEMA = real.SCHEMA
    MIGRATIONS = real.MIGRATIONS
    CASE_LOCKS = real.CASE_LOCKS
    BUDGET_LOCKS = real.BUDGET_LOCKS

    # the real store's value types and pure helpers
    Compensated, NewDecision, Settlement, Answer = real.Compensated, real.NewDecision, real.Settlement, real.Answer
    history_of = staticmethod(real.history_of)
    round_taken = staticmethod(real.round_taken)

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.budget_spent: dict[tuple[str, str, date], Decimal] = {}
        self.answers: dict[str, dict[str, Any]] = {}

    # ---------- cases and locks ----------
    async def lock_case(self, batch: Batch, case_id: str) -> int:
        """Locks the case (through the batch), creates its row if missing; returns its reopens."""
        await batch.lock(self.CASE_LOCKS, [case_id])
        return self.cases.setdefault(case_id, 0)

    async def lock_cases(self, batch: Batch, case_ids: Iterable[str]) -> dict[str, int]:
        """`lock_case` for several cases, in sorted order; each case once in the result."""
        ordered = locks.ordered(case_ids)
        await batch.lock(self.CASE_LOCKS, ordered)
        return {case_id: self.cases.setdefault(case_id, 0) for case_id in ordered}

    async def record_reopen(self, conn: Any, case_id: str) -> None:
        """Upsert: a new case starts at 1 reopen, a known one gets one more."""
        self.cases[case_id] = self.cases.get(case_id, 0) + 1

    async def record_reopens(self, conn: Any, reopens: dict[str, int]) -> None:
        """Upsert: each case gets its count of reopens more (a new case starts at it)."""
        for case_id, count in reopens.items():
            self.cases[case_id] = self.cases.get(case_id, 0) + count

    async def lock_budget(self, batch: Batch, source: str, currency: str) -> None:
        await self.lock_budgets(batch, [(source, currency)])

    async def lock_budgets(self, batch: Batch, budgets: Iterable[tuple[str, str]]) -> None:
        await batch.lock(self.BUDGET_LOCKS, [f"{source}:{currency}" for source, currency in budgets])

    # ---------- decisions ----------
    async def case_history(self, conn: Any, case_id: str, reopens: int, currency: str, source: str,
                           month_start: datetime, budget_currency: str | None = None) -> CaseHistory:
        """Over the case's granted and pending_approval decisions (any status since): their rounds
        (in insertion order; PostgreSQL's array_agg gives no order, callers must not rely on one) and the total of those in
        `currency` still granted, pending or approved (denied ones do not count); plus the month's
        spending of `source`'s line in `budget_currency` (default `currency`)."""
        compensated = [d for d in self.decisions.values()
                       if d["case_id"] == case_id and d["outcome"] in ("granted", "pending_approval")]
        total = sum((d["value"] for d in compensated
                     if d["currency"] == currency and d["status"] in ("granted", "pending", "approved")), Decimal(0))
        return CaseHistory(
            reopens=reopens,
            compensated_rounds=tuple(d["grant_round"] for d in compensated),
            granted_total=total,
            month_spent=self.budget_spent.get((source, budget_currency or currency, _month(month_start)), Decimal(0)),
        )

    async def month_spent(self, conn: Any, source: str, currency: str, month_start: datetime) -> Decimal:
        return self.budget_spent.get((source, currency, _month(month_start)), Decimal(0))

    async def compensations_of_cases(self, conn: Any, case_ids: Iterable[str]) -> dict[str, list[real.Compensated]]:
        """{case_id: its granted and pending_approval decisions, in insertion order} for cases with any."""
        wanted, out = set(case_ids), {}
        for d in self.decisions.values():
            if d["case_id"] in wanted and d["outcome"] in ("granted", "pending_approval"):
                out.setdefault(d["case_id"], []).append(
                    real.Compensated(d["grant_round"], d["currency"], d["value"], d["status"]))
        return out

    async def months_spent(self, conn: Any, budgets: Iterable[tuple[str, str]],
                           month_start: datetime) -> dict[tuple[str, str], Decimal]:
        return {(source, currency): self.budget_spent.get((source, currency, _month(month_start)), Decimal(0))
                for source, currency in sorted(set(budgets))}

    facts_as_inputs = staticmethod(real.facts_as_inputs)

    async def insert_decision(self, conn: Any, *, decision_id: str, decision: Decision, case_id: str,
                              customer_id: str, source: str, causation_id: str, grant_round: int,
                              inputs: dict[str, Any], decided_at: datetime) -> bool:
        """False (nothing written) when the id exists or the case already has a granted or
        pending_approval decision in `grant_round`; a granted one spends its budget line at once."""
        if decision_id in self.decisions:
            return False
        compensates = decision.outcome in ("granted", "pending_approval")
        if compensates and any(d["case_id"] == case_id and d["grant_round"] == grant_round
                               and d["outcome"] in ("granted", "pending_approval") for d in self.decisions.values()):
            return False
        budget_currency, budget_value = ((decision.budget.currency, decision.budget.amount) if decision.budget
                                         else (decision.currency, decision.value))
        row = {
            "decision_id": decision_id, "case_id": case_id, "customer_id": customer_id, "source": source,
            "causation_id": causation_id, "grant_round": grant_round, "outcome": decision.outcome,
            "status": _STATUS[decision.outcome], "rule_id": decision.rule_id,
            "policy_version": decision.policy_version, "offers": json.loads(json.dumps(decision.offers)),
            "value": decision.value, "currency": decision.currency, "authority": decision.authority,
            "reason_code": decision.reason_code, "reason_codes": list(decision.reason_codes),
            "inputs": json.loads(json.dumps(inputs, default=real._json_default)),
            "explanation": list(decision.explanation), "decided_at": decided_at, "settled_at": None,
            "approver_role": None, "approver_id": None, "escalations": 0,
            "budget_currency": budget_currency, "budget_value": budget_value,
        }
        self.decisions[decision_id] = row
        self._spend(row)
        return True

    def _spend(self, row: dict[str, Any]) -> None:
        """The ledger row a granted or approved decision adds to (store._SPEND)."""
        amount = row["budget_value"] if row["budget_value"] is not None else row["value"]
        if row["status"] in ("granted", "approved") and amount > 0:
            key = (row["source"], row["budget_currency"] or row["currency"], _month(row["decided_at"]))
            self.budget_spent[key] = self.budget_spent.get(key, Decimal(0)) + amount

    async def insert_decisions(self, conn: Any, decisions: list[real.NewDecision]) -> set[str]:
        """`insert_decision` for each, in order (a later one sees the earlier ones); the ids inserted."""
        inserted = set()
        for n in decisions:
            if await self.insert_decision(conn, decision_id=n.decision_id, decision=n.decision, case_id=n.case_id,
                                          customer_id=n.customer_id, source=n.source, causation_id=n.causation_id,
                                          grant_round=n.grant_round, inputs=n.inputs, decided_at=n.decided_at):
                inserted.add(n.decision_id)
        return inserted

    async def decisions_for_update(self, conn: Any, decision_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{decision_id: `decision_for_update`'s row} of the ids that exist."""
        return {d: copy.deepcopy({k: self.decisions[d][k] for k in _ROW_FIELDS})
                for d in sorted(set(decision_ids)) if d in self.decisions}

    async def settle_many(self, conn: Any, settlements: list[real.Settlement]) -> None:
        """`settle` for the first settlement of each decision."""
        seen: set[str] = set()
        for one in settlements:
            if one.decision_id not in seen:
                seen.add(one.decision_id)
                await self.settle(conn, one.decision_id, one.approved, one.approver_role, one.approver_id,
                                  one.settled_at)

    async def record_answers(self, conn: Any, answers: list[real.Answer]) -> None:
        """`record_answer` for each, in order (an event id seen already keeps its first row)."""
        for a in answers:
            await self.record_answer(conn, event_id=a.event_id, decision_id=a.decision_id, answer=a.answer,
                                     approver_role=a.approver_role, approver_id=a.approver_id, accepted=a.accepted,
                                     reason=a.reason)

    async def decision_for_update(self, conn: Any, decision_id: str) -> dict[str, Any] | None:
        """The decision's row (the columns the real SELECT reads), a copy; None when unknown."""
        row = self.decisions.get(decision_id)
        return None if row is None else copy.deepcopy({k: row[k] for k in _ROW_FIELDS})

    async def settle(self, conn: Any, decision_id: str, approved: bool, approver_role: str, approver_id: str,
                     settled_at: datetime) -> None:
        """Approved or denied, whatever the status was (the caller checked it); an approval spends."""
        row = self.decisions.get(decision_id)
        if row is None:
            return
        row.update(status="approved" if approved else "denied", approver_role=approver_role,
                   approver_id=approver_id, settled_at=settled_at)
        self._spend(row)

    async def record_answer(self, conn: Any, *, event_id: str, decision_id: str, answer: str,
                            approver_role: str, approver_id: str, accepted: bool, reason: str) -> None:
        """Once per answer event id: a replayed answer keeps the first row."""
        self.answers.setdefault(event_id, {
            "event_id": event_id, "decision_id": decision_id, "answer": answer, "approver_role": approver_role,
            "approver_id": approver_id, "accepted": accepted, "reason": reason,
        })

    async def escalate(self, conn: Any, decision_id: str, to_role: str) -> int | None:
        """Hands the decision to `to_role`; returns how often it was escalated (None: unknown id)."""
        row = self.decisions.get(decision_id)
        if row is None:
            return None
        row["authority"] = to_role
        row["escalations"] += 1
        return row["escalations"]

    # ---------- for gauges ----------
    async def pending_count(self, conn: Any) -> int:
        return sum(d["status"] == "pending" for d in self.decisions.values())

    async def spent_by_source(self, conn: Any, month_start: datetime) -> dict[tuple[str, str], Decimal]:
        month = _month(month_start)
        return {(source, currency): spent for (source, currency, m), spent in self.budget_spent.items() if m == month}

