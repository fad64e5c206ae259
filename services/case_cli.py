"""`helpdesk case show`: one case as a person reads it, or its raw rows as JSON (`--json`).

The human view (`build_view` from `shared.case_view.case_rows`, `render` to a rich console) has a
header (category, priority, customer id and zone, status; no names — the services store none), the
SLA clocks (target, due time, state), compensation decisions (amount with its currency, offers,
approvals), follow-ups (planned / sent / cancelled / skipped, due times) and the events in time
order. Times are UTC and marked so; due times also in the customer's zone when it is not UTC. It
fits 100 columns: long text wraps at word boundaries inside its own column.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.compensation.domain.money import format_money
from shared.case_view import Rows
from shared.durations import format_duration

FOLLOWUP_STATUS = {"scheduled": "planned", "due": "sent", "cancelled": "cancelled", "skipped": "skipped"}
CLOCK_NAMES = {"first_contact": "first contact", "update": "update", "resolution": "resolution", "promise": "promise"}
SERVICE_ORDER = {"intake": 0, "sla": 1, "compensation": 2, "followup": 3}


@dataclass
class Header:
    """What the case is: from intake (classification), else the classified complaint compensation
    kept, else followup / sla; followup gives the zone and status, sla whether it is paused. None:
    no service knows it."""

    case_id: str
    priority: str | None = None
    category: str | None = None
    severity: str | None = None
    temperament: str | None = None
    loyalty: str | None = None
    publicity_risk: str | None = None
    channel: str | None = None
    source: str | None = None
    customer_id: str | None = None
    zone: str | None = None
    complaints: int | None = None
    first_received_at: datetime | None = None
    status: str = "open"
    reopens: int = 0
    decided_by: str | None = None
    needs_review: bool = False
    reasons: list[str] = field(default_factory=list)
    known_to_intake: bool = True


@dataclass
class ClockLine:
    """One SLA clock: `state` in words (met, met late, breached, paused since, running, cancelled),
    and the business calendar it counts on when not round the clock."""

    name: str
    target: str
    due_at: datetime
    state: str


@dataclass
class DecisionLine:
    """One compensation decision: `amount` is the decision's value in `currency`."""

    decided_at: datetime
    outcome: str
    amount: str
    rule: str
    offers: list[str]


@dataclass
class FollowupLine:
    kind: str
    channel: str
    due_at: datetime
    status: str  # planned | sent | cancelled | skipped, with when and why


@dataclass(order=True)
class Event:
    """One thing that happened: when (UTC), which service knows it, what (no free text)."""

    at: datetime
    rank: int
    service: str = field(compare=False)
    text: str = field(compare=False)


@dataclass
class CaseView:
    header: Header
    clocks: list[ClockLine]
    decisions: list[DecisionLine]
    followups: list[FollowupLine]
    events: list[Event]

    @property
    def zone(self) -> ZoneInfo | None:
        """The customer's zone when it is known and not UTC (then due times show local time too)."""
        if not self.header.zone or self.header.zone in ("UTC", "Etc/UTC"):
            return None
        try:
            return ZoneInfo(self.header.zone)
        except (ZoneInfoNotFoundError, ValueError):
            return None


def utc(at: datetime | None, with_date: bool = True) -> str:
    """'2026-03-29 14:05:09' (UTC) or '14:05:09' without the date; '-' for none."""
    if at is None:
        return "-"
    at = at.astimezone(ZoneInfo("UTC"))
    return at.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def local(at: datetime | None, zone: ZoneInfo | None) -> str:
    """'03-29 16:05 CEST' in the customer's zone (the year is the UTC column's); '' when no zone."""
    if at is None or zone is None:
        return ""
    return at.astimezone(zone).strftime("%m-%d %H:%M %Z")


def _since(at: datetime | None, ref: datetime | None) -> str:
    """A time next to another: only the clock time when on the same UTC day."""
    same_day = at is not None and ref is not None and utc(at)[:10] == utc(ref)[:10]
    return utc(at, with_date=not same_day)


def _money(value: Any, currency: str) -> str:
    try:
        return format_money(Decimal(str(value)), currency)
    except Exception:  # an unknown currency code or a broken value: still show what is stored
        return f"{value} {currency}"


def _clock_name(row: dict[str, Any]) -> str:
    name = CLOCK_NAMES.get(row["kind"], row["kind"])
    return f"{name} {row['promise_id']}" if row.get("promise_id") else name


