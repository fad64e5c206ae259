"""`helpdesk policy simulate`: what a draft compensation or SLA policy would have done, before it goes live.

- A compensation draft: every decision stored in `compensation.decisions` since `--since` is decided
  again from its recorded inputs, with the draft and with the policy in force
  (`HELPDESK_CONFIG_DIR/compensation.yaml`): per rule, decisions matched, offers made, value per
  currency and approvals per role; the budget months each would overrun; and the decisions that
  change (services/compensation/domain/simulation.py says how the case facts are replayed).
- An SLA draft: the `complaint.classified` and case-activity events still in Kafka are replayed
  through the sla rules, with the draft and with the policy in force, timers fired up to now
  (services/sla/domain/simulation.py); breaches per clock and priority, beside what actually
  happened: the breaches sla published on `helpdesk.sla.v1`.

Read-only: PostgreSQL is read in one READ ONLY transaction, Kafka without a consumer group
(shared/kafka_reader.py); nothing is written or published. An invalid draft is exit 1 with the
loader's message (file, line, field); a server that does not answer propagates to the `helpdesk`
entry point, which prints one line and exits 2 (services/cli.py `unreachable`).
"""
from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from services.policy_cli import KINDS, kind_from_content, kind_from_name, model_of
from shared.durations import parse_duration
from shared.policy import PolicyError, content_version, parse_policy
from shared.settings import Settings

SIMULATED = ("compensation", "sla")
"""The policy kinds a simulation can replay."""


