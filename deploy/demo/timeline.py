"""Turns the helpdesk's output events into lines a support manager reads."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from deploy.demo.summary import money
from services.compensation.domain.money import exact

REASONS_SHOWN = 3
# Reasons that decide how a case is handled (services/intake/domain/severity.py, assess_severity): shown
# whatever else is cut, so "I will sue you" is never hidden behind the category's evidence.
DECISIVE_REASONS = ("customer threatens legal action", "customer threatens to leave", "safety concern")


def _rel(iso: str | None, t0: float) -> str:
    if not iso:
        return "?"
    try:
        return f"{datetime.fromisoformat(iso.replace('Z', '+00:00')).timestamp() - t0:+.0f}s"
    except ValueError:
        return iso


def _offers(offers: list[dict[str, Any]] | None) -> str:
    parts = []
    for o in offers or []:
        kind = o.get("kind", "?")
        detail = {k: v for k, v in o.items() if k not in {"kind", "cost"}}
        parts.append(kind.replace("_", " ") + (f" ({', '.join(f'{k} {v}' for k, v in detail.items())})" if detail else ""))
    return ", ".join(parts) or "nothing"


def shown_reasons(reasons: Iterable[str], limit: int = REASONS_SHOWN) -> str:
    """Up to `limit` reasons in their order, always including every decisive one (a legal threat, a
    threat to leave, a safety concern) even beyond `limit`; says how many were left out."""
    reasons = list(reasons)
    decisive = {i for i, text in enumerate(reasons) if text.startswith(DECISIVE_REASONS)}
    room = max(0, limit - len(decisive))
    others = [i for i in range(len(reasons)) if i not in decisive][:room]
    keep = sorted(decisive | set(others))
    left_out = len(reasons) - len(keep)
    return "; ".join(reasons[i] for i in keep) + (f" (+{left_out} more)" if left_out else "")


def _value(r: Mapping[str, Any]) -> str:
    if r.get("value") is None or not r.get("currency"):
        return f"{r.get('value')} {r.get('currency')}"
    return money({r["currency"]: exact(r["value"])})


def describe(r: dict[str, Any], t0: float, escalated_from: str | None = None) -> str | None:
    """One timeline line for an output event, or None for events the timeline leaves out.
    `escalated_from`: the role a `compensation.pending_approval` with `escalated` was waiting for
    before (see `describe_all`)."""
    kind = r.get("type", "")
    clock = str(r.get("clock", "")).replace("_", " ")
    promise = f" {r['promise_id']}" if r.get("promise_id") else ""
    if kind == "complaint.classified":
        reasons = shown_reasons(r.get("reasons", []))
        repeat = f" · repeat contact #{r['repeat_contacts']}" if r.get("repeat_contacts") else ""
        return (f"[green]classified[/] {r['category']} · {r['severity']} · {r['temperament']} · {r['loyalty']} · "
                f"publicity {r['publicity_risk']} → [bold]{r['priority']}[/]{repeat}  [dim]{reasons}[/]")
    if kind == "complaint.rejected":
        return f"[red]rejected[/] {r.get('reason')}: {'; '.join(r.get('errors', [])[:2])}"
    if kind == "sla.started":
        return f"[blue]clock started[/] {clock}{promise}, due {_rel(r.get('due_at'), t0)}"
    if kind == "sla.warning":
        return f"[yellow]warning[/] {clock}{promise}: {float(r.get('threshold', 0)):.0%} of the target used"
    if kind == "sla.breached":
        return f"[bold red]BREACHED[/] {clock}{promise}"
    if kind == "sla.escalated":
        return f"[red]escalated[/] {clock}{promise} level {r.get('level')} → notify {r.get('notify')}"
    if kind == "sla.met":
        late = f", late by {float(r['late_by_seconds']):.0f}s" if r.get("breached") and r.get("late_by_seconds") is not None else ""
        return f"[green]met[/] {clock}{promise}" + (f" [red](after its breach{late})[/]" if r.get("breached") else " in time")
    if kind == "sla.cancelled":
        return f"[dim]clock stopped {clock}{promise} (case resolved)[/]"
    if kind == "sla.retargeted":
        return f"[blue]clock re-targeted[/] {clock}: {r.get('old_priority')} → {r.get('priority')}, due {_rel(r.get('due_at'), t0)}"
    if kind == "compensation.pending_approval" and r.get("escalated"):
        level = f"level {r['escalation_level']}, " if r.get("escalation_level") else ""
        return (f"[magenta]approval escalated[/] from {escalated_from or 'the previous approver'} to {r.get('authority')} "
                f"({level}nobody answered in time): the same offer, {_value(r)}, still waiting")
    if kind in {"compensation.granted", "compensation.pending_approval"}:
        what = "offer granted" if kind == "compensation.granted" else "offer needs approval"
        return (f"[magenta]{what}[/] by {r.get('authority')}: {_offers(r.get('offers'))} — "
                f"{_value(r)} [dim](rule {r.get('rule_id')})[/]")
    if kind in {"compensation.approved", "compensation.denied"}:
        approver = r.get("approver") or {}
        role = approver.get("role") if isinstance(approver, dict) else approver
        return f"[magenta]offer {kind.split('.')[1]}[/] by {role}: {_offers(r.get('offers'))}"
    if kind == "compensation.none":
        return f"[magenta]no compensation[/]: {r.get('reason_code') or r.get('reason')}"
    if kind == "followup.scheduled":
        return f"[cyan]follow-up planned[/] {str(r.get('kind')).replace('_', ' ')} via {r.get('channel')}, due {_rel(r.get('due_at'), t0)}"
    if kind == "followup.due":
        return f"[bold cyan]follow-up due now[/] {str(r.get('kind')).replace('_', ' ')} via {r.get('channel')}"
    if kind == "followup.cancelled":
        return f"[dim]follow-up cancelled {str(r.get('kind')).replace('_', ' ')} ({r.get('reason', '')})[/]"
    if kind == "followup.skipped":
        when = "when due" if r.get("skipped_when") == "due" else "not planned"
        return f"[cyan]follow-up skipped[/] {str(r.get('kind')).replace('_', ' ')} ({when}: {r.get('reason')})"
    return None


def describe_all(records: Iterable[dict[str, Any]], t0: float) -> list[tuple[dict[str, Any], str]]:
    """Each record with its timeline line (records without one left out), in the order given,
    remembering which role each pending approval waited for so an escalation names both roles."""
    waiting_for: dict[str, str] = {}
    lines = []
    for r in records:
        escalated_from = None
        if r.get("type") == "compensation.pending_approval":
            escalated_from = waiting_for.get(str(r.get("decision_id")))
            waiting_for[str(r.get("decision_id"))] = str(r.get("authority"))
        text = describe(r, t0, escalated_from)
        if text:
            lines.append((r, text))
    return lines


def summary_rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("type") == "complaint.classified":
            latest[r["case_id"]] = r
    return [
        (case_id.rsplit("-", 1)[0], r["channel"], r["category"], r["severity"], r["temperament"], r["loyalty"],
         r["publicity_risk"], r["priority"], str(r.get("repeat_contacts", 0)))
        for case_id, r in sorted(latest.items())
    ]
