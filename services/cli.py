"""`helpdesk`: the command line for admins and ops (`helpdesk --help`)."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import typer

from services.intake.classifier import cli as classifier_cli
from shared.policy import PolicyError, content_version, describe_notes, load_policy
from shared.settings import REPO_ROOT

app = typer.Typer(help="Service-recovery helpdesk: policies, local stack, cases, rejected events.", no_args_is_help=True)
policy_app = typer.Typer(help="Check policy files before they go live.", no_args_is_help=True)
stack_app = typer.Typer(help="The local Kafka and PostgreSQL servers.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(stack_app, name="stack")
rejected_app = typer.Typer(help="Records the services refused, and re-publishing them after a fix.", no_args_is_help=True)
case_app = typer.Typer(help="Everything the services know about one case.", no_args_is_help=True)
app.add_typer(rejected_app, name="rejected")
app.add_typer(case_app, name="case")
app.add_typer(classifier_cli.app, name="classifier")

POLICY_MODELS = {
    "classification": ("services.intake.policy", "ClassificationPolicy"),
    "sla": ("services.sla.policy", "SlaPolicy"),
    "compensation": ("services.compensation.policy", "CompensationPolicy"),
    "followup": ("services.followup.policy", "FollowupPolicy"),
}


def _model_for(file: Path, kind: str | None):
    kind = kind or file.stem.split("_")[0].split(".")[0]
    if kind not in POLICY_MODELS:
        raise typer.BadParameter(f"cannot tell which policy {file.name} is: pass --kind {'|'.join(POLICY_MODELS)}")
    module, name = POLICY_MODELS[kind]
    return kind, getattr(importlib.import_module(module), name)


@policy_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Policy files, e.g. config/sla.yaml"),
    kind: str | None = typer.Option(None, help="classification | sla | compensation | followup (default: from the file name)"),
) -> None:
    """Validate policy files; errors name file, line and field. Exit 1 if any is invalid."""
    failed = False
    for file in files:
        name, model = _model_for(file, kind)
        try:
            policy = load_policy(file, model)
        except PolicyError as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            failed = True
            continue
        typer.echo(f"OK: {file} is a valid {name} policy (version {content_version(file.read_text(encoding='utf-8'))})")
        advice = policy.load_warnings() if hasattr(policy, "load_warnings") else []
        for note in describe_notes(file, advice):  # valid, but likely not what was meant
            typer.secho(f"warning: {note}", fg=typer.colors.YELLOW)
    if failed:
        raise typer.Exit(1)


@policy_app.command("explain")
def explain(
    file: Path = typer.Argument(..., help="A compensation policy, e.g. config/compensation.yaml"),
    complaint: Path = typer.Option(..., "--complaint", help="A complaint.classified event as JSON"),
    granted_total: float = typer.Option(0.0, help="Already granted on this case"),
    already_granted: bool = typer.Option(False, help="The case was already compensated"),
    reopened: bool = typer.Option(False, help="The case was reopened"),
    month_spent: float = typer.Option(0.0, help="Spent this month from the budget line the grant counts against, in that line's currency"),
) -> None:
    """Which compensation rule matches a complaint, which do not and why, the offers, cost and authority."""
    from services.compensation import cli as compensation_cli

    compensation_cli.explain(file, complaint, granted_total, already_granted, reopened, month_spent)


def _stack(command: str) -> None:
    result = subprocess.run(["bash", str(REPO_ROOT / "deploy/local/stack.sh"), command])
    raise typer.Exit(result.returncode)


@stack_app.command("up")
def stack_up() -> None:
    """Start (or reuse) the local Kafka and PostgreSQL."""
    _stack("up")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local Kafka and PostgreSQL."""
    _stack("down")


@stack_app.command("status")
def stack_status() -> None:
    """Say whether the local Kafka and PostgreSQL answer."""
    _stack("status")


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


# ---------- rejected ----------
def _settings():
    from shared.settings import get_settings

    return get_settings()


def _matches(event: dict, reason: str | None, topic: str | None, case_id: str | None) -> bool:
    return ((reason is None or event.get("reason") == reason) and (topic is None or event.get("topic") == topic)
            and (case_id is None or event.get("case_id") == case_id))


def _read_rejected() -> list[dict]:
    import asyncio

    from shared.events import REJECTED
    from shared.kafka_reader import read_topic

    return asyncio.run(read_topic(_settings(), REJECTED))


