"""Policy files: durations, errors that point at the line, hot reload that keeps the last good policy."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from pydantic import BaseModel, ConfigDict

from shared.durations import Duration, parse_duration
from shared.policy import PolicyError, PolicyHolder, load_policy, parse_policy


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_contact: Duration
    resolution: Duration


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: dict[str, Targets]


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("15m", 900), ("4h", 14400), ("2d", 172800),
                                          ("1w", 604800), ("1h30m", 5400), (45, 45), ("0.5s", 0.5)])
def test_durations_are_written_the_way_people_say_them(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "soon", "15 minutes", "4x", "-3s", True, None, [1]])
def test_a_duration_nobody_can_read_is_refused(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_a_wrong_value_is_reported_with_file_line_and_field():
    text = "targets:\n  P1:\n    first_contact: 15m\n    resolution: 4h\n  P2:\n    first_contact: soon\n    resolution: 1d\n"
    with pytest.raises(PolicyError) as err:
        parse_policy(text, Policy, "sla.yaml")
    assert "sla.yaml:6: targets.P2.first_contact" in str(err.value)


def test_a_misspelt_key_is_refused_with_its_line():
    text = "targets:\n  P1:\n    first_contact: 15m\n    resolutoin: 4h\n"
    with pytest.raises(PolicyError) as err:
        parse_policy(text, Policy, "sla.yaml")
    message = str(err.value)
    assert "sla.yaml:4: targets.P1.resolutoin: Extra inputs are not permitted" in message
    assert "targets.P1.resolution: Field required" in message


def test_broken_yaml_is_refused_with_its_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("targets:\n  P1: [\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path, Policy)
    assert f"{path}:3: not valid YAML" in str(err.value)


def _write(path, text):
    path.write_text(text)
    stamp = time.time() + 2  # mtime changes even on coarse file systems
    os.utime(path, (stamp, stamp))


def test_an_edit_applies_without_restart_and_a_broken_edit_keeps_the_last_good_policy(tmp_path):
    path = tmp_path / "sla.yaml"
    _write(path, "targets:\n  P1: {first_contact: 15m, resolution: 4h}\n")
    refused, reloaded = [], []
    holder = PolicyHolder(path, Policy, check_every=0, on_refused=refused.append, on_reload=reloaded.append)
    first_version = holder.current().version
    assert holder.policy.targets["P1"].first_contact == timedelta(minutes=15)

    _write(path, "targets:\n  P1: {first_contact: 5m, resolution: 4h}\n")
    assert holder.policy.targets["P1"].first_contact == timedelta(minutes=5)
    assert len(reloaded) == 1 and holder.current().version != first_version

    good_version = holder.current().version
    _write(path, "targets:\n  P1: {first_contact: never, resolution: 4h}\n")
    assert holder.policy.targets["P1"].first_contact == timedelta(minutes=5)
    assert holder.current().version == good_version
    assert len(refused) == 1 and "sla.yaml:2" in refused[0] and holder.last_error

    _write(path, "targets:\n  P1: {first_contact: 1m, resolution: 4h}\n")
    assert holder.policy.targets["P1"].first_contact == timedelta(minutes=1)
    assert holder.last_error is None


def test_a_service_refuses_to_start_without_a_valid_policy(tmp_path):
    path = tmp_path / "sla.yaml"
    path.write_text("targets: 3\n")
    with pytest.raises(PolicyError):
        PolicyHolder(path, Policy)
