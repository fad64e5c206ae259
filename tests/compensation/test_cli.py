"""`helpdesk policy validate` and `helpdesk policy explain`, as an admin runs them."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from services.cli import app
from shared.policy import content_version

from .conftest import DEFAULT_POLICY, SMALL_POLICY, complaint

runner = CliRunner()


def test_validate_accepts_the_default_policy_and_prints_its_version():
    result = runner.invoke(app, ["policy", "validate", str(DEFAULT_POLICY)])
    assert result.exit_code == 0, result.output
    version = content_version(DEFAULT_POLICY.read_text(encoding="utf-8"))
    assert result.stdout.startswith(f"OK: {DEFAULT_POLICY} is a valid compensation policy (version {version})")


def test_validate_refuses_a_policy_without_fallback_naming_file_line_and_field(tmp_path):
    broken = tmp_path / "compensation.yaml"
    broken.write_text(SMALL_POLICY.replace("fallback:", "fallbak:"), encoding="utf-8")
    result = runner.invoke(app, ["policy", "validate", str(broken)])
    assert result.exit_code == 1
    line = next(n for n, row in enumerate(broken.read_text().splitlines(), 1) if row.startswith("fallbak:"))
    assert f"{broken}:{line}: fallbak: Extra inputs are not permitted" in result.stderr
    assert "fallback: Field required" in result.stderr


def test_validate_reports_a_missing_file(tmp_path):
    result = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert f"file not found: {tmp_path / 'nope.yaml'}" in result.stderr


def test_explain_prints_the_decision_for_an_event_file(tmp_path):
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(complaint(category="service_not_offered").model_dump(mode="json")))
    result = runner.invoke(app, ["policy", "explain", str(DEFAULT_POLICY), "--complaint", str(event_file)])
    assert result.exit_code == 0, result.output
    assert "rule service_not_offered: MATCHED" in result.stdout
    assert "free_trial (days=60): 30.00 USD" in result.stdout
    assert "Authority: agent" in result.stdout


def test_explain_with_case_facts_from_options(tmp_path):
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(complaint(category="service_not_offered").model_dump(mode="json")))
    result = runner.invoke(app, ["policy", "explain", str(DEFAULT_POLICY), "--complaint", str(event_file), "--already-granted"])
    assert result.exit_code == 0, result.output
    assert "Reason: already_granted" in result.stdout


def test_explain_refuses_an_event_file_that_is_not_json(tmp_path):
    event_file = tmp_path / "event.json"
    event_file.write_text("{not json")
    result = runner.invoke(app, ["policy", "explain", str(DEFAULT_POLICY), "--complaint", str(event_file)])
    assert result.exit_code == 1
    assert f"{event_file}:1: not valid JSON" in result.stderr