@rejected_app.command("list")
def rejected_list(
    reason: str | None = typer.Option(None, help="only this reason, e.g. not_json, invalid_fields"),
    topic: str | None = typer.Option(None, help="only records from this inbound topic"),
    case_id: str | None = typer.Option(None, "--case", help="only this case"),
    limit: int = typer.Option(50, help="at most this many, newest last"),
) -> None:
    """List rejected records with their reasons (from helpdesk.complaints.rejected.v1)."""
    from rich.table import Table

    events = [e for e in _read_rejected() if _matches(e, reason, topic, case_id)]
    table = Table(title=f"{len(events)} rejected record(s)" + (f", showing the last {limit}" if len(events) > limit else ""))
    for col in ("when", "topic", "partition@offset", "case", "reason", "errors", "by"):
        table.add_column(col)
    for e in events[-limit:]:
        table.add_row(str(e.get("occurred_at", ""))[:19], e.get("topic", ""), f"{e.get('partition')}@{e.get('offset')}",
                      str(e.get("case_id") or ""), e.get("reason", ""), "; ".join(e.get("errors", [])[:2]), e.get("rejected_by", ""))
    _console().print(table)


@rejected_app.command("replay")
def rejected_replay(
    reason: str | None = typer.Option(None, help="only this reason"),
    topic: str | None = typer.Option(None, help="only records from this inbound topic"),
    case_id: str | None = typer.Option(None, "--case", help="only this case"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be re-published, publish nothing"),
) -> None:
    """Re-publish rejected records to the topic they came from (after the sender or a policy was fixed).

    Each original record is published once however many services rejected it."""
    import asyncio
    import base64

    from rich.progress import track

    events = [e for e in _read_rejected() if _matches(e, reason, topic, case_id)]
    unique = {(e.get("topic"), e.get("partition"), e.get("offset")): e for e in events}
    typer.echo(f"{len(unique)} record(s) to re-publish" + (" (dry run: nothing published)" if dry_run else ""))
    if dry_run:
        for (t, p, o), e in unique.items():
            typer.echo(f"  {t}[{p}]@{o}  {e.get('reason')}  case {e.get('case_id') or '-'}")
        return

    async def publish() -> None:
        from aiokafka import AIOKafkaProducer

        from shared.kafka import client_args

        settings = _settings()
        producer = AIOKafkaProducer(**client_args(settings), max_request_size=8 * 1024 * 1024)
        await producer.start()
        try:
            for e in track(list(unique.values()), description="re-publishing"):
                key = e.get("key")
                await producer.send_and_wait(settings.topic(e["topic"]), value=base64.b64decode(e["raw"]),
                                             key=key.encode() if key else None)
        finally:
            await producer.stop()

    asyncio.run(publish())
    typer.echo("done")


# ---------- case ----------
@case_app.command("show")
def case_show(case_id: str = typer.Argument(..., help="the CRM's case id, e.g. CRM-10442")) -> None:
    """Everything the services know about one case, from PostgreSQL."""
    import asyncio

    from rich.table import Table

    from shared.case_view import case_rows

    console = _console()
    found = asyncio.run(case_rows(_settings().database_url, case_id))
    if not found:
        console.print(f"no service knows case {case_id}")
        raise typer.Exit(1)
    for (schema, table_name), rows in found.items():
        table = Table(title=f"{schema}.{table_name}", title_justify="left")
        columns = list(rows[0].keys())
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(str(row[c]) if row[c] is not None else "" for c in columns))
        console.print(table)


# ---------- simulate ----------
@app.command()
def simulate(
    rate: float = typer.Option(10.0, help="new cases per second"),
    duration: float = typer.Option(30.0, help="seconds to generate new cases"),
    seed: int | None = typer.Option(None, help="random seed, for a repeatable run"),
    drain: bool = typer.Option(True, help="after --duration, publish the remaining activity of the cases"),
) -> None:
    """The CRM simulator as a load generator: complaints and their case activity at a steady rate."""
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from services.simulator import CrmSimulator
    from shared.kafka import client_args, ensure_topics

    settings = _settings()
    asyncio.run(ensure_topics(settings))
    sim = CrmSimulator(settings.kafka_bootstrap_servers, settings.helpdesk_topic_prefix, seed=seed,
                       client=client_args(settings))
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.fields[sent]} events"), TimeElapsedColumn()) as bar:
        task = bar.add_task("sim", total=duration, sent=0)
        counts = asyncio.run(sim.run(rate, duration, on_progress=lambda t, n: bar.update(task, completed=min(t, duration), sent=n), drain=drain))
    for topic, n in sorted(counts.items()):
        typer.echo(f"{topic}: {n}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