def _clock_state(row: dict[str, Any]) -> str:
    state, due, breached = row["state"], row["due_at"], row.get("breached_at")
    if state == "met":
        return f"met late at {_since(row['ended_at'], due)}" if breached or row["ended_at"] > due else \
            f"met at {_since(row['ended_at'], due)}"
    if state == "cancelled":
        return f"cancelled at {_since(row['ended_at'], due)}" + (" after its breach" if breached else "")
    if state == "paused":
        return f"paused since {_since(row['paused_at'], due)}" + (" after its breach" if breached else "")
    if state == "breached":
        escalated = row.get("escalations_sent") or 0
        return f"breached at {_since(breached, due)}, still open" + (f", escalated {escalated}×" if escalated else "")
    warned = row.get("warnings_sent") or []
    return "running" + (f", warned at {', '.join(f'{w:.0%}' for w in warned)}" if warned else "")


def _outcome(row: dict[str, Any]) -> str:
    status = row["status"]
    escalated = f", escalated {row['escalations']}×" if row.get("escalations") else ""
    approver = " ".join(x for x in (row.get("approver_role"), row.get("approver_id")) if x)
    if status == "granted":
        return f"granted ({row.get('authority') or 'agent'})"
    if status == "pending":
        return f"awaits approval by {row.get('authority') or '?'}{escalated}"
    if status in ("approved", "denied"):
        return f"{status} by {approver or '?'}{escalated}"
    return f"none ({row.get('reason_code')})"


def _offer(offer: dict[str, Any], currency: str) -> str:
    kind = str(offer.get("kind", "?"))
    value = offer.get("value")
    what = str(offer.get("description") or offer.get("note") or "")
    return kind + (f" {_money(value, currency)}" if value else "") + (f" ({what})" if what else "")


def _classification(rows: Rows) -> dict[str, Any]:
    complaints = rows.get("intake.complaints", [])
    latest = max(complaints, key=lambda r: r["occurred_at"], default=None)
    value = latest["classification"] if latest else {}
    return value if isinstance(value, dict) else {}


_CLASSIFIED = ("priority", "category", "severity", "temperament", "loyalty", "publicity_risk", "channel", "source",
               "customer_id")


def _header(case_id: str, rows: Rows) -> Header:
    h = Header(case_id)
    intake = (rows.get("intake.cases") or [None])[0]
    followup = (rows.get("followup.cases") or [None])[0]
    sla = (rows.get("sla.cases") or [None])[0]
    comp = (rows.get("compensation.cases") or [None])[0]
    decided = [d["inputs"].get("complaint") for d in rows.get("compensation.decisions", [])
               if isinstance(d.get("inputs"), dict) and isinstance(d["inputs"].get("complaint"), dict)]
    known = intake or (decided[-1] if decided else None) or {**(sla or {}), **(followup or {})}
    for name in _CLASSIFIED:
        setattr(h, name, known.get(name))
    h.known_to_intake = intake is not None
    if intake:
        h.complaints, h.first_received_at = intake["complaints"], intake["first_received_at"]
    elif followup:
        h.first_received_at = followup["received_at"]
    if followup:
        h.zone = followup.get("timezone")
    elif decided:  # compensation keeps the classified complaint it decided on
        h.zone = decided[-1].get("customer_timezone")
    resolved = (followup and followup["status"] == "resolved") or (sla and sla["resolved"])
    h.status = "resolved" if resolved else "paused" if sla and sla.get("paused_at") else "open"
    h.reopens = comp["reopens"] if comp else 0
    classification = _classification(rows)
    h.decided_by, h.needs_review = classification.get("decided_by"), bool(classification.get("needs_review"))
    h.reasons = [str(r) for r in classification.get("reasons", [])]
    return h