def _refuse(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(1)


# ---------- loading ----------
@dataclass(frozen=True)
class Loaded:
    """A policy file read and validated: its model, content version and path."""

    path: Path
    policy: Any
    version: str


def _read(path: Path) -> str:
    if not path.is_file():
        raise _refuse(f"file not found: {path}" if not path.exists() else f"not a file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def draft_kind(path: Path, text: str, kind: str | None) -> str:
    """The draft's kind, as `helpdesk policy validate` guesses it (services/policy_cli.py): `kind`,
    else the file name, else its top-level keys. typer.Exit(1) with a message when it cannot tell
    or the kind is not one a simulation replays."""
    if kind is None:
        kind = kind_from_name(path)
    if kind is None:
        try:
            tree = YAML(typ="safe").load(text)
        except YAMLError:
            tree = None  # the loader below names the line
        guess = kind_from_content(tree)
        if guess.kind is None and guess.fits:
            raise _refuse(f"cannot tell which policy {path} is: its top-level keys fit "
                          f"{' and '.join(guess.fits)} equally well; pass --kind")
        kind = guess.kind
    if kind is None:
        raise _refuse(f"cannot tell which policy {path} is from its name or its top-level keys; "
                      f"pass --kind {'|'.join(SIMULATED)}")
    if kind not in SIMULATED:
        raise _refuse(f"{path} is a {kind} policy: `policy simulate` replays compensation and sla policies "
                      f"(`helpdesk policy validate` checks any of {KINDS})")
    return kind


def load(path: Path, kind: str, text: str | None = None) -> Loaded:
    """`path` validated as a `kind` policy; typer.Exit(1) with the loader's message (file, line and
    field) when it is invalid."""
    text = _read(path) if text is None else text
    try:
        policy = parse_policy(text, model_of(kind), str(path))
    except PolicyError as exc:
        raise _refuse(str(exc)) from None
    return Loaded(path, policy, content_version(text))


# ---------- progress ----------
@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """A rich progress bar on stderr (none when not `enabled`, e.g. with --json). Yields `task(name,
    total)`, which returns the function to call once per item done."""
    if not enabled:
        yield lambda name, total: (lambda: None)
        return
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        def task(name: str, total: int) -> Callable[[], None]:
            task_id = bar.add_task(name, total=total)
            return lambda: bar.advance(task_id)

        yield task


# ---------- money and times ----------
def money(amount: Decimal, currency: str) -> str:
    """'12.50 USD', in the currency's minor units (services/compensation/domain/money.py)."""
    from services.compensation.domain import format_money

    return format_money(amount, currency)


def amounts(values: dict[str, Decimal]) -> dict[str, str]:
    """Currency → exact amount text in its minor units (JSON: never a float)."""
    from services.compensation.domain.money import format_amount

    return {currency: format_amount(amount, currency) for currency, amount in sorted(values.items())}


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%MZ")


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat()


# ---------- compensation ----------
async def read_decisions(database_url: str, since: datetime, source: str | None) -> list[dict[str, Any]]:
    """The stored decisions a compensation replay needs, from `since` on, in one READ ONLY
    transaction. Connection errors propagate."""
    import asyncpg

    from services.compensation import store

    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(readonly=True):
            return await store.decisions_for_simulation(conn, since, source)
    finally:
        await conn.close()


def _offers_text(offers: list[dict[str, Any]], currency: str) -> str:
    return "; ".join(f"{o.get('kind', '?')} {money(Decimal(str(o.get('value', 0))), currency)}" for o in offers) or "-"


def _stats_json(stats: Any) -> dict[str, Any]:
    return {"matched": stats.matched, "offers": stats.offers, "value": amounts(stats.value),
            "approvals": dict(sorted(stats.approvals.items()))}


def _decision_json(d: Any) -> dict[str, Any]:
    from services.compensation.domain.money import format_amount

    return {"outcome": d.outcome, "rule_id": d.rule_id, "value": format_amount(d.value, d.currency),
            "currency": d.currency, "authority": d.authority, "reason_code": d.reason_code, "offers": d.offers}


def compensation_report(rows: Sequence[dict[str, Any]], draft: Loaded, in_force: Loaded, since: datetime,
                        source: str | None, tick: Callable[[str, int], Callable[[], None]]) -> dict[str, Any]:
    """The whole compensation report as one JSON-ready document (amounts as exact decimal text).
    `rows` are decisions from the start of `since`'s month (budgets count the whole month); the
    figures and changes are of those decided at or after `since`."""
    from services.compensation.domain import simulation as sim

    stored = [sim.stored_decision(r) for r in rows]
    step = tick("replaying decisions", 2 * len(stored))
    before = sim.replay(stored, in_force.policy, in_force.version, on_each=step)
    after = sim.replay(stored, draft.policy, draft.version, on_each=step)
    in_window = lambda replayed: [r for r in replayed if r.stored.decided_at >= since]  # noqa: E731
    before_w, after_w = in_window(before), in_window(after)
    stats = {"in_force": sim.rule_stats(before_w), "draft": sim.rule_stats(after_w)}
    rules = sorted(set(stats["in_force"]) | set(stats["draft"]))
    budgets = {"in_force": sim.month_budgets(before, in_force.policy),
               "draft": sim.month_budgets(after, draft.policy)}
    first_month = since.astimezone(timezone.utc).date().replace(day=1)
    changed = sim.changes(before_w, after_w)
    return {
        "kind": "compensation",
        "draft": {"file": str(draft.path), "version": draft.version},
        "in_force": {"file": str(in_force.path), "version": in_force.version},
        "since": _iso(since), "source": source,
        "decisions": len(before_w),
        "differs_from_stored": sim.differs_from_stored(before_w),
        "rules": [{"rule": rule, **{side: _stats_json(stats[side].get(rule, sim.RuleStats())) for side in stats}}
                  for rule in rules],
        "budget_months": {side: [{"source": b.source, "currency": b.currency, "month": b.month.strftime("%Y-%m"),
                                  "spent": amounts({b.currency: b.spent})[b.currency],
                                  "budget": amounts({b.currency: b.budget})[b.currency], "over": b.over}
                                 for b in lines if b.month >= first_month]
                          for side, lines in budgets.items()},
        "changed": len(changed),
        "changes": [{"decision_id": c.stored.decision_id, "case_id": c.stored.case_id, "source": c.stored.source,
                     "decided_at": _iso(c.stored.decided_at), "fields": list(c.fields),
                     "in_force": _decision_json(c.before), "draft": _decision_json(c.after)} for c in changed],
    }


def write_compensation_csv(path: Path, report: dict[str, Any]) -> None:
    """Every changed decision, one row each: ids, time, what changed, then the decision under the
    policy in force and under the draft (offers as `kind value currency; …`)."""
    sides = ("in_force", "draft")
    columns = ["decision_id", "case_id", "source", "decided_at", "changed"] + [
        f"{side}_{f}" for side in sides for f in ("outcome", "rule_id", "value", "currency", "authority", "offers")]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for c in report["changes"]:
            row = [c["decision_id"], c["case_id"], c["source"], c["decided_at"], " ".join(c["fields"])]
            for side in sides:
                d = c[side]
                row += [d["outcome"], d["rule_id"] or "", d["value"], d["currency"], d["authority"] or "",
                        _offers_text(d["offers"], d["currency"])]
            writer.writerow(row)


def _cell(values: dict[str, str], joiner: str = ", ") -> str:
    return joiner.join(f"{amount} {currency}" for currency, amount in values.items()) or "-"


def _roles(approvals: dict[str, int]) -> str:
    return ", ".join(f"{role} {n}" for role, n in approvals.items()) or "-"


def render_compensation(report: dict[str, Any], console: Console, show: int, csv_path: Path | None) -> None:
    """The report for people: a header, the per-rule table, the budget months, the first `show`
    changed decisions."""
    console.print(f"Compensation draft {report['draft']['file']} (version {report['draft']['version']}) against "
                  f"the policy in force {report['in_force']['file']} (version {report['in_force']['version']})")
    scope = f" from {report['source']}" if report["source"] else ""
    console.print(f"{report['decisions']} stored decisions since {report['since'][:16].replace('T', ' ')}Z{scope}, "
                  f"replayed with each (budgets: decisions sent for approval count as approved)")
    if report["differs_from_stored"]:
        console.print(f"note: {report['differs_from_stored']} of them the policy in force decides differently "
                      "today than when they were stored (the policy was edited since, or budgets ran otherwise)")
    table = Table(title="Per rule: policy in force → draft", title_justify="left")
    for name in ("rule", "matched", "offers", "value", "approvals"):
        table.add_column(name, justify="right" if name in ("matched", "offers") else "left")
    for r in report["rules"]:
        old, new = r["in_force"], r["draft"]
        def pair(a: str, b: str) -> str:
            return a if a == b else f"{a} → {b}"
        table.add_row(r["rule"], pair(str(old["matched"]), str(new["matched"])),
                      pair(str(old["offers"]), str(new["offers"])),
                      pair(_cell(old["value"]), _cell(new["value"])),
                      pair(_roles(old["approvals"]), _roles(new["approvals"])))
    console.print(table)
    for side, label in (("in_force", "policy in force"), ("draft", "draft")):
        over = [b for b in report["budget_months"][side] if b["over"]]
        if not over:
            console.print(f"Months over budget ({label}): none")
            continue
        console.print(f"Months over budget ({label}): " + "; ".join(
            f"{b['source']} {b['month']}: {b['spent']} of {b['budget']} {b['currency']}" for b in over))
    changes = report["changes"]
    if not changes:
        console.print("No decision would change.")
        return
    table = Table(title=f"{report['changed']} decisions would change"
                  + (f" (the first {show})" if show < len(changes) else ""), title_justify="left")
    for name in ("case", "decided (UTC)", "changed", "in force", "draft"):
        table.add_column(name)
    for c in changes[:show]:
        old, new = c["in_force"], c["draft"]
        table.add_row(c["case_id"], c["decided_at"][:16].replace("T", " "), ", ".join(c["fields"]),
                      f"{old['rule_id'] or '-'}: {old['outcome']} {old['value']} {old['currency']}"
                      f" ({old['authority'] or '-'})",
                      f"{new['rule_id'] or '-'}: {new['outcome']} {new['value']} {new['currency']}"
                      f" ({new['authority'] or '-'})")
    console.print(table)
    if csv_path is not None:
        console.print(f"All {len(changes)} changed decisions: {csv_path}")
    elif show < len(changes):
        console.print(f"{len(changes) - show} more: --csv FILE writes them all")


# ---------- sla ----------
async def read_sla_topics(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(classified, case activity, sla events) as they are in Kafka now, read without a consumer
    group (shared/kafka_reader.py). Connection errors propagate."""
    from shared.events import CASE_ACTIVITY, CLASSIFIED, SLA
    from shared.kafka_reader import read_topic

    classified = await read_topic(settings, CLASSIFIED)
    activity = await read_topic(settings, CASE_ACTIVITY)
    sla = await read_topic(settings, SLA)
    return classified, activity, sla


def _parsed(records: list[dict[str, Any]], parse: Callable[[dict[str, Any]], Any]) -> tuple[list[Any], int]:
    from pydantic import ValidationError

    good, bad = [], 0
    for record in records:
        try:
            good.append(parse({k: v for k, v in record.items() if not k.startswith("_")}))
        except (ValidationError, ValueError, TypeError):
            bad += 1
    return good, bad


def _sla_event(record: dict[str, Any]) -> dict[str, Any]:
    from services.sla.contract import SlaEvent

    event = SlaEvent.model_validate(record)
    return {"type": event.type, "case_id": event.case_id, "clock": event.clock, "promise_id": event.promise_id,
            "due_at": event.due_at, "priority": event.priority, "breached": event.breached,
            "event_id": event.event_id}


def sla_report(classified_records: list[dict[str, Any]], activity_records: list[dict[str, Any]],
               sla_records: list[dict[str, Any]], draft: Loaded, in_force: Loaded, since: datetime,
               source: str | None, until: datetime, tick: Callable[[str, int], Callable[[], None]]) -> dict[str, Any]:
    """The whole SLA report as one JSON-ready document. Cases in scope: those whose first
    classification's complaint was received at or after `since` (from `source`, when given)."""
    from services.sla.domain import simulation as sim
    from services.sla.service import _round_the_clock
    from shared.events import ComplaintClassified, case_activity

    classified, bad_classified = _parsed(classified_records, ComplaintClassified.model_validate)
    activity, bad_activity = _parsed(activity_records, case_activity.validate_python)
    first: dict[str, ComplaintClassified] = {}
    for event in classified:
        if event.case_id not in first or sim.event_instant(event) < sim.event_instant(first[event.case_id]):
            first[event.case_id] = event
    cases = sorted(case for case, event in first.items()
                   if sim.event_instant(event) >= since and (source is None or event.source == source))
    scope = set(cases)
    events: dict[str, list[Any]] = {case: [] for case in cases}
    for event in [*classified, *activity]:
        if event.case_id in scope:
            events[event.case_id].append(event)
    replays: dict[str, list[sim.Breach]] = {"in_force": [], "draft": []}
    step = tick("replaying cases", len(cases))
    for case in cases:
        for side, loaded in (("in_force", in_force), ("draft", draft)):
            emitted = sim.replay_case(events[case], loaded.policy, until, _round_the_clock)
            replays[side] += sim.breaches(sim.emitted_fields(e) for e in emitted)
        step()
    published, bad_sla = _parsed(sla_records, _sla_event)
    unique = {e["event_id"]: e for e in published if e["case_id"] in scope}
    actual = sim.breaches(unique.values())
    counts = {"actual": sim.count_breaches(actual), **{side: sim.count_breaches(found)
                                                        for side, found in replays.items()}}
    from services.sla.policy import PRIORITIES

    table = []
    for clock in sim.OBLIGATIONS:
        for priority in PRIORITIES:
            row = {side: counts[side][(clock, priority)] for side in counts}
            if any(row.values()):
                table.append({"clock": clock, "priority": priority, **row, "change": row["draft"] - row["in_force"]})
    per_case: dict[tuple[str, str], dict[str, list[sim.Breach]]] = {}
    for side, found in replays.items():
        for b in found:
            if b.clock in sim.OBLIGATIONS:
                per_case.setdefault((b.case_id, b.clock), {"in_force": [], "draft": []})[side].append(b)
    differ = [(case_clock, sides) for case_clock, sides in sorted(per_case.items())
              if len(sides["in_force"]) != len(sides["draft"])]
    return {
        "kind": "sla",
        "draft": {"file": str(draft.path), "version": draft.version},
        "in_force": {"file": str(in_force.path), "version": in_force.version},
        "since": _iso(since), "until": _iso(until), "source": source,
        "cases": len(cases),
        "events": sum(len(v) for v in events.values()),
        "unreadable_records": {"classified": bad_classified, "case_activity": bad_activity, "sla": bad_sla},
        "actual_from": "the sla.breached events (and sla.met with breached: true) on helpdesk.sla.v1",
        "breaches": table,
        "totals": {side: sum(n for (clock, _), n in counts[side].items() if clock in sim.OBLIGATIONS)
                   for side in counts},
        "changed_breaches": [{"case_id": case, "clock": clock,
                              "priority": "/".join(sorted({b.priority for b in [*sides["in_force"], *sides["draft"]]})),
                              **{side: [_iso(b.due_at) for b in sorted(sides[side], key=lambda b: b.due_at)]
                                 for side in ("in_force", "draft")}}
                             for (case, clock), sides in differ],
    }


def write_sla_csv(path: Path, report: dict[str, Any]) -> None:
    """Every (case, clock) whose breaches differ between the two replays: how many each has and the
    due times missed (ISO 8601, space-separated)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["case_id", "clock", "priority", "in_force_breaches", "draft_breaches", "in_force_due_at",
                         "draft_due_at"])
        for b in report["changed_breaches"]:
            writer.writerow([b["case_id"], b["clock"], b["priority"], len(b["in_force"]), len(b["draft"]),
                             " ".join(b["in_force"]), " ".join(b["draft"])])


def render_sla(report: dict[str, Any], console: Console, show: int, csv_path: Path | None) -> None:
    """The report for people: a header, breaches per clock and priority, the first `show` breaches
    counted differently by the two replays (case and clock)."""
    console.print(f"SLA draft {report['draft']['file']} (version {report['draft']['version']}) against the policy "
                  f"in force {report['in_force']['file']} (version {report['in_force']['version']})")
    scope = f" from {report['source']}" if report["source"] else ""
    console.print(f"{report['cases']} cases received since {report['since'][:16].replace('T', ' ')}Z{scope}, "
                  f"{report['events']} events replayed up to {report['until'][:16].replace('T', ' ')}Z, "
                  "each event at its business time and each timer at its due time")
    skipped = sum(report["unreadable_records"].values())
    if skipped:
        console.print(f"note: {skipped} unreadable records skipped (the services rejected them too)")
    table = Table(title="Breaches per clock and priority", title_justify="left",
                  caption="first contact, update and resolution clocks (promises are the agents' own, not a policy's: "
                          "not simulated); actually: sla.breached (and sla.met late) on helpdesk.sla.v1",
                  caption_justify="left")
    for name in ("clock", "priority", "actually", "policy in force", "draft", "change"):
        table.add_column(name, justify="left" if name in ("clock", "priority") else "right")
    for row in report["breaches"]:
        table.add_row(row["clock"], row["priority"], str(row["actual"]), str(row["in_force"]), str(row["draft"]),
                      f"{row['change']:+d}" if row["change"] else "0")
    totals = report["totals"]
    table.add_row("total", "", str(totals["actual"]), str(totals["in_force"]), str(totals["draft"]),
                  f"{totals['draft'] - totals['in_force']:+d}" if totals["draft"] != totals["in_force"] else "0")
    console.print(table)
    changed = report["changed_breaches"]
    if not changed:
        console.print("No breach would change.")
        return
    table = Table(title=f"{len(changed)} case clocks would breach differently" + (
        f" (the first {show})" if show < len(changed) else ""), title_justify="left")
    for name in ("case", "clock", "priority", "policy in force", "draft"):
        table.add_column(name)

    def dues(times: list[str]) -> str:
        return f"{len(times)}: " + ", ".join(t[:16].replace("T", " ") for t in times) if times else "0"

    for b in changed[:show]:
        table.add_row(b["case_id"], b["clock"], b["priority"], dues(b["in_force"]), dues(b["draft"]))
    console.print(table)
    if csv_path is not None:
        console.print(f"All {len(changed)}: {csv_path}")
    elif show < len(changed):
        console.print(f"{len(changed) - show} more: --csv FILE writes them all")


# ---------- the command ----------
def run(draft_path: Path, *, since: str, source: str | None, csv_path: Path | None, as_json: bool, show: int,
        kind: str | None, settings: Settings, now: datetime | None = None, console: Console | None = None) -> None:
    """`helpdesk policy simulate`: validates the draft (exit 1 with the loader's message), loads the
    policy in force of its kind from `settings.helpdesk_config_dir`, reads what was stored, replays
    it with both and prints the report (or with `as_json` one JSON document; `csv_path` gets every
    change). `now` is the end of the replay and the point `since` counts back from (default: the
    current time). Connection errors propagate (the entry point makes them one line and exit 2)."""
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    if kind is not None and kind not in SIMULATED:
        raise typer.BadParameter(f"unknown kind {kind!r}: use one of {', '.join(SIMULATED)}", param_hint="--kind")
    text = _read(draft_path)
    kind = draft_kind(draft_path, text, kind)
    draft = load(draft_path, kind, text)
    in_force = load(settings.policy_path(f"{kind}.yaml"), kind)
    now = now or datetime.now(timezone.utc)
    since_at = now - window
    with progress_bar(not as_json and sys.stderr.isatty()) as tick:
        if kind == "compensation":
            from services.compensation.domain import month_start

            import asyncpg

            try:
                rows = asyncio.run(read_decisions(settings.dsn(), month_start(since_at), source))
            except asyncpg.UndefinedTableError:
                raise _refuse("the database has no compensation.decisions table: the compensation service has "
                              "not run against it (or DATABASE_URL names another database)") from None
            report = compensation_report(rows, draft, in_force, since_at, source, tick)
        else:
            classified, activity, published = asyncio.run(read_sla_topics(settings))
            report = sla_report(classified, activity, published, draft, in_force, since_at, source, now, tick)
    if csv_path is not None:
        (write_compensation_csv if kind == "compensation" else write_sla_csv)(csv_path, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    from services.case_cli import console_width, right_stripped

    console = console or Console(width=console_width(), highlight=False)
    with console.capture() as captured:
        (render_compensation if kind == "compensation" else render_sla)(report, console, show, csv_path)
    console.file.write(right_stripped(captured.get()))  # no line ends in the blanks rich pads titles with
    console.file.flush()

