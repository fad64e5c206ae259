"""Durations are bounded (365 days; 260 business days), so `policy validate` refuses what would
overflow a date at runtime, naming file, line and field; and a file that makes the policy watch
fail in a way nobody foresaw is refused like any invalid policy: counted, listed in /healthz,
logged once per edit, never a traceback every second."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict, field_validator
from typer.testing import CliRunner

from services.followup.policy import parse_span
from services.sla.policy import MAX_BUSINESS_DAYS, BusinessDays, SlaPolicy, parse_target
from shared.durations import MAX_DURATION, parse_duration
from shared.policy import PolicyError, PolicyHolder, parse_policy

ROOT = Path(__file__).resolve().parents[2]
TOO_LONG = "at most 365 days"


@pytest.mark.parametrize("value", ["99999999w", 100000000000000000000, "10000000000000000000000s", 10**5000,
                                   "9" * 5000, "9" * 5000 + "s", float("inf"), "366d", "8761h", "53w",
                                   MAX_DURATION + timedelta(seconds=1)],
                         ids=lambda v: f"{type(v).__name__}-{repr(v)[:24] if not isinstance(v, int) else 'big'}")
def test_a_duration_longer_than_a_year_is_a_validation_error_not_an_overflow(value):
    with pytest.raises(ValueError) as err:
        parse_duration(value)
    assert TOO_LONG in str(err.value)
    assert len(str(err.value)) < 300, "a 5,000-digit value is not quoted in full"


@pytest.mark.parametrize("text,seconds", [("365d", 365 * 86400), ("52w", 364 * 86400), ("8760h", 365 * 86400),
                                          ("90", 90), (" 90 ", 90), ("1.5", 1.5), (90, 90)])
def test_up_to_a_year_is_accepted_and_a_quoted_number_is_seconds(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_not_a_number_is_refused():
    with pytest.raises(ValueError):
        parse_duration(float("nan"))


def test_business_days_are_bounded_by_a_year_of_working_days():
    assert parse_target(f"{MAX_BUSINESS_DAYS}bd") == BusinessDays(MAX_BUSINESS_DAYS)
    assert parse_target("0003bd") == BusinessDays(3)
    for text in (f"{MAX_BUSINESS_DAYS + 1}bd", "9" * 5000 + "bd", "100000 business days"):
        with pytest.raises(ValueError) as err:
            parse_target(text)
        assert f"at most {MAX_BUSINESS_DAYS} business days" in str(err.value)
    with pytest.raises(ValueError, match=TOO_LONG):
        parse_target("99999999w")


def test_followup_spans_share_the_bound():
    assert parse_span("365d").calendar_days == 365
    for text in ("400d", "100000000000000000000", 10**30):
        with pytest.raises(ValueError, match=TOO_LONG):
            parse_span(text)


def sla_with(first_contact: str) -> str:
    return (ROOT / "config" / "sla.yaml").read_text().replace("first_contact: 1h,", f"first_contact: {first_contact},", 1)


@pytest.mark.parametrize("value", ["99999999w", "100000000000000000000", "10000000000000000000000s"])
def test_the_reviewed_values_name_file_line_and_field(value):
    text = sla_with(value)
    assert value in text
    line = next(n for n, row in enumerate(text.splitlines(), 1) if value in row)
    with pytest.raises(PolicyError) as err:
        parse_policy(text, SlaPolicy, "sla.yaml")
    assert f"sla.yaml:{line}: targets.P2.first_contact" in str(err.value) and TOO_LONG in str(err.value)


def test_policy_validate_refuses_them_without_a_traceback(tmp_path):
    from services.cli import app

    path = tmp_path / "sla.yaml"
    path.write_text(sla_with("100000000000000000000"))
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}:" in result.output and "targets.P2.first_contact" in result.output and TOO_LONG in result.output


def test_a_yaml_value_the_parser_cannot_even_build_is_a_policy_error():
    with pytest.raises(PolicyError) as err:  # ruamel turns 5,000 digits into an int: Python refuses
        parse_policy("targets:\n  P2: {first_contact: " + "9" * 5000 + "}\n", SlaPolicy, "sla.yaml")
    assert str(err.value).startswith("sla.yaml")


# ---------- the watch ----------

class Exploding(BaseModel):
    """A policy whose validator fails with an OverflowError (not a ValueError: pydantic lets it through)."""

    model_config = ConfigDict(extra="forbid")
    days: int

    @field_validator("days")
    @classmethod
    def _as_timedelta(cls, value: int) -> int:
        timedelta(days=value)  # OverflowError above 999,999,999 days
        return value


def write(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


def test_an_unexpected_exception_is_a_refusal_once_per_edit(tmp_path, caplog):
    path = tmp_path / "exploding.yaml"
    write(path, "days: 3\n")
    refused: list[str] = []
    holder = PolicyHolder(path, Exploding, check_every=0, on_refused=refused.append)
    caplog.set_level(logging.DEBUG, logger="shared.policy")

    write(path, "days: 9999999999\n")
    for _ in range(5):
        assert holder.reload_if_changed() is False  # never raises
        assert holder.policy.days == 3, "the last good policy stays in force"
    assert len(refused) == 1 and refused[0].startswith(f"{path}: cannot be used: OverflowError")
    assert holder.last_error == refused[0]
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "exploding.yaml refused, keeping version" in errors[0].getMessage()
    assert not errors[0].exc_info, "no traceback above DEBUG"
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records), "the traceback at DEBUG"

    write(path, "days: 4\n")
    assert holder.reload_if_changed() and holder.policy.days == 4 and holder.last_error is None


def test_an_unexpected_exception_at_start_is_a_policy_error(tmp_path):
    path = tmp_path / "exploding.yaml"
    path.write_text("days: 9999999999\n")
    with pytest.raises(PolicyError, match="OverflowError"):
        PolicyHolder(path, Exploding)


async def test_the_service_s_watch_counts_it_lists_it_in_healthz_and_logs_it_once(tmp_path, caplog):
    from shared.service import ServiceRuntime
    from shared.settings import Settings

    path = tmp_path / "exploding.yaml"
    write(path, "days: 3\n")
    runtime = ServiceRuntime("policywatch", settings=Settings(helpdesk_config_dir=tmp_path, policy_check_interval=0.02))
    runtime.policy("exploding.yaml", Exploding)
    caplog.set_level(logging.INFO)
    write(path, "days: 9999999999\n")
    watch = asyncio.ensure_future(runtime._watch_policies())
    await asyncio.sleep(0.5)  # some 25 checks
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)

    assert REGISTRY.get_sample_value("helpdesk_policywatch_policy_refusals_total", {"policy": "exploding"}) == 1
    _, checks = await runtime.health()
    assert checks["policy_errors"] == ["exploding.yaml"]
    above_info = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("shared")]
    assert len(above_info) == 1 and "refused" in above_info[0].getMessage(), [r.getMessage() for r in above_info]
    assert not any("policy watch failed" in r.getMessage() for r in caplog.records)
