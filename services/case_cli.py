"""`helpdesk case show`: one case as a person reads it, or its raw rows as JSON (`--json`).

The human view (`build_view` from `services.case_view.case_rows`, `render` to a rich console) has a
header (category, priority, customer id and zone, status; no names — the services store none), the
SLA clocks (target, due time, state), compensation decisions (amount with its currency, offers,
approvals), follow-ups (planned / sent / cancelled / skipped, due times) and the events in time
order. Times are UTC and marked so; due times also in the customer's zone when it is not UTC.

Width: `COLUMNS` when set, else the terminal's width on a terminal, else 100 columns (never less
than 40); long text wraps at word boundaries inside its own column and no line ends in spaces.

The timeline shows what the services store, and only that (README, "What `case show` can and
cannot show"): sla keeps one row per clock, so a restarted clock (a reopen, a re-target, each new
update period) replaces the earlier run; a pause shows while it lasts, and afterwards only as the
working time it kept off the clock; automated contacts are counted in a metric, not stored.
Events at one instant are ordered causally (what happened, then what it started, then what it
moved, then what it ended), then by service, then as read.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.case_view import Rows
from services.compensation.domain.money import format_money
from services.registry import NAMES

FOLLOWUP_STATUS = {"scheduled": "planned", "due": "sent", "cancelled": "cancelled", "skipped": "skipped"}
CLOCK_NAMES = {"first_contact": "first contact", "update": "update", "resolution": "resolution", "promise": "promise"}
SERVICE_ORDER = {name: i for i, name in enumerate(NAMES)}  # pipeline order
# Within one instant: what happened (a complaint, a resolution, an answer), then what it started or
# planned, then what it moved (paused, breached, settled), then what it ended (met, cancelled, sent).
CAUSE, START, MOVE, END = range(4)
ALWAYS_OPEN = "24x7"
DEFAULT_WIDTH = 100  # not a terminal and no COLUMNS
MIN_WIDTH = 40
FOLLOWUP_CANCELLED = {"customer_returned": "the customer returned", "case_reopened": "the case was reopened"}


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
    """One follow-up: its kind, channel, due time (UTC) and status in words."""

    kind: str
    channel: str
    due_at: datetime
    status: str  # planned | sent | cancelled | skipped, with when and why


@dataclass(order=True)
class Event:
    """One thing that happened: when (UTC), which service knows it, what (no free text). Ordered by
    time, then `phase` (CAUSE, START, MOVE, END), then service, then `seq` (the order read)."""

    at: datetime
    phase: int
    rank: int
    seq: int
    service: str = field(compare=False)
    text: str = field(compare=False)


@dataclass
class CaseView:
    """Everything `render` prints: the header, the four sections and the timeline in order."""

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


def human_duration(delta: timedelta | None, days: bool = True) -> str:
    """A duration as people read it: '2d 2h 18m', '45m', '1h 0m 30s', '0s'. `days=False` counts in
    hours ('50h 18m'): working time on a business calendar, where a day is not 24 hours. Negative
    durations get a leading '-'. None: '-'."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    sizes = ((("d", 86400),) if days else ()) + (("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for unit, size in sizes:
        amount, seconds = divmod(seconds, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
    while len(parts) > 1 and parts[-1][0] == "0":  # '2h 0m' -> '2h'; inner zeros stay: '1h 0m 30s'
        parts.pop()
    return sign + (" ".join(parts) or "0s")


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


def _target(row: dict[str, Any]) -> str:
    """The clock's target: days on a 24x7 clock, hours of working time on a business calendar."""
    return human_duration(row["target"], days=row.get("calendar", ALWAYS_OPEN) == ALWAYS_OPEN)


def _working(row: dict[str, Any], delta: timedelta | None) -> str:
    return human_duration(delta, days=row.get("calendar", ALWAYS_OPEN) == ALWAYS_OPEN)


def _arrival(row: dict[str, Any], rows: Rows) -> datetime | None:
    """When the complaint that started this clock reached intake (`recorded_at`), for first-contact
    and resolution clocks started at a complaint's own time; None when not known."""
    if row["kind"] not in ("first_contact", "resolution"):
        return None
    for c in rows.get("intake.complaints", []):
        if c["occurred_at"] == row["started_at"] and c.get("recorded_at") is not None:
            return c["recorded_at"]
    return None


def _met_before_due_but_breached(row: dict[str, Any]) -> bool:
    """sla learned of the contact only after the due time had passed: the breach was recorded (and
    published) then, and the later `met` keeps it (`sla.met` with breached true, late by 0)."""
    return row["state"] == "met" and bool(row.get("breached_at")) and row["ended_at"] <= row["due_at"]


def _breached_on_arrival(row: dict[str, Any], arrival: datetime | None) -> bool:
    return bool(row.get("breached_at")) and arrival is not None and arrival > row["due_at"]


def _clock_state(row: dict[str, Any], arrival: datetime | None = None) -> str:
    """The clock's state in one truthful phrase. `arrival`: when its complaint reached intake.

    A clock met before its due time can still carry `breached_at` (sla sets it to the due time when
    its breach timer fires): the contact was made in time by the CRM's clock but sla heard of it
    only after the due time, or the complaint itself arrived after its due time. That reads as one
    state, "breached on arrival" or "counted as breached", with the CRM's time of the contact."""
    state, due, breached = row["state"], row["due_at"], row.get("breached_at")
    paused = row.get("paused_total") or timedelta(0)
    not_counted = f", {_working(row, paused)} paused not counted" if paused > timedelta(0) else ""
    on_arrival = _breached_on_arrival(row, arrival)
    arrived = f"breached on arrival (due {_since(due, due)} had passed when the complaint arrived at " \
              f"{_since(arrival, due)})"
    if state == "met":
        ended = _since(row["ended_at"], due)
        if _met_before_due_but_breached(row):
            if on_arrival:
                return f"{arrived}; met at {ended} per the CRM" + not_counted
            reported = row.get("updated_at")
            when = f" at {_since(reported, due)}" if reported is not None and reported > due else ""
            return f"counted as breached: met at {ended} per the CRM, before its due time, but sla learned " \
                   f"of it only after the due time{when}" + not_counted
        late = breached or row["ended_at"] > due
        return (f"met late at {ended}" if late else f"met at {ended}") + not_counted
    if state == "cancelled":
        return f"cancelled at {_since(row['ended_at'], due)}" + (" after its breach" if breached else "") + not_counted
    if state == "paused":
        return f"paused since {_since(row['paused_at'], due)}" + (" after its breach" if breached else "") + \
            (f", {_working(row, paused)} paused before" if paused > timedelta(0) else "")
    if state == "breached":
        escalated = row.get("escalations_sent") or 0
        head = arrived if on_arrival else f"breached at {_since(breached, due)}"
        return head + ", still open" + (f", escalated {escalated}×" if escalated else "") + not_counted
    warned = row.get("warnings_sent") or []
    return "running" + (f", warned at {', '.join(f'{w:.0%}' for w in warned)}" if warned else "") + not_counted


def _run_cause(row: dict[str, Any], rows: Rows) -> str:
    """Why this run of the clock started: 'started', 'retargeted' (a repeat complaint raised the
    priority) or 'reopened' (a case.reopened restarted resolution and update).

    sla keeps one row per clock; a re-target or a reopen overwrites `started_at` and `started_by`
    but not the case's `classified_by`, and only a re-target carries `counted_before` or falls on
    a complaint's time."""
    if row["kind"] not in ("first_contact", "resolution"):
        return "started"
    if (row.get("counted_before") or timedelta(0)) > timedelta(0):
        return "retargeted"
    sla_case = (rows.get("sla.cases") or [{}])[0]
    classified_by, started_by = sla_case.get("classified_by"), row.get("started_by")
    if not classified_by or not started_by or started_by == classified_by:
        return "started"
    complaints = [c["occurred_at"] for c in rows.get("intake.complaints", [])]
    if row["started_at"] in complaints:
        return "started" if row["started_at"] == min(complaints) else "retargeted"
    return "reopened" if row["kind"] == "resolution" else "started"


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
    reopened_in_sla = any(_run_cause(k, rows) == "reopened" for k in rows.get("sla.clocks", []))
    h.reopens = max(comp["reopens"] if comp else 0, 1 if reopened_in_sla else 0)
    classification = _classification(rows)
    h.decided_by, h.needs_review = classification.get("decided_by"), bool(classification.get("needs_review"))
    h.reasons = [str(r) for r in classification.get("reasons", [])]
    return h


def _clock_events(rows: Rows, add: Any) -> None:
    """Each clock's run: started (or re-targeted, or restarted by a reopen), breached, paused, ended."""
    sla_case = (rows.get("sla.cases") or [{}])[0]
    case_paused = sla_case.get("paused_at")
    if case_paused is not None:
        add(case_paused, "sla", CAUSE, "case paused (waiting on the customer): resolution and update clocks stop")
    for k in sorted(rows.get("sla.clocks", []), key=lambda k: (k["started_at"], k["clock_key"])):
        name, due, cause = _clock_name(k), k["due_at"], _run_cause(k, rows)
        target = f"{_target(k)}, due {_since(due, k['started_at'])}"
        if cause == "reopened":
            add(k["started_at"], "sla", CAUSE, "case reopened: resolution and update clocks restart (sla keeps "
                                               "only this run; the earlier round's clocks are not stored)")
            add(k["started_at"], "sla", START, f"{name} clock restarted: {target}")
        elif cause == "retargeted":
            counted = k.get("counted_before") or timedelta(0)
            add(k["started_at"], "sla", START, f"{name} clock re-targeted to {k['priority']}: {target}"
                + (f", {_working(k, counted)} already counted" if counted > timedelta(0) else ""))
        else:
            add(k["started_at"], "sla", START, f"{name} clock started: {target}")
        arrival = _arrival(k, rows)
        if k.get("breached_at"):
            escalated = k.get("escalations_sent") or 0
            if _breached_on_arrival(k, arrival):
                text = f"{name} breached on arrival: its due time had passed when the complaint arrived at " \
                       f"{_since(arrival, k['breached_at'])}"
            elif _met_before_due_but_breached(k):
                text = f"{name} breached: sla knew of no {name} by its due time"
            else:
                text = f"{name} breached"
            add(k["breached_at"], "sla", MOVE, text + (f", escalated {escalated}×" if escalated else ""))
        paused = k.get("paused_total") or timedelta(0)
        not_counted = f" ({_working(k, paused)} paused, not counted)" if paused > timedelta(0) else ""
        if k["state"] == "met":
            if _met_before_due_but_breached(k):
                add(k["ended_at"], "sla", END, f"{name} met per the CRM, before its due time; sla learned of it "
                                               f"after its due time: counted as breached{not_counted}")
            else:
                late = k.get("breached_at") or k["ended_at"] > due
                add(k["ended_at"], "sla", END, f"{name} met{' late' if late else ''}{not_counted}")
        elif k["state"] == "cancelled":
            add(k["ended_at"], "sla", END, f"{name} cancelled{not_counted}")
        elif k["state"] == "paused" and k.get("paused_at") and k.get("paused_at") != case_paused:
            add(k["paused_at"], "sla", MOVE, f"{name} paused")


def _followup_events(rows: Rows, add: Any) -> None:
    """What followup planned, sent, cancelled (and why) and skipped. Its times are when followup
    handled them (`created_at`, `closed_at`), not the CRM's."""
    for c in rows.get("followup.cases", []):
        add(c.get("resolved_at"), "followup", CAUSE, "case resolved")
    planned: dict[datetime, list[str]] = {}
    cancelled: dict[tuple[datetime, str], list[str]] = {}
    for f in sorted(rows.get("followup.followups", []), key=lambda f: (f["created_at"], f["due_at"], f["followup_id"])):
        reason = f.get("reason") or ""
        if f["status"] == "skipped":
            closed = f.get("closed_at")
            if closed is not None and closed != f["created_at"]:  # skipped when it fell due
                add(closed, "followup", END, f"{f['kind']} skipped when due: {reason or 'no reason stored'}")
            else:
                add(f["created_at"], "followup", END, f"{f['kind']} skipped: {reason or 'no reason stored'}")
            continue
        planned.setdefault(f["created_at"], []).append(f["kind"])
        if f["status"] == "due":
            add(f.get("closed_at"), "followup", END, f"{f['kind']} sent")
        elif f["status"] == "cancelled" and f.get("closed_at") is not None:
            cancelled.setdefault((f["closed_at"], reason), []).append(f["kind"])
    for created, kinds in planned.items():  # one line for what one resolution planned
        counted = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        add(created, "followup", START, "planned: " + ", ".join(k + (f" ×{n}" if n > 1 else "") for k, n in counted.items()))
    for (closed, reason), kinds in cancelled.items():
        what = ", ".join(dict.fromkeys(kinds)) + " cancelled"
        if reason in FOLLOWUP_CANCELLED:
            add(closed, "followup", END, f"{FOLLOWUP_CANCELLED[reason]}: {what}")
        else:
            add(closed, "followup", END, what + (f": {reason}" if reason else ""))
    for s in sorted(rows.get("followup.survey_responses", []), key=lambda s: s["answered_at"]):
        score = f": score {s['score']:g}" if s.get("score") is not None else ""
        add(s["answered_at"], "followup", CAUSE, f"survey answered{score}")


def _waiting(p: dict[str, Any]) -> str:
    event = p.get("event") if isinstance(p.get("event"), dict) else {}
    kind = p.get("type") or event.get("type", "activity")
    automated = event.get("automated") is True or event.get("by") in ("bot", "system")
    return f"{kind}{' (automated)' if automated else ''} waits for the complaint's classification"


def _events(rows: Rows) -> list[Event]:
    events: list[Event] = []

    def add(at: datetime | None, service: str, phase: int, text: str) -> None:
        if at is not None:
            events.append(Event(at, phase, SERVICE_ORDER[service], len(events), service, text))

    for c in sorted(rows.get("intake.complaints", []), key=lambda c: (c["occurred_at"], c["event_id"])):
        cls = c["classification"] if isinstance(c["classification"], dict) else {}
        repeat = f" (repeat contact {c['repeat_contacts']})" if c["repeat_contacts"] else ""
        recorded = c.get("recorded_at")
        late = recorded is not None and recorded - c["occurred_at"] >= timedelta(minutes=1)
        arrived = f"; reached intake {human_duration(recorded - c['occurred_at'])} later" if late else ""
        add(c["occurred_at"], "intake", CAUSE, f"complaint received{repeat}: {cls.get('priority', '?')} "
                                               f"{cls.get('category', '?')}, by {cls.get('decided_by', '?')}{arrived}")
    _clock_events(rows, add)
    for table in ("sla.pending_activity", "followup.pending_activity"):
        for p in sorted(rows.get(table, []), key=lambda p: (p["occurred_at"], p["event_id"])):
            add(p["occurred_at"], table.split(".")[0], CAUSE, _waiting(p))
    for d in sorted(rows.get("compensation.decisions", []), key=lambda d: (d["decided_at"], d["decision_id"])):
        offers = f" ({d['rule_id']})" if d.get("rule_id") else ""
        first = {"granted": "granted", "pending_approval": "needs approval", "none": "no compensation"}.get(d["outcome"], d["outcome"])
        amount = _money(d["value"], d["currency"]) if d["outcome"] != "none" else d.get("reason_code", "")
        add(d["decided_at"], "compensation", START, f"{first}: {amount}{offers}")
        if d["status"] in ("approved", "denied") and d.get("settled_at"):
            add(d["settled_at"], "compensation", MOVE, f"{d['status']} by {d.get('approver_role') or '?'} "
                                                       f"{d.get('approver_id') or ''}".rstrip())
    for a in sorted(rows.get("compensation.approval_answers", []), key=lambda a: (a["received_at"], a["event_id"])):
        verdict = "accepted" if a["accepted"] else f"refused: {a['reason']}"
        add(a["received_at"], "compensation", CAUSE,
            f"answer '{a['answer']}' from {a['approver_role']} {a['approver_id']}: {verdict}")
    _followup_events(rows, add)
    return sorted(events)


def build_view(case_id: str, rows: Rows) -> CaseView:
    """The human view of a case from its rows (`services.case_view.case_rows`); pure, no I/O."""
    clocks = []
    for k in sorted(rows.get("sla.clocks", []), key=lambda k: (k["started_at"], k["clock_key"])):
        state = _clock_state(k, _arrival(k, rows))
        cause = _run_cause(k, rows)
        if cause == "reopened":
            state += f" · restarted by the reopen at {_since(k['started_at'], k['due_at'])}"
        elif cause == "retargeted":
            state += f" · re-targeted to {k['priority']} at {_since(k['started_at'], k['due_at'])}"
        if k.get("calendar", ALWAYS_OPEN) != ALWAYS_OPEN:
            state += f" · counts {k['calendar']} hours"
        clocks.append(ClockLine(_clock_name(k), _target(k), k["due_at"], state))
    decisions = []
    for d in sorted(rows.get("compensation.decisions", []), key=lambda d: (d["decided_at"], d["decision_id"])):
        offers = d.get("offers") if isinstance(d.get("offers"), list) else []
        decisions.append(DecisionLine(d["decided_at"], _outcome(d), _money(d["value"], d["currency"]),
                                      d.get("rule_id") or d.get("reason_code") or "",
                                      [_offer(o, d["currency"]) for o in offers if isinstance(o, dict)]))
    followups = []
    for f in sorted(rows.get("followup.followups", []), key=lambda f: (f["due_at"], f["kind"], f["followup_id"])):
        status = FOLLOWUP_STATUS.get(f["status"], f["status"])
        if f["status"] in ("due", "cancelled") and f.get("closed_at"):
            status += f" at {_since(f['closed_at'], f['due_at'])}"
        if f["status"] in ("cancelled", "skipped") and f.get("reason"):
            status += f": {FOLLOWUP_CANCELLED.get(f['reason'], f['reason'])}"
        followups.append(FollowupLine(f["kind"], f["channel"], f["due_at"], status))
    return CaseView(_header(case_id, rows), clocks, decisions, followups, _events(rows))


def _table(*columns: tuple[str, dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold", show_edge=False)
    for name, options in columns:
        table.add_column(name, **options)
    return table


FIXED = {"no_wrap": True}  # times, ids, short words: never folded
WRAP = {"overflow": "fold"}  # long text: wraps at word boundaries in the room left (a word longer than that folds)
SIDE_BY_SIDE = 100  # from this width, local due times get a column of their own; narrower, under the UTC time
_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def right_stripped(text: str) -> str:
    """Each line without trailing blanks, also those before a closing colour code (rich pads table
    cells and wrapped lines to their width)."""
    return _TRAILING.sub(r"\1", text)


def render(view: CaseView, console: Console) -> None:
    """Prints the case at the console's width: header, SLA clocks, compensation, follow-ups,
    timeline (see the module doc); no line ends in spaces."""
    with console.capture() as captured:
        _render(view, console)
    console.file.write(right_stripped(captured.get()))
    console.file.flush()


def _due(at: datetime, zone: ZoneInfo | None, side_by_side: bool) -> tuple[str, ...]:
    if zone is None:
        return (utc(at),)
    return (utc(at), local(at, zone)) if side_by_side else (f"{utc(at)}\n{local(at, zone)}",)


def _render(view: CaseView, console: Console) -> None:
    h, zone = view.header, view.zone
    side_by_side = console.width >= SIDE_BY_SIDE
    local_column = (("local", FIXED),) if zone and side_by_side else ()
    due_title = "due (UTC)" + (" / local" if zone and not side_by_side else "")
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
        table = _table(("clock", FIXED), ("target", FIXED), (due_title, FIXED), *local_column, ("state", WRAP))
        for c in view.clocks:
            table.add_row(escape(c.name), c.target, *_due(c.due_at, zone, side_by_side), escape(c.state))
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
        table = _table(("kind", FIXED), ("channel", FIXED), (due_title, FIXED), *local_column, ("status", WRAP))
        for f in view.followups:
            table.add_row(f.kind, f.channel, *_due(f.due_at, zone, side_by_side), escape(f.status))
        console.print(table)
    console.print("\n[bold]Timeline (UTC)[/bold]")
    table = _table(("when", FIXED), ("service", FIXED), ("what", WRAP))
    for e in view.events:
        table.add_row(utc(e.at), e.service, escape(e.text))
    console.print(table)


def console_width() -> int:
    """Columns to print in: `COLUMNS` when set to a number, else the terminal's width when stdout
    is a terminal, else 100; never less than 40."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(MIN_WIDTH, int(columns))
    if sys.stdout.isatty():
        return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    return DEFAULT_WIDTH


def _console() -> Console:
    return Console(width=console_width(), highlight=False)


def _where(database_url: str) -> str:
    """host:port/db of a database URL, never its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def show(case_id: str, as_json: bool, database_url: str) -> None:
    """`helpdesk case show`: the human view, or with `as_json` the raw rows as JSON. Exit 1 when no
    service knows the case, 2 when the database cannot be reached (a message, no traceback)."""
    import asyncio

    import asyncpg

    from services.case_view import case_rows, to_json

    try:
        rows = asyncio.run(case_rows(database_url, case_id))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        typer.secho(f"cannot read the case from PostgreSQL at {_where(database_url)}: {type(exc).__name__}: {exc}",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None  # unreachable: the exit status of every `helpdesk` command (services/cli.py)
    if not rows:
        typer.secho(f"case {case_id} not found: no service has a row for it in {_where(database_url)}",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    if as_json:
        typer.echo(to_json(case_id, rows))
        return
    render(build_view(case_id, rows), _console())
