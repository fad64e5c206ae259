"""`helpdesk`: the command line for admins and ops (`helpdesk --help`)."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import typer

from services import rejected_cli, report_cli
from services.intake.classifier import cli as classifier_cli
from shared.settings import REPO_ROOT

app = typer.Typer(help="Service-recovery helpdesk: policies, local stack, cases, rejected events.", no_args_is_help=True)
policy_app = typer.Typer(help="Check policy files before they go live.", no_args_is_help=True)
stack_app = typer.Typer(help="The local Kafka and PostgreSQL servers.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(stack_app, name="stack")
case_app = typer.Typer(help="Everything the services know about one case.", no_args_is_help=True)
app.add_typer(rejected_cli.app, name="rejected")
app.add_typer(case_app, name="case")
app.add_typer(classifier_cli.app, name="classifier")
app.add_typer(report_cli.app, name="report")

def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"helpdesk {version('helpdesk-recovery')}")
        except PackageNotFoundError:
            typer.echo("helpdesk (not installed as a package: run `make install`)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the installed version and exit."),
) -> None:
    """Service-recovery helpdesk: policies, local stack, cases, rejected events."""


@policy_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Policy files, e.g. config/sla.yaml"),
    kind: str | None = typer.Option(None, help="classification | sla | compensation | followup (default: from the "
                                    "file name, else from the file's top-level keys)"),
) -> None:
    """Validate policy files; errors name file, line and field. Exit 1 if any is missing or invalid."""
    from services import policy_cli

    policy_cli.validate(files, kind)


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
    from services import policy_cli

    policy_cli.explain(file, complaint, granted_total, already_granted, reopened, month_spent)


@policy_app.command("simulate")
def simulate_policy(
    policy: Path = typer.Option(..., "--policy", help="The draft: a compensation or sla policy file"),
    since: str = typer.Option("30d", help="How far back to replay, a duration back from now: 7d, 30d, 12h"),
    source: str | None = typer.Option(None, help="Only complaints from this CRM source"),
    csv: Path | None = typer.Option(None, "--csv", help="Write every changed decision (or breach) to this CSV file"),
    as_json: bool = typer.Option(False, "--json", help="One JSON document with everything, no progress bar"),
    show: int = typer.Option(20, min=0, help="Changed decisions (or breaches) listed in the table"),
    kind: str | None = typer.Option(None, help="compensation | sla (default: from the file name, else its keys)"),
) -> None:
    """What a draft policy would have done with the stored complaints (compensation) or case
    activity (sla), next to the policy in force; read-only. Exit 1 for an invalid draft, 2 when a
    server is unreachable."""
    from services import simulate_policy as simulation

    simulation.run(policy, since=since, source=source, csv_path=csv, as_json=as_json, show=show, kind=kind,
                   settings=_settings())


def _stack(command: str) -> None:
    result = subprocess.run(["bash", str(REPO_ROOT / "deploy/local/stack.sh"), command])
    raise typer.Exit(result.returncode)


@stack_app.command("up")
def stack_up() -> None:
    """Start the local Kafka and PostgreSQL, or reuse those that answer, saying whose they are."""
    _stack("up")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the servers this checkout's state dir started; say what is left running and whose it is."""
    _stack("down")


@stack_app.command("status")
def stack_status() -> None:
    """Per server: up or down, address, version, owner (this checkout, another checkout, unknown)."""
    _stack("status")


@stack_app.command("kafka", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                   add_help_option=False)
def stack_kafka(ctx: typer.Context) -> None:
    """Kafka's own tools: console-consumer, console-producer, consumer-groups, topics, get-offsets,
    configs (deploy/local/kafka-tool.sh), e.g. `helpdesk stack kafka consumer-groups --describe --all-groups`."""
    result = subprocess.run(["bash", str(REPO_ROOT / "deploy/local/kafka-tool.sh"), *ctx.args])
    raise typer.Exit(result.returncode)