def _events(rows: Rows) -> list[Event]:
    events: list[Event] = []

    def add(at: datetime | None, service: str, text: str) -> None:
        if at is not None:
            events.append(Event(at, SERVICE_ORDER[service], service, text))

    for c in sorted(rows.get("intake.complaints", []), key=lambda c: c["occurred_at"]):
        cls = c["classification"] if isinstance(c["classification"], dict) else {}
        repeat = f" (repeat contact {c['repeat_contacts']})" if c["repeat_contacts"] else ""
        add(c["occurred_at"], "intake", f"complaint received{repeat}: {cls.get('priority', '?')} "
                                        f"{cls.get('category', '?')}, by {cls.get('decided_by', '?')}")
    for k in sorted(rows.get("sla.clocks", []), key=lambda k: (k["started_at"], k["clock_key"])):
        name = _clock_name(k)
        add(k["started_at"], "sla", f"{name} clock started: {format_duration(k['target'])}, due {_since(k['due_at'], k['started_at'])}")
        if k.get("breached_at"):
            add(k["breached_at"], "sla", f"{name} breached")
        if k["state"] in ("met", "cancelled"):
            add(k["ended_at"], "sla", f"{name} {k['state']}")
        elif k["state"] == "paused":
            add(k.get("paused_at"), "sla", f"{name} paused")
    for table in ("sla.pending_activity", "followup.pending_activity"):
        for p in rows.get(table, []):
            kind = p.get("type") or (p.get("event") or {}).get("type", "activity")
            add(p["occurred_at"], table.split(".")[0], f"{kind} waits for the complaint's classification")
    for d in sorted(rows.get("compensation.decisions", []), key=lambda d: d["decided_at"]):
        offers = f" ({d['rule_id']})" if d.get("rule_id") else ""
        first = {"granted": "granted", "pending_approval": "needs approval", "none": "no compensation"}.get(d["outcome"], d["outcome"])
        amount = _money(d["value"], d["currency"]) if d["outcome"] != "none" else d.get("reason_code", "")
        add(d["decided_at"], "compensation", f"{first}: {amount}{offers}")
        if d["status"] in ("approved", "denied") and d.get("settled_at"):
            add(d["settled_at"], "compensation", f"{d['status']} by {d.get('approver_role') or '?'} "
                                                 f"{d.get('approver_id') or ''}".rstrip())
    for a in sorted(rows.get("compensation.approval_answers", []), key=lambda a: (a["received_at"], a["event_id"])):
        verdict = "accepted" if a["accepted"] else f"refused: {a['reason']}"
        add(a["received_at"], "compensation", f"answer '{a['answer']}' from {a['approver_role']} {a['approver_id']}: {verdict}")
    for c in rows.get("followup.cases", []):  # before what the resolution planned at the same instant
        add(c.get("resolved_at"), "followup", "case resolved")
    planned: dict[datetime, list[str]] = {}
    skipped = []
    for f in sorted(rows.get("followup.followups", []), key=lambda f: (f["created_at"], f["due_at"], f["followup_id"])):
        if f["status"] == "skipped":
            skipped.append((f["created_at"], f"{f['kind']} skipped: {f['reason'] or 'no reason stored'}"))
            continue
        planned.setdefault(f["created_at"], []).append(f["kind"])
        if f["status"] in ("due", "cancelled"):
            add(f.get("closed_at"), "followup", f"{f['kind']} {FOLLOWUP_STATUS[f['status']]}")
    for created, kinds in planned.items():  # one line for what one resolution planned
        counted = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        add(created, "followup", "planned: " + ", ".join(k + (f" ×{n}" if n > 1 else "") for k, n in counted.items()))
    for created, text in skipped:
        add(created, "followup", text)
    for s in sorted(rows.get("followup.survey_responses", []), key=lambda s: s["answered_at"]):
        score = f": score {s['score']:g}" if s.get("score") is not None else ""
        add(s["answered_at"], "followup", f"survey answered{score}")
    return sorted(events)


def build_view(case_id: str, rows: Rows) -> CaseView:
    """The human view of a case from its rows (`shared.case_view.case_rows`); pure, no I/O."""
    clocks = [ClockLine(_clock_name(k), format_duration(k["target"]), k["due_at"],
                        _clock_state(k) + ("" if k["calendar"] == "24x7" else f" · counts {k['calendar']} hours"))
              for k in sorted(rows.get("sla.clocks", []), key=lambda k: (k["started_at"], k["clock_key"]))]
    decisions = []
    for d in sorted(rows.get("compensation.decisions", []), key=lambda d: d["decided_at"]):
        offers = d.get("offers") if isinstance(d.get("offers"), list) else []
        decisions.append(DecisionLine(d["decided_at"], _outcome(d), _money(d["value"], d["currency"]),
                                      d.get("rule_id") or d.get("reason_code") or "",
                                      [_offer(o, d["currency"]) for o in offers if isinstance(o, dict)]))
    followups = []
    for f in sorted(rows.get("followup.followups", []), key=lambda f: (f["due_at"], f["kind"])):
        status = FOLLOWUP_STATUS.get(f["status"], f["status"])
        if f["status"] in ("due", "cancelled") and f.get("closed_at"):
            status += f" at {_since(f['closed_at'], f['due_at'])}"
        if f["status"] in ("cancelled", "skipped") and f.get("reason"):
            status += f": {f['reason']}"
        followups.append(FollowupLine(f["kind"], f["channel"], f["due_at"], status))
    return CaseView(_header(case_id, rows), clocks, decisions, followups, _events(rows))


