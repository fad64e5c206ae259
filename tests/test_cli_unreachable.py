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
