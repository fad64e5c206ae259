"""Priority: the severity matrix, its bumps, then the policy's floors."""
from __future__ import annotations

from services.intake.domain.keywords import Finding
from services.intake.policy import PRIORITIES, PriorityRules
from shared.events import Loyalty, PublicityRisk, Severity, Temperament


def assign_priority(severity: Severity, temperament: Temperament, loyalty: Loyalty,
                    publicity_risk: PublicityRisk, rules: PriorityRules, category: str | None = None,
                    public: bool = False) -> Finding:
    """Priority from the severity matrix and its bumps, then the policy's floors (`at_least`)."""
    priority, reasons = _bumped_priority(severity, temperament, loyalty, publicity_risk, rules)
    for floor in rules.at_least:
        holds = (category in floor.categories and floor.public in (None, public)
                 and floor.publicity_risk in (None, publicity_risk))
        if holds and PRIORITIES.index(floor.priority) > PRIORITIES.index(priority):
            priority = floor.priority
            why = "a public complaint" if floor.public else f"{publicity_risk} publicity risk"
            reasons = [f"priority {priority}: {category} in {why} (was {reasons[0].removeprefix('priority ')})"]
    return priority, reasons


def _bumped_priority(severity: Severity, temperament: Temperament, loyalty: Loyalty,
                     publicity_risk: PublicityRisk, rules: PriorityRules) -> Finding:
    base = rules.base[severity]
    bumps = [
        (rules.bumps.temperament.get(temperament, 0), f"{temperament} customer"),
        (rules.bumps.loyalty.get(loyalty, 0), f"{loyalty} customer"),
        (rules.bumps.publicity_risk.get(publicity_risk, 0), "publicity risk"),
    ]
    applied = [(steps, label) for steps, label in bumps if steps > 0]
    total = min(sum(steps for steps, _ in applied), rules.max_total_bump)
    level = min(PRIORITIES.index(base) + total, len(PRIORITIES) - 1)
    priority = PRIORITIES[level]
    if not applied:
        return priority, [f"priority {priority} for {severity} severity"]
    raised = ", ".join(label for _, label in applied)
    return priority, [f"priority {priority}: {base} for {severity} severity, raised for {raised}"]
