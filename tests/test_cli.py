"""The `helpdesk` command as admins use it."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from services.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_every_shipped_policy_file_validates():
    files = [str(ROOT / "config" / f) for f in ("classification.yaml", "sla.yaml", "compensation.yaml", "followup.yaml")]
    result = runner.invoke(app, ["policy", "validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count("OK:") == 4


def test_a_broken_policy_is_reported_with_file_and_line_and_fails(tmp_path):
    bad = tmp_path / "sla.yaml"
    bad.write_text((ROOT / "config" / "sla.yaml").read_text() + "\nsurprise_key: 1\n")
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output and "surprise_key" in result.output


def test_a_file_whose_kind_cannot_be_told_asks_for_kind(tmp_path):
    odd = tmp_path / "rules.yaml"
    odd.write_text("a: 1\n")
    result = runner.invoke(app, ["policy", "validate", str(odd)])
    assert result.exit_code != 0 and "--kind" in result.output


def test_help_is_there_for_every_command():
    for args in (["--help"], ["policy", "--help"], ["stack", "--help"], ["policy", "explain", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output
