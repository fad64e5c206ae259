"""deploy/k8s: every manifest of the base passes the Kubernetes schema (kubernetes-validate, offline)
and agrees with the code: ports, probes on /livez and /readyz, settings names, policies as a mounted
ConfigMap validated by an init container, no Secret in the base (the example overlay generates it),
ServiceAccount without token, NetworkPolicy, and the operator examples (ExternalSecret, KEDA)."""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from services import registry
from shared.settings import Settings
from tests.deploy.files import (K8S, K8S_ROOT, ROOT, SERVICES, default_ports, k8s_resources, load_yaml,
                                load_yaml_documents, settings_env_names)

OVERLAY = K8S_ROOT / "overlays" / "example"
EXAMPLES = K8S_ROOT / "examples"
SECRET = "helpdesk-secrets"
MIGRATIONS_SECRET = "helpdesk-migrations"


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
    assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= config_maps.keys()
    # DATABASE_URL comes from a Secret the base does not hold (the overlay or the ExternalSecret makes it)
    assert [s["secretRef"]["name"] for s in sources if "secretRef" in s] == [SECRET]


def env_file_names(text: str) -> tuple[set[str], set[str]]:
    """(names set, names only mentioned in a comment `# NAME=...`) of a kustomize env file."""
    names, commented = set(), set()
    for line in text.splitlines():
        if match := re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=.*", line.strip()):
            (commented if match.group(1) else names).add(match.group(2))
    return names, commented


def test_settings_configmap_and_secret_hold_only_real_setting_names():
    settings = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]
    assert not set(settings) - settings_env_names(), set(settings) - settings_env_names()
    secret, commented = env_file_names((OVERLAY / "secrets.env.example").read_text(encoding="utf-8"))
    assert not (secret | commented) - settings_env_names(), (secret | commented) - settings_env_names()
    assert "DATABASE_URL" in secret and "DATABASE_URL" not in settings
    assert {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= commented
    external, migrations = load_yaml_documents(EXAMPLES / "external-secret.yaml")
    keys = {item["secretKey"] for item in external["spec"]["data"]}
    assert keys == {"DATABASE_URL"} and keys <= settings_env_names()
    assert {item["secretKey"] for item in migrations["spec"]["data"]} == {"MIGRATION_DATABASE_URL"}
    ddl, ddl_commented = env_file_names((OVERLAY / "migrations.env.example").read_text(encoding="utf-8"))
    assert ddl == {"MIGRATION_DATABASE_URL"} and not ddl_commented and ddl <= settings_env_names()
    assert "MIGRATION_DATABASE_URL" not in settings and "MIGRATION_DATABASE_URL" not in secret
    text = (EXAMPLES / "external-secret.yaml").read_text(encoding="utf-8")
    assert "secretKey: KAFKA_SASL_USERNAME" in text and "secretKey: KAFKA_SASL_PASSWORD" in text


def test_the_base_holds_no_secret_and_the_root_applies_only_the_base():
    # `kubectl apply -k deploy/k8s` must never overwrite a real Secret with a placeholder
    assert not resources_of_kind("Secret")
    root = load_yaml(K8S_ROOT / "kustomization.yaml")
    assert root["resources"] == ["base"] and (K8S_ROOT / root["resources"][0]).resolve() == K8S.resolve()
    assert not root.keys() & {"secretGenerator", "configMapGenerator", "patches"}


def test_the_example_overlay_is_the_base_plus_the_secret_generated_from_secrets_env():
    overlay = load_yaml(OVERLAY / "kustomization.yaml")
    assert overlay["kind"] == "Kustomization"
    assert [(OVERLAY / r).resolve() for r in overlay["resources"]] == [K8S.resolve()]
    # kustomize refuses a resource folder that contains the overlay itself (a cycle)
    assert not OVERLAY.resolve().is_relative_to(K8S.resolve())
    assert overlay["namespace"] == load_yaml(K8S / "kustomization.yaml")["namespace"]
    generator, migrations = overlay["secretGenerator"]
    assert generator["name"] == SECRET and generator["envs"] == ["secrets.env"]
    assert migrations["name"] == MIGRATIONS_SECRET and migrations["envs"] == ["migrations.env"]
    # the committed files hold placeholders only and are not the ones kustomize reads; those are git-ignored
    for name in ("secrets.env", "migrations.env"):
        example = (OVERLAY / f"{name}.example").read_text(encoding="utf-8")
        values = [line.split("=", 1)[1] for line in example.splitlines() if "=" in line and not line.startswith("#")]
        assert values and all("CHANGE-ME" in value for value in values)
        assert name in (K8S_ROOT / "overlays" / ".gitignore").read_text(encoding="utf-8").split()


def kustomize(folder) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)


