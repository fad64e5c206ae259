"""A server that does not answer is one line naming it and exit status 2, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

DOWN = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "postgresql://ops:s3cret-pw@127.0.0.1:1/helpdesk"}


def helpdesk(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **DOWN, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, names", [
    (("rejected", "list"), "Kafka is unreachable at 127.0.0.1:1"),
    (("rejected", "replay", "--reason", "not_json", "--yes"), "Kafka is unreachable at 127.0.0.1:1"),
    (("simulate", "--duration", "1", "--seed", "1"), "Kafka is unreachable at 127.0.0.1:1"),
    (("case", "show", "CRM-1"), "cannot read the case from PostgreSQL at 127.0.0.1:1/helpdesk"),
])
def test_an_unreachable_server_is_one_line_and_exit_2(args, names):
    result = helpdesk(*args)
    assert result.returncode == 2, result.stderr
    assert names in result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "╭" not in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr


def test_version():
    result = subprocess.run([sys.executable, "-m", "services.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("helpdesk ")


@pytest.mark.integration
@pytest.mark.parametrize("args", [("migrate", "--check"), ("report", "recovery")])
def test_a_refused_login_is_one_line_and_exit_2(servers, args):
    from urllib.parse import urlsplit

    parts = urlsplit(servers.database_url)
    env = {**os.environ, "DATABASE_URL": f"postgresql://no_such_role:s3cret-pw@{parts.hostname}:{parts.port}/helpdesk",
           "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, env=env,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "refused the connection" in result.stderr and 'role "no_such_role" does not exist' in result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr


def test_a_local_file_error_is_not_called_an_outage():
    from services.cli import unreachable

    assert unreachable(FileNotFoundError(2, "No such file or directory", "/nonexistent/x.csv")) is None
    assert unreachable(PermissionError(13, "Permission denied")) is None
    assert unreachable(ConnectionRefusedError(111, "Connect call failed")) is not None