def _table(*columns: tuple[str, dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold", show_edge=False)
    for name, options in columns:
        table.add_column(name, **options)
    return table


FIXED = {"no_wrap": True}  # times, ids, short words: never folded
WRAP = {"overflow": "fold"}  # long text: wraps at word boundaries in the room left (a word longer than that folds)


def render(view: CaseView, console: Console) -> None:
    """Prints the case: header, SLA clocks, compensation, follow-ups, timeline (see the module doc)."""
    h, zone = view.header, view.zone
    first = [f"[bold]Case {escape(h.case_id)}[/bold]"]
    what = " ".join(escape(x) for x in (h.priority, h.category) if x)
    if what:
        first.append(what + (f" (by {h.decided_by})" if h.decided_by else ""))
    first.append(h.status + (f", reopened {h.reopens}×" if h.reopens else "") + (", needs review" if h.needs_review else ""))
    console.print(" · ".join(first))
    who = [f"customer {escape(h.customer_id)}" + (f" ({', '.join(x for x in (h.loyalty, h.temperament) if x)})"
                                                  if h.loyalty or h.temperament else "")] if h.customer_id else []
    who += [f"zone {escape(h.zone or 'unknown')}"]
    who += [f"{label} {escape(str(value))}" for label, value in (("channel", h.channel), ("source", h.source)) if value]
    console.print(" · ".join(who))
    facts = [f"{label} {value}" for label, value in (("severity", h.severity), ("publicity risk", h.publicity_risk)) if value]
    if h.complaints is not None:
        facts.append(f"{h.complaints} complaint(s), the first {utc(h.first_received_at)} UTC")
    elif h.first_received_at:
        facts.append(f"received {utc(h.first_received_at)} UTC")
    if facts:
        console.print(" · ".join(facts))
    if h.reasons:
        console.print("why: " + escape("; ".join(h.reasons)))
    if not h.known_to_intake:
        console.print("intake has no row for this case: the header comes from the other services.", style="dim")
    console.print("Times are UTC" + (f"; 'local' is the customer's time ({escape(h.zone or '')})." if zone else "."),
                  style="dim")

    if view.clocks:
        console.print("\n[bold]SLA clocks[/bold]")
        table = _table(("clock", FIXED), ("target", FIXED), ("due (UTC)", FIXED),
                       *((("local", FIXED),) if zone else ()), ("state", WRAP))
        for c in view.clocks:
            table.add_row(escape(c.name), c.target, utc(c.due_at), *((local(c.due_at, zone),) if zone else ()), c.state)
        console.print(table)
    if view.decisions:
        console.print("\n[bold]Compensation[/bold]")
        table = _table(("decided (UTC)", FIXED), ("amount", {**FIXED, "justify": "right"}), ("decision", WRAP))
        for d in view.decisions:
            offers = "\n" + escape("offers: " + "; ".join(d.offers)) if d.offers else ""
            table.add_row(utc(d.decided_at), d.amount, escape(f"{d.outcome} · rule {d.rule}") + offers)
        console.print(table)
    if view.followups:
        console.print("\n[bold]Follow-ups[/bold]")
        table = _table(("kind", FIXED), ("channel", FIXED), ("due (UTC)", FIXED),
                       *((("local", FIXED),) if zone else ()), ("status", WRAP))
        for f in view.followups:
            table.add_row(f.kind, f.channel, utc(f.due_at), *((local(f.due_at, zone),) if zone else ()), escape(f.status))
        console.print(table)
    console.print("\n[bold]Timeline (UTC)[/bold]")
    table = _table(("when", FIXED), ("service", FIXED), ("what", WRAP))
    for e in view.events:
        table.add_row(utc(e.at), e.service, escape(e.text))
    console.print(table)


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 100, highlight=False)


def _where(database_url: str) -> str:
    """host:port/db of a database URL, never its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def show(case_id: str, as_json: bool, database_url: str) -> None:
    """`helpdesk case show`: the human view, or with `as_json` the raw rows as JSON. Exit 1 when no
    service knows the case or the database cannot be reached (a message, no traceback)."""
    import asyncio

    import asyncpg

    from shared.case_view import case_rows, to_json

    try:
        rows = asyncio.run(case_rows(database_url, case_id))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        typer.secho(f"cannot read the case from PostgreSQL at {_where(database_url)}: {type(exc).__name__}: {exc}",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if not rows:
        typer.secho(f"case {case_id} not found: no service has a row for it in {_where(database_url)}",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    if as_json:
        typer.echo(to_json(case_id, rows))
        return
    render(build_view(case_id, rows), _console())
