"""`helpdesk report`: reports read from the services' read models.

- `helpdesk report recovery [--since 90d] [--within 30d] [--json]`: does recovery work? The share
  of resolved cases whose customer came back, by category, compensation rule, SLA breached or not
  and time to first contact; the cost per retained customer per rule and currency; the
  repeat-complaint rate (definitions: services/followup/domain/recovery.py, `recovery_report`).
- `helpdesk report rebuild`: the recovery read model rebuilt from the start of its four topics in
  one transaction, while the followup service keeps running (services/followup/recovery.py).

Exit 1 when followup's recovery tables do not exist yet (the followup service creates them when it
starts); 2 when a server is unreachable (services/cli.py).
"""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from services.followup.domain.recovery import RecoveryReport, Share
from shared.durations import format_duration, parse_duration

app = typer.Typer(help="Reports from the services' read models.", no_args_is_help=True)

DEFAULT_SINCE = "90d"
# The return window: the followup policy has no retention window of its own (its check-ins run
# until the customer returns), so 30 days, the middle retention check-in of config/followup.yaml.
DEFAULT_WITHIN = "30d"


def _duration(value: str, option: str) -> timedelta:
    try:
        delta = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if delta <= timedelta(0):
        raise typer.BadParameter("must be longer than zero", param_hint=option)
    return delta


def _settings():
    from shared.settings import get_settings

    return get_settings()


async def _with_tables(database_url: str, work):
    """Runs `work(conn)` on a connection to followup's schema; exit 1 when the recovery tables are
    missing."""
    import asyncpg

    from services.followup.store import SCHEMA

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.recovery_cases")
        if not exists:
            typer.secho("the recovery read model does not exist yet: start the followup service once "
                        "(it creates its tables), then try again", err=True, fg=typer.colors.RED)
            raise typer.Exit(1)
        return await work(conn)
    finally:
        await conn.close()


@app.command("recovery")
def recovery(
    since: str = typer.Option(DEFAULT_SINCE, "--since", help="cases resolved within this long before now (e.g. 90d)"),
    within: str = typer.Option(DEFAULT_WITHIN, "--within",
                               help="the return window: a customer back at most this long after the resolution"),
    as_json: bool = typer.Option(False, "--json", help="the report as one JSON object"),
) -> None:
    """Whether customers whose complaint was resolved came back: shares by category, compensation
    rule, SLA breach and time to first contact; cost per retained customer; repeat complaints."""
    from services.followup.recovery import Recovery

    since_d, within_d = _duration(since, "--since"), _duration(within, "--within")
    report = asyncio.run(_with_tables(_settings().dsn(),
                                      lambda conn: Recovery().report(conn, since_d, within_d)))
    if as_json:
        typer.echo(json.dumps(report_json(report), sort_keys=True))
    else:
        render(report, Console(soft_wrap=False))


@app.command("rebuild")
def rebuild() -> None:
    """Rebuilds the recovery read model from the start of complaints.classified, case-activity,
    sla.v1 and compensation.v1, replacing its rows in one transaction (the followup service may keep
    running: its recovery consumer waits for the rebuild, then goes on)."""
    from services.followup.contract import RECOVERY_TOPICS
    from services.followup.recovery import Recovery
    from shared.kafka_reader import read_topic

    settings = _settings()

    async def read() -> list[tuple[str, bytes | None]]:
        out: list[tuple[str, bytes | None]] = []
        for topic in RECOVERY_TOPICS:
            for record in await read_topic(settings, topic):
                value = {k: v for k, v in record.items() if not k.startswith("_")}
                out.append((topic, json.dumps(value).encode("utf-8")))
        return out

    async def work(conn) -> tuple[int, int]:
        async with conn.transaction():  # one transaction: the live consumer sees the old rows or the new
            return await Recovery().rebuild(conn, read)

    cases, returns = asyncio.run(_with_tables(settings.dsn(), work))
    typer.echo(f"recovery read model rebuilt from {', '.join(RECOVERY_TOPICS)}: {cases} cases, {returns} returns")


# ---------- output ----------
def _share_json(share: Share) -> dict[str, Any]:
    return {"cases": share.cases, "returned": share.returned, "customers": share.customers,
            "returned_customers": share.returned_customers, "returned_ratio": share.ratio}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def report_json(report: RecoveryReport) -> dict[str, Any]:
    """The report as JSON-ready values: ratios as numbers 0–1 (null without cases), money as exact
    decimal strings in the currency's minor units, the windows as durations (`90d`)."""
    return {
        "generated_at": report.now.isoformat(),
        "since": format_duration(report.since), "within": format_duration(report.within),
        "overall": _share_json(report.overall), "awaiting_window": report.awaiting,
        "by_category": {k: _share_json(v) for k, v in report.by_category.items()},
        "by_rule": {k: _share_json(v) for k, v in report.by_rule.items()},
        "by_sla_breach": {k: _share_json(v) for k, v in report.by_breach.items()},
        "by_first_contact": {k: _share_json(v) for k, v in report.by_first_contact.items()},
        "cost_per_retained": [{"rule_id": c.rule_id, "currency": c.currency, "granted": str(c.granted),
                               "retained_customers": c.retained, "per_retained": _money(c.per_retained)}
                              for c in report.cost_per_retained],
        "repeat_complaints": report.repeat_complaints, "repeat_complaint_rate": report.repeat_complaint_rate,
        "repeat_contact_cases": report.repeat_contact_cases, "repeat_contact_rate": report.repeat_contact_rate,
    }


def _pct(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.1%}"


def _table(label: str, shares: dict[str, Share]) -> Table:
    table = Table()
    table.add_column(label)
    for column in ("cases", "came back", "share", "customers", "customers back"):
        table.add_column(column, justify="right")
    for key, s in shares.items():
        table.add_row(key, str(s.cases), str(s.returned), _pct(s.ratio), str(s.customers), str(s.returned_customers))
    return table


def render(report: RecoveryReport, console: Console) -> None:
    """The report as rich tables."""
    o = report.overall
    console.print(f"Recovery at {report.now:%Y-%m-%d %H:%M} UTC: cases resolved in the last "
                  f"{format_duration(report.since)}, {format_duration(report.within)} return window closed")
    console.print(f"  {o.cases} cases, {o.returned} came back within {format_duration(report.within)}: {_pct(o.ratio)}"
                  f" ({o.returned_customers} of {o.customers} customers); {report.awaiting} more still in their window")
    console.print(f"  repeat complaints: {report.repeat_complaints} ({_pct(report.repeat_complaint_rate)}); "
                  f"cases the customer had to ask again on: {report.repeat_contact_cases} "
                  f"({_pct(report.repeat_contact_rate)})")
    for title, label, shares in (("By category", "category", report.by_category),
                                 ("By compensation rule", "rule", report.by_rule),
                                 ("By SLA breach", "SLA", report.by_breach),
                                 ("By time to first contact", "first contact", report.by_first_contact)):
        if shares:
            console.print(title)  # a table title would be padded to the table's width
            console.print(_table(label, shares))
    if report.cost_per_retained:
        console.print("Cost per retained customer")
        table = Table()
        for column, justify in (("rule", "left"), ("currency", "left"), ("granted", "right"),
                                ("customers back", "right"), ("per customer back", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for c in report.cost_per_retained:
            table.add_row(c.rule_id, c.currency, str(c.granted), str(c.retained),
                          "–" if c.per_retained is None else str(c.per_retained))
        console.print(table)
