"""Empowerment limits: which role may grant how much, and who settles an approval.

Limits are exact decimals: a role's limit in another currency is its `limit` converted at
`exchange_rates` and rounded down to that currency's minor units (money.py), unless the policy
writes one for that currency in `limits`.
"""
from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from ..policy import CompensationPolicy
from .money import exact, format_money, round_ceiling


class ApprovalCheck(NamedTuple):
    ok: bool
    reason: str


def limit_of(role: str, currency: str, policy: CompensationPolicy) -> tuple[bool, Decimal | None]:
    """(known, limit) of a role in a currency, in whole minor units of it; limit None means no limit."""
    found = policy.find_role(role)
    if found is None:
        return False, None
    if currency not in found.limits and found.limit is not None and not policy.knows_currency(currency):
        return False, None
    limit = policy.role_limit(found, currency)
    return True, None if limit is None else round_ceiling(limit, currency)


def covers(limit: Decimal | None, value: Decimal | float) -> bool:
    """Does a limit allow `value` (same currency)? Exact: 50.00 is within a limit of 50."""
    return limit is None or exact(value) <= limit


def lowest_role_covering(value: Decimal, currency: str, policy: CompensationPolicy, *,
                         above_first: bool = False) -> str | None:
    """The most junior role allowed to grant `value` `currency`; `above_first` skips the front-line role."""
    roles = policy.authority[1:] if above_first and len(policy.authority) > 1 else policy.authority
    for role in roles:
        known, limit = limit_of(role.role, currency, policy)
        if known and covers(limit, value):
            return role.role
    return None


def _format_limit(limit: Decimal | None, currency: str) -> str:
    return "any amount" if limit is None else f"up to {format_money(limit, currency)}"


def check_approval(pending_value: Decimal | float, currency: str, approver_role: str,
                   policy: CompensationPolicy) -> ApprovalCheck:
    """May someone of `approver_role` approve or deny a pending compensation of `pending_value` `currency`?"""
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
            f"this compensation is {format_money(pending_value, currency)}{who}")
    return ApprovalCheck(True, f"within the {approver_role} limit ({_format_limit(limit, currency)})")


# Why an approver's answer is refused (the `reason` of its rejected event and the metric label).
UNKNOWN_DECISION = "unknown_decision"
NOT_PENDING = "not_pending"
UNKNOWN_APPROVER_ROLE = "unknown_approver_role"
APPROVER_NOT_AUTHORISED = "approver_not_authorised"


class AnswerCheck(NamedTuple):
    """Whether an approver's answer settles its decision; `code` says why not ("" when it does)."""

    ok: bool
    code: str
    reason: str


def check_answer(status: str | None, value: Decimal | float, currency: str, approver_role: str,
                 policy: CompensationPolicy) -> AnswerCheck:
    """May an answer by `approver_role` settle a decision in `status` (None: no decision has the id)
    worth `value` `currency`? Only a pending decision is settled, by a role whose limit covers it."""
    if status is None:
        return AnswerCheck(False, UNKNOWN_DECISION, "no compensation decision has this id")
    if status != "pending":
        return AnswerCheck(False, NOT_PENDING, f"the decision is {status}, not waiting for approval")
    check = check_approval(value, currency, approver_role, policy)
    if check.ok:
        return AnswerCheck(True, "", check.reason)
    code = UNKNOWN_APPROVER_ROLE if policy.find_role(approver_role) is None else APPROVER_NOT_AUTHORISED
    return AnswerCheck(False, code, check.reason)


def next_role(role: str, policy: CompensationPolicy) -> str | None:
    """Who a stale approval escalates to: the next role up, or None at the top (or for an unknown role)."""
    names = [r.role for r in policy.authority]
    if role not in names:
        return None
    position = names.index(role)
    return names[position + 1] if position + 1 < len(names) else None


class EscalationStep(NamedTuple):
    """What a fired escalation timer does to its decision: `waiting` is False when the decision is
    gone or settled (nothing to do); `to_role` is the next role up, None at the top of the authority
    list or for a role the policy no longer knows (then the decision stays where it is)."""

    waiting: bool
    to_role: str | None


def escalation_step(status: str | None, authority: str | None, policy: CompensationPolicy) -> EscalationStep:
    """A stale approval (status None: no such decision) escalates one role up (`next_role`) only
    while it is still pending: config/compensation.yaml `approval_escalation_after`."""
    if status != "pending":
        return EscalationStep(False, None)
    return EscalationStep(True, next_role(authority or "", policy))
