"""The compensation replay of `helpdesk policy simulate` (services/compensation/domain/simulation.py),
on five decisions whose figures were worked out by hand.

Policy in force: SMALL_POLICY (agent 50 USD / 45 EUR, coupon 15% + free shipping 8 USD for
confusing_process, 100% refund + personal note for billing, note + mug 10 USD as fallback) with a
monthly budget of 100 USD for crm-east. The draft raises the coupon to 25% and lowers the agent's
USD limit to 30 (its EUR limit stays 45).

| id | when     | source    | complaint                 | in force                                    | draft |
|----|----------|-----------|---------------------------|---------------------------------------------|-------|
| d1 | Nov 3    | crm-east  | confusing, order 100 USD  | 15 + 8 = 23.00 granted (agent), Nov 23      | 25 + 8 = 33.00 > 30: pending supervisor, Nov 33 |
| d2 | Nov 10   | crm-east  | confusing, order 200 USD  | 30 + 8 = 38.00 granted, Nov 61              | 50 + 8 = 58.00 pending supervisor, Nov 91 |
| d3 | Nov 20   | crm-east  | billing, order 40 USD     | 40.00; 61 + 40 > 100: budget_exceeded, pending supervisor, Nov 101 | 40 > 30: pending supervisor, Nov 131 |
| d4 | Dec 2    | crm-east  | other, no order           | note + mug 10.00 granted, Dec 10            | the same |
| d5 | Dec 5    | crm-west  | confusing, order 100 EUR  | 15 + 7.20 = 22.20 EUR granted (agent, 45 EUR) | 25 + 7.20 = 32.20 EUR granted |

d3 changes only its reason (budget → agent limit), which is not a change of the decision.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from services.compensation import store
from services.compensation.domain import CaseFacts, decide
from services.compensation.domain import simulation as sim
from services.compensation.policy import CompensationPolicy
from shared.events import dump
from shared.policy import parse_policy
from tests.builders import classified_event
from tests.compensation.conftest import SMALL_POLICY

IN_FORCE_TEXT = SMALL_POLICY + "budgets:\n  crm-east: {USD: 100}\n"
DRAFT_TEXT = (IN_FORCE_TEXT.replace("percent: 15", "percent: 25")
              .replace("  - role: agent\n    limit: 50", "  - role: agent\n    limit: 30"))


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=timezone.utc)


# (decision id, case id, decided at, source, complaint fields)
COMPLAINTS = [
    ("d1", "CRM-1", at(11, 3), "crm-east", {"category": "confusing_process",
                                             "order": {"id": "O-1", "amount": 100, "currency": "USD"}}),
    ("d2", "CRM-2", at(11, 10), "crm-east", {"category": "confusing_process",
                                              "order": {"id": "O-2", "amount": 200, "currency": "USD"}}),
    ("d3", "CRM-3", at(11, 20), "crm-east", {"category": "billing",
                                              "order": {"id": "O-3", "amount": 40, "currency": "USD"}}),
    ("d4", "CRM-4", at(12, 2), "crm-east", {"category": "other"}),
    ("d5", "CRM-5", at(12, 5), "crm-west", {"category": "confusing_process",
                                             "order": {"id": "O-5", "amount": 100, "currency": "EUR"}}),
]


def policies() -> tuple[CompensationPolicy, CompensationPolicy]:
    assert DRAFT_TEXT.count("percent: 25") == 1 and "limit: 30" in DRAFT_TEXT
    return parse_policy(IN_FORCE_TEXT, CompensationPolicy), parse_policy(DRAFT_TEXT, CompensationPolicy)


def stored_rows(policy: CompensationPolicy) -> list[dict]:
    """The rows the service would have stored deciding COMPLAINTS under `policy` (its month_spent
    accumulated as the ledger does), read back as the store's `decisions_for_simulation` returns them."""
    rows, spent = [], Decimal(0)
    for decision_id, case_id, when, source, fields in COMPLAINTS:
        complaint = classified_event(case_id=case_id, source=source, **fields)
        facts = CaseFacts(month_spent=spent if when.month == 11 and source == "crm-east" else Decimal(0))
        decision = decide(complaint, policy, "v-in-force", facts)
        if decision.outcome == "granted" and source == "crm-east" and when.month == 11:
            spent += decision.value
        inputs = json.loads(json.dumps({"complaint": dump(complaint), "facts": store.facts_as_inputs(facts)},
                                       default=store._json_default))  # as jsonb holds them
        rows.append({"decision_id": decision_id, "case_id": case_id, "source": source, "decided_at": when,
                     "inputs": inputs, "outcome": decision.outcome, "rule_id": decision.rule_id,
                     "offers": decision.offers, "value": decision.value, "currency": decision.currency,
                     "authority": decision.authority})
    return rows


def replays():
    in_force, draft = policies()
    stored = [sim.stored_decision(r) for r in stored_rows(in_force)]
    return in_force, draft, sim.replay(stored, in_force, "v0"), sim.replay(stored, draft, "v1")


