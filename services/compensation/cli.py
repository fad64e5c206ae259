"""`helpdesk policy validate|explain`: check a compensation policy before it goes live.

A typer sub-app; the `helpdesk` command mounts it as `policy`.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from shared.policy import PolicyError, content_version, parse_policy

from .domain import CaseFacts
from .explain import explain as explain_decision
from .policy import CompensationPolicy

app = typer.Typer(help="Check a compensation policy file and see what it would decide.", no_args_is_help=True)


def _load(file: Path) -> tuple[CompensationPolicy, str]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{file}: cannot be read: {exc.strerror}") from None
    return parse_policy(text, CompensationPolicy, str(file)), content_version(text)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


@app.command()
def validate(file: Path = typer.Argument(..., help="The policy file, e.g. config/compensation.yaml")) -> None:
    """Check a policy file; on error, print file:line: field: problem and exit 1."""
    try:
        policy, version = _load(file)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    extras = f", {len(policy.extras)} extras" if policy.extras else ""
    typer.echo(f"OK: {len(policy.rules)} rules, version {version} ({file}{extras}, fallback {policy.fallback.id})")


@app.command()
def explain(
    file: Path = typer.Argument(..., help="The policy file, e.g. config/compensation.yaml"),
    complaint: Path = typer.Option(..., "--complaint", help="A complaint.classified event as JSON"),
    granted_total: float = typer.Option(0.0, help="Already granted on this case, in the order's currency"),
    already_granted: bool = typer.Option(False, help="The case was already compensated (granted or sent for approval)"),
    reopened: bool = typer.Option(False, help="The case was reopened"),
    month_spent: float = typer.Option(
        0.0, help="Spent this month of the budget line the grant counts against, in that line's currency"),
) -> None:
    """Show which rule matches the complaint, which do not and why, the offers, cost and authority."""
    try:
        policy, version = _load(file)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    try:
        event = json.loads(complaint.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"{complaint}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{complaint}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(event, dict):
        raise _fail(f"{complaint}: expected a JSON object (one complaint.classified event)")
    facts = CaseFacts(granted_total, already_granted, reopened, month_spent)
    try:
        typer.echo(explain_decision(policy, event, version=version, facts=facts))
    except ValueError as exc:
        raise _fail(f"{complaint}: {exc}") from None


if __name__ == "__main__":
    app()
