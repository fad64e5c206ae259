"""Pure compensation rules: no I/O, no clock; the service feeds in the complaint, the policy and case facts."""
from .approvals import (
    AnswerCheck, ApprovalCheck, EscalationStep, check_answer, check_approval, escalation_step, lowest_role_covering,
    next_role,
)
from .budgets import BudgetCharge, BudgetLine, budget_line, budgets_remaining, charge, month_start
from .costing import Terms, order_terms
from .decide import REASON_PRECEDENCE, CaseFacts, Decision, decide
from .money import format_money, json_number, minor_units, round_money
from .rounds import CaseHistory, case_facts, grant_round, refused_as_duplicate, reopened_since_compensated

__all__ = [
    "AnswerCheck", "ApprovalCheck", "BudgetCharge", "BudgetLine", "CaseFacts", "CaseHistory", "Decision",
    "EscalationStep", "REASON_PRECEDENCE", "Terms", "budget_line", "budgets_remaining", "case_facts", "charge",
    "check_answer", "check_approval", "decide", "escalation_step", "format_money", "grant_round", "json_number",
    "lowest_role_covering", "minor_units", "month_start", "next_role", "order_terms", "refused_as_duplicate",
    "reopened_since_compensated", "round_money",
]
