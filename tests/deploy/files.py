"""The deployment files the tests read, parsed once."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from services import registry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "helpdesk.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
K8S_ROOT = DEPLOY / "k8s"  # base/ (the manifests), overlays/, examples/ (operators' CRDs)
K8S = K8S_ROOT / "base"
SERVICES = registry.NAMES


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]


@lru_cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@lru_cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard."""
    return [(panel["title"], target["expr"]) for panel in dashboard_panels()
            for target in panel.get("targets", []) if target.get("expr")]


def alert_exprs() -> list[tuple[str, str]]:
    """(rule name, expression) of every rule in deploy/prometheus/alerts.yml."""
    rules = load_yaml(ALERTS)
    return [(rule.get("alert") or rule.get("record"), str(rule["expr"]))
            for group in rules.get("groups") or [] for rule in group.get("rules") or []]


def k8s_resources() -> list[tuple[str, dict[str, Any]]]:
    """(file name, resource) of every manifest the kustomization lists."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    return [(name, doc) for name in kustomization["resources"] for doc in load_yaml_documents(K8S / name)]


def settings_env_names() -> set[str]:
    from shared.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def default_ports() -> dict[str, int]:
    return registry.ports()
