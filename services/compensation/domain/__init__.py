"""Pure compensation rules: no I/O, no clock; the service feeds in the complaint, the policy and case facts."""
from .approvals import ApprovalCheck, check_approval, lowest_role_covering, next_role
from .costing import Terms, order_terms
from .decide import REASON_PRECEDENCE, CaseFacts, Decision, decide

__all__ = [
    "ApprovalCheck", "CaseFacts", "Decision", "REASON_PRECEDENCE", "Terms",
    "check_approval", "decide", "lowest_role_covering", "next_role", "order_terms",
]
