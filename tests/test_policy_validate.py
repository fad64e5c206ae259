"""`helpdesk policy validate`: missing files, kinds guessed from the content, duration messages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.policy_cli import kind_from_content
from services.sla.policy import parse_target
from shared.durations import DURATION_FORMS, parse_duration

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def validate(*args: str):
    return runner.invoke(app, ["policy", "validate", *args])


def test_a_missing_file_is_file_not_found_without_a_traceback(tmp_path):
    missing = tmp_path / "sla.yaml"
    result = validate(str(missing), str(ROOT / "config" / "followup.yaml"))
    assert result.exit_code == 1
    assert f"file not found: {missing}" in result.output
    assert "OK: " in result.output, "the other files are still checked"
    assert "Traceback" not in result.output and "cannot tell" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("kind", ["classification", "sla", "compensation", "followup"])
def test_the_kind_is_guessed_from_the_content_when_the_name_does_not_say(tmp_path, kind):
    shipped = ROOT / "config" / f"{kind}.yaml"
    odd = tmp_path / "staging-rules.yaml"  # classification.yaml names its examples file beside it
    odd.write_text(shipped.read_text())
    if kind == "classification":
        (tmp_path / "classification_examples.yaml").write_text((ROOT / "config" / "classification_examples.yaml").read_text())
    result = validate(str(odd))
    assert result.exit_code == 0, result.output
    assert f"{odd}: kind {kind}, guessed from its top-level keys" in result.output
    assert f"OK: {odd} is a valid {kind} policy" in result.output


def test_a_guessed_kind_still_reports_the_errors_of_that_kind(tmp_path):
    odd = tmp_path / "rules.yaml"
    odd.write_text("targets:\n  P1: {first_contact: soon, update: 1h, resolution: 1d}\n")
    result = validate(str(odd))
    assert result.exit_code == 1
    assert "kind sla, guessed" in result.output and f"{odd}:2: targets.P1.first_contact" in result.output


def test_keys_of_two_kinds_are_ambiguous_and_the_message_suggests_kind(tmp_path):
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("targets: {}\nrules: []\n")
    result = validate(str(mixed))
    assert result.exit_code == 1
    assert "cannot tell which policy" in result.output and "sla (targets) and compensation (rules)" in result.output
    assert "--kind sla or --kind compensation" in result.output
    assert kind_from_content({"targets": 1, "rules": 2}).kind is None


def test_no_known_key_asks_for_kind_and_kind_decides(tmp_path):
    odd = tmp_path / "rules.yaml"
    odd.write_text("a: 1\n")
    result = validate(str(odd))
    assert result.exit_code == 1 and "--kind classification|sla|compensation|followup" in result.output
    forced = validate(str(odd), "--kind", "followup")
    assert forced.exit_code == 1 and "a: Extra inputs are not permitted" in forced.output
    assert validate(str(odd), "--kind", "nonsense").exit_code == 2


def test_broken_or_empty_files_say_so(tmp_path):
    broken, empty = tmp_path / "x.yaml", tmp_path / "y.yaml"
    broken.write_text("a: [\n")
    empty.write_text("")
    result = validate(str(broken), str(empty))
    assert result.exit_code == 1
    assert f"{broken}:2: not valid YAML" in result.output and f"{empty}: the file is empty" in result.output


def test_a_bad_duration_lists_every_form_accepted(tmp_path):
    sla = tmp_path / "sla.yaml"
    sla.write_text((ROOT / "config" / "sla.yaml").read_text().replace("first_contact: 15m", "first_contact: soon", 1))
    assert "soon" in sla.read_text()
    message = " ".join(validate(str(sla)).output.split())
    for form in ("'500ms'", "'30s'", "'15m'", "'4h'", "'2d'", "'1w'", "'1.5h'", "'1h30m'", "bare number of seconds",
                 "'3bd'", "'3 business days'"):
        assert form in message, form
    followup = tmp_path / "followup.yaml"
    followup.write_text("thank_you_note:\n  delay: tomorrow\n")
    message = validate(str(followup)).output
    assert "'1h30m'" in message and "bd'" not in message, "business days are for SLA targets only"


def test_every_form_the_message_lists_is_accepted():
    examples = re.findall(r"'([^']+)'", DURATION_FORMS)
    assert len(examples) >= 8
    for text in examples:
        assert parse_duration(text).total_seconds() > 0, text
    assert parse_duration(45).total_seconds() == 45  # "a bare number of seconds"
    for text in ("3bd", "3 business days", "1 business day"):
        assert parse_target(text).days >= 1


def test_the_training_examples_beside_the_policies_are_checked_as_examples(tmp_path):
    shipped = CliRunner().invoke(app, ["policy", "validate", str(ROOT / "config/classification.yaml"),
                                       str(ROOT / "config/classification_examples.yaml")])
    assert shipped.exit_code == 0, shipped.output
    assert "training examples for the learned classifier (not a policy)" in shipped.output
    broken = tmp_path / "classification_examples.yaml"
    broken.write_text("examples:\n  billing: [\"\"]\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["policy", "validate", str(broken)])
    assert refused.exit_code == 1 and "examples.billing[0]: expected a non-empty text" in refused.output
