"""`helpdesk`: the command line for admins and ops (`helpdesk --help`)."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import typer

from shared.policy import PolicyError, content_version, load_policy
from shared.settings import REPO_ROOT

app = typer.Typer(help="Service-recovery helpdesk: policies, local stack, cases, rejected events.", no_args_is_help=True)
policy_app = typer.Typer(help="Check policy files before they go live.", no_args_is_help=True)
stack_app = typer.Typer(help="The local Kafka and PostgreSQL servers.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(stack_app, name="stack")

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
            load_policy(file, model)
        except PolicyError as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            failed = True
            continue
        typer.echo(f"OK: {file} is a valid {name} policy (version {content_version(file.read_text(encoding='utf-8'))})")
    if failed:
        raise typer.Exit(1)


@policy_app.command("explain")
def explain(
    file: Path = typer.Argument(..., help="A compensation policy, e.g. config/compensation.yaml"),
    complaint: Path = typer.Option(..., "--complaint", help="A complaint.classified event as JSON"),
    granted_total: float = typer.Option(0.0, help="Already granted on this case"),
    already_granted: bool = typer.Option(False, help="The case was already compensated"),
    reopened: bool = typer.Option(False, help="The case was reopened"),
    month_spent: float = typer.Option(0.0, help="Granted this month for the complaint's source"),
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


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