def documents(text: str) -> list[dict]:
    return [doc for doc in YAML(typ="safe").load_all(text) if doc]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_builds_the_base_and_the_overlay_with_its_generated_secret(tmp_path):
    tree = tmp_path / "k8s"
    shutil.copytree(K8S_ROOT, tree, ignore=shutil.ignore_patterns("secrets.env", "migrations.env", "__pycache__"))
    overlay = tree / OVERLAY.relative_to(K8S_ROOT)
    base = kustomize(tree)
    assert base.returncode == 0, base.stderr
    assert "Secret" not in {doc["kind"] for doc in documents(base.stdout)}
    without = kustomize(overlay)  # no secrets.env: nothing is built, no placeholder reaches a cluster
    assert without.returncode != 0 and "secrets.env" in without.stderr
    shutil.copy(overlay / "secrets.env.example", overlay / "secrets.env")
    shutil.copy(overlay / "migrations.env.example", overlay / "migrations.env")
    built = kustomize(overlay)
    assert built.returncode == 0, built.stderr
    docs = documents(built.stdout)
    secrets = {doc["metadata"]["name"].rsplit("-", 1)[0]: doc for doc in docs if doc["kind"] == "Secret"}
    secret, ddl = secrets[SECRET], secrets[MIGRATIONS_SECRET]
    assert secret["metadata"]["name"].startswith(f"{SECRET}-") and secret["metadata"]["namespace"] == "helpdesk"
    assert set(secret["data"]) == {"DATABASE_URL"} and set(ddl["data"]) == {"MIGRATION_DATABASE_URL"}
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == set(SERVICES)
    for d in deployments:  # the hashed name replaces helpdesk-secrets: a changed value rolls the pods
        (only,) = d["spec"]["template"]["spec"]["containers"]
        assert [s["secretRef"]["name"] for s in only["envFrom"] if "secretRef" in s] == [secret["metadata"]["name"]]
        migrate = next(c for c in d["spec"]["template"]["spec"]["initContainers"] if c["name"] == "migrate")
        assert [s["secretRef"]["name"] for s in migrate["envFrom"] if "secretRef" in s] == [ddl["metadata"]["name"]]


def test_the_service_account_mounts_no_token():
    account = resources_of_kind("ServiceAccount")["helpdesk"]
    assert account["automountServiceAccountToken"] is False
    assert not resources_of_kind("RoleBinding") and not resources_of_kind("ClusterRoleBinding")


@pytest.mark.parametrize("name", SERVICES)
def test_every_deployment_runs_as_the_service_account_without_its_token(name):
    pod = deployment(name)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "helpdesk"
    assert pod["automountServiceAccountToken"] is False


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not ok:
            return False
    return True


def test_the_network_policy_selects_the_services_and_lets_in_only_prometheus_on_metrics():
    (policy,) = resources_of_kind("NetworkPolicy").values()
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    for name in SERVICES:
        assert selects(spec["podSelector"], deployment(name)["spec"]["template"]["metadata"]["labels"]), name
        assert container(name)["ports"][0]["name"] == "metrics"
    assert not selects(spec["podSelector"], {"app.kubernetes.io/name": "postgres"})
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (source,) = rule["from"]
    assert source.keys() == {"namespaceSelector", "podSelector"}  # Prometheus's pods, not the whole cluster


