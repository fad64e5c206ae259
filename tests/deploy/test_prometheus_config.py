"""deploy/prometheus/prometheus.yml: valid for promtool, and the rule files it names exist."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.files import ALERTS, PROMETHEUS_CONFIG, load_yaml
from tests.deploy.promql import PROMTOOL

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make tools installs it)")


def test_prometheus_config_passes_promtool_check_config(tmp_path):
    # promtool also checks the rule files the config names; check this config against the real
    # alert rules when they exist, else against an empty rule file, so this test is about the config.
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / "prometheus.yml")
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        source = PROMETHEUS_CONFIG.parent / rule_file
        if source.exists():
            shutil.copy(source, tmp_path / rule_file)
        else:
            (tmp_path / rule_file).write_text("groups: []\n")
    result = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_loads_the_alert_rules_file():
    assert "alerts.yml" in load_yaml(PROMETHEUS_CONFIG)["rule_files"]
    assert ALERTS.parent == PROMETHEUS_CONFIG.parent


def test_promtool_check_config_refuses_a_broken_scrape_config(tmp_path):
    """The check above can fail: a scrape job without a name is refused."""
    (tmp_path / "prometheus.yml").write_text("scrape_configs:\n  - static_configs:\n      - targets: ['intake:9101']\n")
    result = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
