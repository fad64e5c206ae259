"""deploy/k8s: every manifest passes the Kubernetes schema (kubernetes-validate, offline) and agrees
with the code: ports, probes on /livez and /readyz, settings names, policies as a mounted ConfigMap."""
from __future__ import annotations

import copy
import importlib.util

import pytest

from tests.deploy.files import K8S, SERVICES, default_ports, k8s_resources, load_yaml, settings_env_names


def resources_of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_resources() if doc["kind"] == kind}


def deployment(name: str) -> dict:
    return resources_of_kind("Deployment")[name]


def container(name: str) -> dict:
    (only,) = deployment(name)["spec"]["template"]["spec"]["containers"]
    return only


def test_kustomization_lists_every_manifest_in_the_folder():
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_every_manifest_passes_the_kubernetes_schema_strictly():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    failures = []
    for filename, resource in k8s_resources():
        try:
            kubernetes_validate.validate(resource, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{filename} {resource['kind']}/{resource['metadata']['name']}: {error.message}")
    assert not failures, "\n".join(failures)


def test_the_schema_check_refuses_a_misspelt_field():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = copy.deepcopy(deployment("sla"))
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_there_is_a_deployment_and_a_metrics_service_per_helpdesk_service():
    assert set(resources_of_kind("Deployment")) == set(SERVICES)
    assert set(resources_of_kind("Service")) == set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_more_than_one_replica_runs_and_a_disruption_keeps_one(name):
    assert deployment(name)["spec"]["replicas"] >= 2
    budget = resources_of_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["minAvailable"] >= 1
    assert budget["spec"]["selector"] == deployment(name)["spec"]["selector"]


@pytest.mark.parametrize("name", SERVICES)
def test_readiness_asks_the_dependencies_and_liveness_only_the_process(name):
    spec = container(name)
    env = {e["name"]: e.get("value") for e in spec["env"]}
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert env["SERVICE"] == name
    assert ports["metrics"] == default_ports()[name] == int(env["METRICS_PORT"])
    # a database or broker outage takes pods out of rotation (/readyz) and never restarts them (/livez)
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert spec["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    startup = spec["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # topics and migrations at start-up


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_service_selects_the_pods_and_targets_the_metrics_port(name):
    service = resources_of_kind("Service")[name]
    pod_labels = deployment(name)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == default_ports()[name] and port["targetPort"] == "metrics"


@pytest.mark.parametrize("name", SERVICES)
def test_container_has_resources_and_runs_as_non_root_read_only(name):
    spec = container(name)
    assert {"cpu", "memory"} <= spec["resources"]["requests"].keys()
    assert "memory" in spec["resources"]["limits"]
    assert deployment(name)["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", SERVICES)
def test_image_is_pinned_and_matches_the_kustomization(name):
    image = container(name)["image"]
    repository, _, tag = image.rpartition(":")
    assert tag and tag != "latest"
    images = {i["name"]: i for i in load_yaml(K8S / "kustomization.yaml")["images"]}
    assert images[repository]["newTag"] != "latest"


@pytest.mark.parametrize("name", SERVICES)
def test_environment_comes_from_the_settings_configmap_and_the_secret(name):
    sources = container(name)["envFrom"]
    config_maps = resources_of_kind("ConfigMap")
    secrets = resources_of_kind("Secret")
    assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= config_maps.keys()
    assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} <= secrets.keys()
    assert {s["secretRef"]["name"] for s in sources if "secretRef" in s}, "DATABASE_URL must come from a Secret"


def test_settings_configmap_and_secret_hold_only_real_setting_names():
    settings = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]
    secret = resources_of_kind("Secret")["helpdesk-secrets"]["stringData"]
    assert not set(settings) - settings_env_names(), set(settings) - settings_env_names()
    assert not set(secret) - settings_env_names(), set(secret) - settings_env_names()
    assert "DATABASE_URL" in secret and "DATABASE_URL" not in settings


@pytest.mark.parametrize("name", SERVICES)
def test_policy_configmap_is_mounted_as_a_directory_at_the_config_dir(name):
    config_dir = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]["HELPDESK_CONFIG_DIR"]
    pod = deployment(name)["spec"]["template"]["spec"]
    mount = next(m for m in container(name)["volumeMounts"] if m["mountPath"] == config_dir)
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap edits: no hot reload"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "helpdesk-policies"


def test_policy_configmap_holds_exactly_the_files_in_config():
    spec = importlib.util.spec_from_file_location("render_policies", K8S / "render_policies.py")
    render_policies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_policies)
    assert (K8S / "policies.yaml").read_text(encoding="utf-8") == render_policies.render(), (
        "deploy/k8s/policies.yaml is stale: run .venv/bin/python deploy/k8s/render_policies.py")
    data = resources_of_kind("ConfigMap")["helpdesk-policies"]["data"]
    config = K8S.parents[1] / "config"
    assert data == {path.name: path.read_text(encoding="utf-8") for path in config.glob("*.yaml")}