def test_the_network_policy_lets_out_only_dns_kafka_and_postgresql_as_configured():
    (policy,) = resources_of_kind("NetworkPolicy").values()
    allowed = {(port["port"], port["protocol"]) for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert allowed == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (9093, "TCP"), (5432, "TCP")}
    settings = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]
    brokers = {int(server.rsplit(":", 1)[1]) for server in settings["KAFKA_BOOTSTRAP_SERVERS"].split(",")}
    assert {(port, "TCP") for port in brokers} <= allowed
    example = (OVERLAY / "secrets.env.example").read_text(encoding="utf-8")
    (url,) = [line.split("=", 1)[1] for line in example.splitlines() if line.startswith("DATABASE_URL=")]
    assert (urlsplit(url).port or 5432, "TCP") in allowed


def policy_files() -> list[str]:
    config_dir = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]["HELPDESK_CONFIG_DIR"]
    return [f"{config_dir}/{service.policy}.yaml" for service in registry.SERVICES]


@pytest.mark.parametrize("name", SERVICES)
def test_policies_are_validated_before_the_service_starts_and_a_failure_stops_the_rollout(name):
    spec = container(name)
    init, migrate = deployment(name)["spec"]["template"]["spec"]["initContainers"]
    assert (init["name"], migrate["name"]) == ("validate-policies", "migrate"), "policies first: they cost nothing"
    assert init["image"] == spec["image"]
    assert init["command"] == ["helpdesk", "policy", "validate", *policy_files()]
    assert init["securityContext"] == spec["securityContext"]
    config_dir = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]["HELPDESK_CONFIG_DIR"]
    policies = next(m for m in spec["volumeMounts"] if m["mountPath"] == config_dir)
    assert policies in init["volumeMounts"]
    data = resources_of_kind("ConfigMap")["helpdesk-policies"]["data"]
    assert {path.rsplit("/", 1)[1] for path in policy_files()} <= data.keys()
    # the old pods keep serving while the new ones fail their init
    assert deployment(name)["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def validate_policies(folder, files: dict[str, str]) -> subprocess.CompletedProcess:
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    init = deployment("sla")["spec"]["template"]["spec"]["initContainers"][0]
    args = [str(folder / path.rsplit("/", 1)[1]) if path.startswith("/") else path for path in init["command"][1:]]
    return subprocess.run([sys.executable, "-c", "from services.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_init_command_passes_the_shipped_policies_and_fails_on_a_broken_one(tmp_path):
    data = resources_of_kind("ConfigMap")["helpdesk-policies"]["data"]
    good = validate_policies(tmp_path, data)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = validate_policies(tmp_path, {"sla.yaml": data["sla.yaml"] + "\nnot_a_setting: 1\n"})
    assert broken.returncode != 0 and "not_a_setting" in broken.stdout + broken.stderr


PROBE = """
import importlib, json, sys
print(json.dumps({name: [{"group": s.group_id, "topics": sorted(s.topic_names)}
                         for s in importlib.import_module(f"services.{name}.app").runtime.broker.subscribers]
                  for name in sys.argv[1:]}))
"""


@pytest.fixture(scope="module")
def consumer_groups() -> dict[str, set[tuple[str, str]]]:
    """Service → (consumer group, topic) its app subscribes with, with the default (empty) topic prefix."""
    env = {**{k: v for k, v in os.environ.items() if k.upper() != "METRICS_PORT"}, "HELPDESK_TOPIC_PREFIX": ""}
    done = subprocess.run([sys.executable, "-c", PROBE, *SERVICES], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    subscribers = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: {(s["group"], topic) for s in subs for topic in s["topics"]} for name, subs in subscribers.items()}


def test_the_external_secret_example_makes_the_secret_the_deployments_read():
    external, migrations = load_yaml_documents(EXAMPLES / "external-secret.yaml")
    assert migrations["spec"]["target"]["name"] == MIGRATIONS_SECRET and migrations["kind"] == "ExternalSecret"
    assert external["apiVersion"].startswith("external-secrets.io/") and external["kind"] == "ExternalSecret"
    assert external["spec"]["target"]["name"] == SECRET
    assert external["metadata"]["namespace"] == load_yaml(K8S / "kustomization.yaml")["namespace"]


def test_the_keda_example_scales_each_service_on_the_lag_of_its_own_consumer_groups(consumer_groups):
    scaled = {doc["metadata"]["name"]: doc for doc in load_yaml_documents(EXAMPLES / "keda-scaledobject.yaml")}
    assert set(scaled) == set(SERVICES)
    settings = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]
    partitions = Settings.model_fields["kafka_partitions"].default
    assert int(settings["KAFKA_PARTITIONS"]) == partitions
    for name, doc in scaled.items():
        assert doc["apiVersion"] == "keda.sh/v1alpha1" and doc["kind"] == "ScaledObject"
        spec = doc["spec"]
        assert spec["scaleTargetRef"] == {"kind": "Deployment", "name": name}
        assert spec["minReplicaCount"] == 2 == deployment(name)["spec"]["replicas"]
        assert spec["maxReplicaCount"] == partitions  # more replicas would only stand by for consuming
        assert {t["type"] for t in spec["triggers"]} == {"kafka"}
        pairs = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in spec["triggers"]}
        assert pairs == consumer_groups[name], name
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert meta["bootstrapServers"] == settings["KAFKA_BOOTSTRAP_SERVERS"]
            assert int(meta["lagThreshold"]) > 0 and meta["offsetResetPolicy"] == "earliest"


@pytest.mark.parametrize("name", SERVICES)
def test_policy_configmap_is_mounted_as_a_directory_at_the_config_dir(name):
    config_dir = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]["HELPDESK_CONFIG_DIR"]
    pod = deployment(name)["spec"]["template"]["spec"]
    mount = next(m for m in container(name)["volumeMounts"] if m["mountPath"] == config_dir)
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap edits: no hot reload"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "helpdesk-policies"