# ---------- migrate ----------
@app.command()
def migrate(
    services: list[str] = typer.Argument(None, help="services whose schemas to migrate (default: all four)"),
    grant_to: str | None = typer.Option(None, "--grant-to", help="the runtime role (DATABASE_URL's user) that gets "
                                        "read/write rights on the tables, but no right to change them "
                                        "(default: the MIGRATION_GRANT_TO setting)"),
    check: bool = typer.Option(False, "--check", help="change nothing: list what is pending, exit 1 if anything is"),
) -> None:
    """Bring the services' PostgreSQL schemas to the version the code needs, with
    MIGRATION_DATABASE_URL (else DATABASE_URL): the step a deployment runs before the services
    start with MIGRATE_ON_START=false (README, "Migrations"). Idempotent; two runs at once apply
    each migration once (an advisory lock)."""
    import asyncio
    import importlib

    from services import registry
    from shared import db

    chosen = services or list(registry.NAMES)
    unknown = sorted(set(chosen) - set(registry.NAMES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}: one of {', '.join(registry.NAMES)}")
    settings = _settings()
    grant_to = grant_to if grant_to is not None else settings.migration_grant_to
    if grant_to is not None:
        try:
            db.check_role(grant_to)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    url = settings.migration_dsn()

    async def run() -> int:
        pending_total = 0
        pool = await db.create_pool(url, min_size=1, max_size=2)
        try:
            for entry in registry.SERVICES:
                if entry.name not in chosen:
                    continue
                migrations = importlib.import_module(f"services.{entry.name}.store").MIGRATIONS
                pending = await db.pending_migrations(pool, entry.schema, migrations)
                if check:
                    pending_total += len(pending)
                    typer.echo(f"{entry.name}: " + (f"pending {', '.join(map(str, pending))}" if pending else "up to date"))
                    continue
                applied = await db.migrate(pool, entry.schema, migrations, grant_to=grant_to)
                latest = migrations[-1][0] if migrations else 0
                granted = f"; rights granted to {grant_to}" if grant_to else ""
                typer.echo(f"{entry.name}: {applied} migration(s) applied, schema {entry.schema} at version {latest}{granted}")
        finally:
            await pool.close()
        return pending_total

    if asyncio.run(run()) and check:
        raise typer.Exit(1)


# ---------- rejected: the commands are in services/rejected_cli.py ----------
def _settings():
    from shared.settings import get_settings

    return get_settings()


# ---------- case ----------
@case_app.command("show")
def case_show(
    case_id: str = typer.Argument(..., help="the CRM's case id, e.g. CRM-10442"),
    as_json: bool = typer.Option(False, "--json", help="the raw rows of every service as JSON instead of the timeline"),
) -> None:
    """One case as the services know it: header, SLA clocks, compensation, follow-ups and a timeline
    (times in UTC, due times also in the customer's zone). Exit 1 for an unknown case, 2 when PostgreSQL is unreachable."""
    from services import case_cli

    case_cli.show(case_id, as_json, _settings().dsn())


# ---------- simulate ----------
@app.command()
def simulate(
    rate: float = typer.Option(10.0, min=0.001, help="new cases per second"),
    duration: float = typer.Option(30.0, min=0.0, help="seconds to generate new cases"),
    seed: int | None = typer.Option(None, help="random seed: the same seed repeats the run's case ids, event ids and "
                                    "timestamps relative to its start"),
    drain: bool = typer.Option(True, help="after --duration, publish the remaining activity of the cases"),
) -> None:
    """The CRM simulator as a load generator: complaints and their case activity at a steady rate,
    then (a second phase) the planned cases' remaining activity."""
    from services import simulate_cli

    simulate_cli.run(rate, duration, seed, drain, settings=_settings())


# A server the command needs did not answer or refused the connection. 2 is also what a usage error
# (a bad option) exits with, as for every Click command; 1 is a command's own refusal.
UNREACHABLE_EXIT = 2


def unreachable(exc: BaseException) -> str | None:
    """One line naming what could not be reached, when `exc` (or its cause, or one exception of a
    group) is a failure to connect to Kafka or PostgreSQL; None for any other error. The addresses
    come from the settings (host and port only: never a password)."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError

    settings = _settings()
    seen: list[BaseException] = []
    pending = [exc]
    while pending:
        one = pending.pop()
        if one is None or any(one is s for s in seen):
            continue
        seen.append(one)
        if isinstance(one, BaseExceptionGroup):
            pending.extend(one.exceptions)
        pending.extend([one.__cause__, one.__context__])
    for one in seen:
        if isinstance(one, KafkaConnectionError):
            return f"Kafka is unreachable at {settings.kafka_bootstrap_servers} ({type(one).__name__})"
    from urllib.parse import urlsplit

    parts = urlsplit(settings.dsn())
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
    for one in seen:
        # PostgreSQL answered but refused the login or the database: its message names the role or
        # the database, never the password.
        if isinstance(one, (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError,
                            asyncpg.InvalidCatalogNameError, asyncpg.TooManyConnectionsError,
                            asyncpg.CannotConnectNowError)):
            return f"PostgreSQL at {where} refused the connection ({type(one).__name__}: {one})"
    for one in seen:
        # Connection-level failures only: a local file error (an OSError too) is not an outage.
        if isinstance(one, (asyncpg.ConnectionDoesNotExistError, ConnectionError, TimeoutError, socket.gaierror)):
            return (f"a server is unreachable ({type(one).__name__}: {one}); PostgreSQL is configured at {where}, "
                    f"Kafka at {settings.kafka_bootstrap_servers}")
    return None


def main() -> None:
    """The `helpdesk` entry point: the Typer app, with a server that does not answer reported as
    one line on stderr and exit status 2 instead of a traceback."""
    import logging

    # aiokafka logs each failed connection attempt itself; the one line below says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        app()
    except Exception as exc:
        line = unreachable(exc)
        if line is None:
            raise
        typer.secho(f"helpdesk: {line}", err=True, fg=typer.colors.RED)
        sys.exit(UNREACHABLE_EXIT)


if __name__ == "__main__":
    sys.exit(main())
