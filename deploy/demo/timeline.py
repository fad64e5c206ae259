"""Turns the helpdesk's output events into lines a support manager reads."""
from __future__ import annotations

from datetime import datetime
from typing import Any


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


def describe(r: dict[str, Any], t0: float) -> str | None:
    kind = r.get("type", "")
    clock = str(r.get("clock", "")).replace("_", " ")
    promise = f" {r['promise_id']}" if r.get("promise_id") else ""
    if kind == "complaint.classified":
        reasons = "; ".join(r.get("reasons", [])[:3])
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
    if kind in {"compensation.granted", "compensation.pending_approval"}:
        what = "offer granted" if kind == "compensation.granted" else "offer needs approval"
        return (f"[magenta]{what}[/] by {r.get('authority')}: {_offers(r.get('offers'))} — "
                f"{r.get('value')} {r.get('currency')} [dim](rule {r.get('rule_id')})[/]")
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
    return None


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
