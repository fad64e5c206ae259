"""deploy/Dockerfile checked without a Docker engine: pinned base, non-root, what it copies exists,
and its health check command really tells a healthy service from an unhealthy one."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.deploy.files import DOCKERFILE, ROOT, default_ports


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def healthcheck_command() -> list[str]:
    (healthcheck,) = [args for op, args in instructions() if op == "HEALTHCHECK"]
    return json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())


def test_base_images_are_python_3_11_slim_pinned_to_a_patch_release():
    bases = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


def test_the_services_run_as_a_non_root_user():
    users = [args for op, args in instructions() if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_what_the_image_copies_from_the_repository_exists():
    for op, args in instructions():
        if op == "COPY" and "--from" not in args:
            source = [a for a in args.split() if not a.startswith("--")][0]
            assert (ROOT / source).exists(), source


def test_every_service_folder_is_a_package_pip_installs():
    # The image runs from site-packages: a folder without __init__.py would be left out.
    for top in ("services", "shared"):
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if folder.name != "__pycache__" and any(folder.glob("*.py")):
                assert (folder / "__init__.py").exists(), f"{folder.relative_to(ROOT)} is not a package"


def test_command_starts_the_service_named_by_SERVICE():
    (command,) = [args for op, args in instructions() if op == "CMD"]
    assert "services.${SERVICE}" in command and "exec " in command
    assert any(op == "ENV" and "HELPDESK_CONFIG_DIR=" in args for op, args in instructions())


def test_health_check_knows_every_service_default_port():
    command = healthcheck_command()
    ports = ast.literal_eval(re.search(r"\{[^}]*\}", command[-1]).group())
    assert {name: int(port) for name, port in ports.items()} == default_ports()


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_health_check_passes_only_when_healthz_answers_200(status, healthy):
    handler = type("Health", (_Health,), {"status": status})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        command = healthcheck_command()
        assert command[0] == "python"
        env = {"SERVICE": "sla", "METRICS_PORT": str(server.server_address[1])}
        result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30)
        assert (result.returncode == 0) is healthy
    finally:
        server.shutdown()


def test_the_image_carries_the_classifier_it_builds_from_the_packaged_model():
    runs = [args for op, args in instructions() if op == "RUN"]
    assert any("helpdesk classifier distill" in r and "helpdesk classifier train" in r for r in runs)
    assert any(op == "COPY" and "--from=model" in args and "/opt/helpdesk/models" in args for op, args in instructions())
    assert any(op == "ENV" and "HELPDESK_MODEL_DIR=/opt/helpdesk/models" in args for op, args in instructions())
