"""The Grafana dashboard: every query parses (promtool) and names only metrics the services export.

The unit tests here need promtool only; the integration test starts the four services as real
processes and compares the dashboard's and the alert rules' metric names with their /metrics.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.deploy.files import (
    ALERTS, GRAFANA_PROVISIONING, SERVICES, alert_exprs, dashboard, dashboard_exprs, dashboard_panels, load_yaml,
)
from tests.deploy.promql import (
    PROMETHEUS_SYNTHETIC, PROMTOOL, exported_names, expand_grafana_macros, metric_name_patterns, metric_names,
    promtool_check_exprs,
)

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make tools installs it)")

# What the issue asks the dashboard to show, and a word that must appear in a panel title for each.
REQUIRED_PANELS = {
    "SLA at risk by priority": "at risk", "SLA breached by priority": "breached", "time to first contact": "first contact",
    "fire lag": "fire lag", "compensation granted": "compensation granted", "pending approvals": "pending approvals",
    "follow-ups": "follow-ups", "customers returned": "customers returned", "consumer lag": "consumer lag",
    "rejected events": "rejected events",
}


def test_dashboard_has_a_panel_for_everything_ops_asked_for():
    titles = " | ".join(panel["title"].lower() for panel in dashboard_panels())
    missing = [what for what, word in REQUIRED_PANELS.items() if word not in titles]
    assert not missing, f"no panel for: {missing}"


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    exprs = [expand_grafana_macros(expr) for _, expr in dashboard_exprs()]
    assert len(exprs) > 20
    result = promtool_check_exprs(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_parse_check_refuses_a_broken_query(tmp_path):
    result = promtool_check_exprs(["sum by (priority (helpdesk_sla_breaches_total)"], tmp_path)
    assert result.returncode != 0


def test_dashboard_queries_name_their_metrics_explicitly():
    """No `{__name__=~...}` selectors in the dashboard: every metric it needs is visible by name."""
    for title, expr in dashboard_exprs():
        assert "__name__" not in expr, f"{title}: {expr}"
        names = metric_names(expand_grafana_macros(expr))
        assert names, f"{title}: no metric in {expr}"
        for name in names - PROMETHEUS_SYNTHETIC:
            assert re.match(rf"helpdesk_({'|'.join(SERVICES)})_", name), f"{title}: {name} is not a helpdesk metric"


def test_dashboard_panels_use_the_provisioned_prometheus_datasource():
    datasource = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml")["datasources"][0]
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == datasource["type"] == "prometheus"
    assert variable["current"]["value"] == datasource["uid"]
    for panel in dashboard_panels():
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == f"${{{variable['name']}}}", panel["title"]
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]


def test_dashboard_panels_fit_the_grid_without_overlapping():
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids))


def missing_metrics(exprs: list[tuple[str, str]], exported: set[str]) -> list[str]:
    missing = []
    for title, expr in exprs:
        expr = expand_grafana_macros(expr)
        for name in sorted(metric_names(expr) - exported - PROMETHEUS_SYNTHETIC):
            missing.append(f"{title}: {name}")
        for pattern in sorted(metric_name_patterns(expr)):
            if not any(re.fullmatch(pattern, name) for name in exported):
                missing.append(f"{title}: nothing matches {{__name__=~{pattern!r}}}")
    return missing


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_dashboard_and_alert_rules_use_only_metrics_the_running_services_export(ns):
    processes = [ns.service(name, start=False) for name in SERVICES]
    for process in processes:
        process.start(wait=False)
    started = time.monotonic()
    for process in processes:
        process.wait_healthy(timeout=max(5.0, 90 - (time.monotonic() - started)))
    exported = set().union(*(exported_names(process.metrics()) for process in processes))
    assert "helpdesk_intake_events_handled_total" in exported  # the scrape itself worked

    dashboard_missing = missing_metrics(dashboard_exprs(), exported)
    alerts_missing = missing_metrics(alert_exprs(), exported) if ALERTS.exists() else []
    assert not dashboard_missing, "dashboard queries metrics no service exports:\n" + "\n".join(dashboard_missing)
    assert not alerts_missing, "alert rules use metrics no service exports:\n" + "\n".join(alerts_missing)
