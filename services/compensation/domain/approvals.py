"""Empowerment limits: which role may grant how much, and who settles an approval."""
from __future__ import annotations

from typing import NamedTuple

from ..policy import CompensationPolicy

# Float sums of cents land a hair above a limit they equal.
_EPSILON = 1e-6


class ApprovalCheck(NamedTuple):
    ok: bool
    reason: str


def limit_of(role: str, currency: str, policy: CompensationPolicy) -> tuple[bool, float | None]:
    """(known, limit) of a role in a currency; limit None means no limit."""
    found = policy.find_role(role)
    if found is None:
        return False, None
    if currency not in found.limits and found.limit is not None and not policy.knows_currency(currency):
        return False, None
    return True, policy.role_limit(found, currency)


def covers(limit: float | None, value: float) -> bool:
    return limit is None or value <= limit + _EPSILON


def lowest_role_covering(value: float, currency: str, policy: CompensationPolicy, *, above_first: bool = False) -> str | None:
    """The most junior role allowed to grant `value`; `above_first` skips the front-line role."""
    roles = policy.authority[1:] if above_first and len(policy.authority) > 1 else policy.authority
    for role in roles:
        known, limit = limit_of(role.role, currency, policy)
        if known and covers(limit, value):
            return role.role
    return None


def _format_limit(limit: float | None, currency: str) -> str:
    return "any amount" if limit is None else f"up to {limit:.2f} {currency}"


def check_approval(pending_value: float, currency: str, approver_role: str, policy: CompensationPolicy) -> ApprovalCheck:
    """May someone of `approver_role` approve or deny a pending compensation of this value?"""
    known_roles = ", ".join(r.role for r in policy.authority)
    if policy.find_role(approver_role) is None:
        return ApprovalCheck(False, f"unknown approver role {approver_role!r}: the policy knows {known_roles}")
    known, limit = limit_of(approver_role, currency, policy)
    if not known:
        return ApprovalCheck(False, f"role {approver_role} has no limit in {currency}: the policy has no exchange rate for it")
    if not covers(limit, pending_value):
        needed = lowest_role_covering(pending_value, currency, policy)
        who = f"; it needs {needed}" if needed else "; no role in the policy may approve it"
        return ApprovalCheck(
            False,
            f"role {approver_role} may approve {_format_limit(limit, currency)}, "
            f"this compensation is {pending_value:.2f} {currency}{who}")
    return ApprovalCheck(True, f"within the {approver_role} limit ({_format_limit(limit, currency)})")


def next_role(role: str, policy: CompensationPolicy) -> str | None:
    """Who a stale approval escalates to: the next role up, or None at the top (or for an unknown role)."""
    names = [r.role for r in policy.authority]
    if role not in names:
        return None
    position = names.index(role)
    return names[position + 1] if position + 1 < len(names) else None
