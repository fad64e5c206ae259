"""Pure compensation rules: no I/O, no clock; the service feeds in the complaint, the policy and case facts."""
from .approvals import ApprovalCheck, check_approval, lowest_role_covering, next_role
from .budgets import BudgetCharge, BudgetLine, budget_line, charge
from .costing import Terms, order_terms
from .decide import REASON_PRECEDENCE, CaseFacts, Decision, decide
from .money import format_money, json_number, minor_units, round_money

__all__ = [
    "ApprovalCheck", "BudgetCharge", "BudgetLine", "CaseFacts", "Decision", "REASON_PRECEDENCE", "Terms",
    "budget_line", "charge", "check_approval", "decide", "format_money", "json_number", "lowest_role_covering",
    "minor_units", "next_role", "order_terms", "round_money",
]
