"""deploy/compose.yaml checked without a Docker engine: structure, and agreement with the code."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.deploy.files import (
    ALERTS, DEPLOY, SERVICES, compose, default_ports, load_yaml, settings_env_names,
)

# Set in the image for the one entry point; every other variable must be a real setting.
IMAGE_ONLY_ENV = {"SERVICE"}
SERVERS = {"kafka", "postgres", "prometheus", "alertmanager", "grafana"}
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def helpdesk_service(name: str) -> dict:
    return compose()["services"][name]


def test_the_four_services_kafka_postgres_prometheus_alertmanager_and_grafana_are_all_there():
    assert set(compose()["services"]) == {*SERVICES, *SERVERS}


@pytest.mark.parametrize("name", sorted({*SERVICES, *SERVERS}))
def test_every_image_is_pinned_to_a_version_tag(name):
    image = compose()["services"][name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{name}: image {image!r} is not pinned to a version"


def test_kafka_is_the_official_image_in_kraft_mode_without_zookeeper():
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "the services create their topics"


def test_postgres_is_version_16():
    assert re.fullmatch(r"postgres:16\.\d+(-\w+)?", compose()["services"]["postgres"]["image"])


@pytest.mark.parametrize("name", sorted({*SERVICES, *SERVERS}))
def test_every_container_has_a_health_check(name):
    check = compose()["services"][name].get("healthcheck")
    assert check and check.get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_from_the_one_dockerfile(name):
    build = helpdesk_service(name)["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    assert helpdesk_service(name)["environment"]["SERVICE"] == name


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_uses_only_real_setting_names(name):
    unknown = set(helpdesk_service(name)["environment"]) - settings_env_names() - IMAGE_ONLY_ENV
    assert not unknown, f"{name}: {sorted(unknown)} are not fields of shared.settings.Settings"


@pytest.mark.parametrize("name", SERVICES)
def test_service_publishes_its_default_metrics_port_and_checks_health_there(name):
    port = default_ports()[name]
    service = helpdesk_service(name)
    assert int(service["environment"]["METRICS_PORT"]) == port
    assert f"{port}:{port}" in service["ports"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name", SERVICES)
def test_service_waits_for_a_healthy_kafka_and_postgres(name):
    depends_on = helpdesk_service(name)["depends_on"]
    for server in ("kafka", "postgres"):
        assert depends_on[server]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", SERVICES)
def test_service_reaches_kafka_on_an_advertised_listener(name):
    advertised = compose()["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    addresses = {listener.split("://", 1)[1] for listener in advertised.split(",")}
    assert helpdesk_service(name)["environment"]["KAFKA_BOOTSTRAP_SERVERS"] in addresses


@pytest.mark.parametrize("name", SERVICES)
def test_service_database_is_the_compose_postgres(name):
    url = urlparse(helpdesk_service(name)["environment"]["DATABASE_URL"])
    postgres = compose()["services"]["postgres"]["environment"]
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["POSTGRES_USER"] and url.path == f"/{postgres['POSTGRES_DB']}"


@pytest.mark.parametrize("name", SERVICES)
def test_policy_files_are_mounted_read_only_where_the_service_looks_for_them(name):
    service = helpdesk_service(name)
    config_dir = service["environment"]["HELPDESK_CONFIG_DIR"]
    mounts = [volume.split(":") for volume in service["volumes"]]
    matching = [m for m in mounts if m[1] == config_dir]
    assert matching, f"{name}: nothing mounted at {config_dir}"
    source, _, mode = matching[0]
    assert mode == "ro"
    for policy in ("classification.yaml", "sla.yaml", "compensation.yaml", "followup.yaml"):
        assert (DEPLOY / source / policy).is_file()


def bind_mounts(name: str) -> list[tuple[Path, str]]:
    volumes = compose()["services"][name].get("volumes", [])
    return [(DEPLOY / v.split(":")[0], v.split(":")[1]) for v in volumes if v.startswith(".")]


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana", *SERVICES])
def test_every_mounted_file_exists(name):
    for source, _ in bind_mounts(name):
        if source.resolve() == ALERTS.resolve() and not ALERTS.exists():
            pytest.skip("deploy/prometheus/alerts.yml is not written yet (owned by the sla service)")
        assert source.exists(), f"{name} mounts {source}, which does not exist"


def test_prometheus_gets_its_config_and_every_rule_file_it_names():
    mounts = {target: source for source, target in bind_mounts("prometheus")}
    command = " ".join(compose()["services"]["prometheus"]["command"])
    config_path = re.search(r"--config\.file=(\S+)", command).group(1)
    config = load_yaml(mounts[config_path])
    for rule_file in config["rule_files"]:
        assert str(Path(config_path).parent / rule_file) in mounts, f"{rule_file} is not mounted"


def test_prometheus_scrapes_each_service_by_its_compose_name_and_port():
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {job["job_name"]: target for job in config["scrape_configs"]
               for group in job["static_configs"] for target in group["targets"]}
    for name in SERVICES:
        assert targets[name] == f"{name}:{default_ports()[name]}"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard_folder():
    mounts = {target: source for source, target in bind_mounts("grafana")}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert [d["url"] for d in datasources if d["type"] == "prometheus"] == ["http://prometheus:9090"]
    providers = load_yaml(provisioning / "dashboards" / "helpdesk.yaml")["providers"]
    dashboard_dir = providers[0]["options"]["path"]
    assert (mounts[dashboard_dir] / "helpdesk.json").is_file()


def test_prometheus_starts_without_waiting_for_healthy_services():
    """Prometheus must run to alert on a service that never gets healthy: it waits for nothing to be
    healthy (a service not answering yet is `up == 0`, which is what HelpdeskServiceDown watches)."""
    depends_on = compose()["services"]["prometheus"].get("depends_on", {})
    for name, condition in depends_on.items():
        assert condition["condition"] != "service_healthy", f"prometheus waits for {name} to be healthy"


def test_prometheus_sends_its_alerts_to_the_compose_alertmanager():
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = [target for manager in config["alerting"]["alertmanagers"]
               for group in manager["static_configs"] for target in group["targets"]]
    alertmanager = compose()["services"]["alertmanager"]
    published = {int(port.split(":")[-1]) for port in alertmanager["ports"]}
    assert targets == ["alertmanager:9093"] and 9093 in published


def test_alertmanager_gets_its_config_from_deploy_alertmanager():
    mounts = {target: source for source, target in bind_mounts("alertmanager")}
    command = " ".join(compose()["services"]["alertmanager"]["command"])
    config_path = re.search(r"--config\.file=(\S+)", command).group(1)
    assert mounts[config_path].resolve() == ALERTMANAGER_CONFIG.resolve()


def test_alertmanager_routes_everything_to_a_default_webhook_receiver():
    config = load_yaml(ALERTMANAGER_CONFIG)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    default = receivers[config["route"]["receiver"]]
    urls = [hook["url"] for hook in default["webhook_configs"]]
    assert urls and all(url.startswith(("http://", "https://")) for url in urls)
    for route in config["route"].get("routes", []):
        assert route["receiver"] in receivers


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed (Debian: prometheus-alertmanager)")
def test_alertmanager_config_passes_amtool_check_config():
    result = subprocess.run(["amtool", "check-config", str(ALERTMANAGER_CONFIG)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