def test_the_policy_in_force_replays_what_was_stored():
    _, _, before, _ = replays()
    assert sim.differs_from_stored(before) == 0
    assert [(r.decision.outcome, r.decision.value, r.decision.authority) for r in before] == [
        ("granted", Decimal("23.00"), "agent"), ("granted", Decimal("38.00"), "agent"),
        ("pending_approval", Decimal("40.00"), "supervisor"), ("granted", Decimal("10.00"), "agent"),
        ("granted", Decimal("22.20"), "agent")]
    assert before[2].decision.reason_code == "budget_exceeded"


def test_per_rule_matched_offers_value_and_approvals():
    _, _, before, after = replays()
    old, new = sim.rule_stats(before), sim.rule_stats(after)
    assert list(old) == ["apology", "big_refund_for_billing", "coupon_for_confusion"]
    assert (old["coupon_for_confusion"].matched, old["coupon_for_confusion"].offers) == (3, 6)
    assert old["coupon_for_confusion"].value == {"USD": Decimal("61.00"), "EUR": Decimal("22.20")}
    assert old["coupon_for_confusion"].approvals == {}
    assert new["coupon_for_confusion"].value == {"USD": Decimal("91.00"), "EUR": Decimal("32.20")}
    assert new["coupon_for_confusion"].approvals == {"supervisor": 2}
    for stats in (old, new):
        assert (stats["big_refund_for_billing"].matched, stats["big_refund_for_billing"].offers) == (1, 2)
        assert stats["big_refund_for_billing"].value == {"USD": Decimal("40.00")}
        assert stats["big_refund_for_billing"].approvals == {"supervisor": 1}
        assert (stats["apology"].matched, stats["apology"].offers, stats["apology"].value) == (
            1, 2, {"USD": Decimal("10.00")})


def test_months_over_budget_count_pending_approvals_as_approved():
    in_force, draft, before, after = replays()
    old = {(b.source, b.month.month): (b.spent, b.over) for b in sim.month_budgets(before, in_force)}
    new = {(b.source, b.month.month): (b.spent, b.over) for b in sim.month_budgets(after, draft)}
    assert old == {("crm-east", 11): (Decimal("101.00"), True), ("crm-east", 12): (Decimal("10.00"), False)}
    assert new == {("crm-east", 11): (Decimal("131.00"), True), ("crm-east", 12): (Decimal("10.00"), False)}


def test_the_changed_decisions_and_what_changed():
    _, _, before, after = replays()
    changed = sim.changes(before, after)
    assert [(c.stored.decision_id, c.fields) for c in changed] == [
        ("d1", ("outcome", "offers", "value", "authority")),
        ("d2", ("outcome", "offers", "value", "authority")),
        ("d5", ("offers", "value")),
    ]
    d1 = changed[0]
    assert (d1.before.outcome, d1.after.outcome, d1.after.value, d1.after.authority) == (
        "granted", "pending_approval", Decimal("33.00"), "supervisor")
    assert changed[2].after.value == Decimal("32.20") and changed[2].after.currency == "EUR"


def test_a_reopened_case_keeps_its_cap_room_as_replayed():
    """A second grant on a reopened case reads the case's granted total as the replay left it: the
    first grant worth 10 more under the draft leaves 10 less room under the cap."""
    in_force, draft = policies()
    order = {"id": "O-9", "amount": 40, "currency": "USD"}
    first = classified_event(case_id="CRM-9", category="confusing_process", order=order)
    again = classified_event(case_id="CRM-9", category="delay", order=order)
    rows = []
    granted = Decimal(0)
    for n, (complaint, facts) in enumerate([(first, CaseFacts()),
                                            (again, CaseFacts(already_compensated=True, reopened=True))]):
        facts = CaseFacts(granted_total=granted, already_compensated=facts.already_compensated,
                          reopened=facts.reopened)
        decision = decide(complaint, in_force, "v", facts)
        granted += decision.value
        rows.append(sim.StoredDecision(f"r{n}", "CRM-9", "crm-east", at(11, 1 + n), complaint, facts,
                                       decision.outcome, decision.rule_id, decision.offers, decision.value,
                                       decision.currency, decision.authority))
    # in force: 15% of 40 = 6 + 8 = 14; then flowers 20 (34 ≤ cap 40)
    before = sim.replay(rows, in_force, "v")
    assert [r.decision.value for r in before] == [Decimal("14.00"), Decimal("20.00")]
    # draft: 25% of 40 = 10 + 8 = 18; then only 22 of room for the 20 flowers: still fits
    after = sim.replay(rows, draft, "v")
    assert [r.decision.value for r in after] == [Decimal("18.00"), Decimal("20.00")]
    assert after[1].decision.reason_code == "within_agent_limit"
    # With a cap of 0.9 × 40 = 36: in force 14 + 20 = 34 fits; under the draft 18 + 20 = 38 does not,
    # the flowers (a gesture, never cut down) are dropped and nothing is left: cap_reached. Read
    # from the recorded granted total (14) alone, the draft would have granted them.
    assert [r.decision.outcome for r in sim.replay(rows, in_force.model_copy(update={"cap_factor": Decimal("0.9")}),
                                                   "v")] == ["granted", "granted"]
    cut = sim.replay(rows, draft.model_copy(update={"cap_factor": Decimal("0.9")}), "v")
    assert (cut[1].decision.outcome, cut[1].decision.reason_code) == ("none", "cap_reached")