def test_policy_configmap_holds_exactly_the_files_in_config():
    spec = importlib.util.spec_from_file_location("render_policies", K8S_ROOT / "render_policies.py")
    render_policies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_policies)
    assert (K8S / "policies.yaml").read_text(encoding="utf-8") == render_policies.render(), (
        "deploy/k8s/base/policies.yaml is stale: run .venv/bin/python deploy/k8s/render_policies.py")
    data = resources_of_kind("ConfigMap")["helpdesk-policies"]["data"]
    config = ROOT / "config"
    assert data == {path.name: path.read_text(encoding="utf-8") for path in config.glob("*.yaml")}


@pytest.mark.parametrize("name", SERVICES)
def test_the_schema_is_migrated_by_the_ddl_role_before_the_service_starts_without_that_right(name):
    spec = container(name)
    migrate = deployment(name)["spec"]["template"]["spec"]["initContainers"][1]
    assert migrate["image"] == spec["image"] and migrate["securityContext"] == spec["securityContext"]
    assert migrate["command"] == ["helpdesk", "migrate", name]
    assert {s["secretRef"]["name"] for s in migrate["envFrom"] if "secretRef" in s} == {MIGRATIONS_SECRET}
    assert MIGRATIONS_SECRET not in {s.get("secretRef", {}).get("name") for s in spec["envFrom"]}, \
        "the service itself never sees the DDL role's credentials"
    settings = resources_of_kind("ConfigMap")["helpdesk-settings"]["data"]
    assert settings["MIGRATE_ON_START"] == "false" and settings["MIGRATION_GRANT_TO"]
    runtime_user = urlsplit([line.split("=", 1)[1] for line in (OVERLAY / "secrets.env.example").read_text(
        encoding="utf-8").splitlines() if line.startswith("DATABASE_URL=")][0]).username
    assert runtime_user == settings["MIGRATION_GRANT_TO"], "the role granted the rights is the one the services log in as"
