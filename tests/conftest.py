"""Fixtures for the real-server tests: see tests/support/servers.py for where servers come from.

Every test gets its own topic prefix and its own database, so tests never see each other's data.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support.kafka_io import KafkaIO, delete_topics
from tests.support.processes import ServiceProcess
from tests.support.servers import Servers, create_database, drop_database, start_servers

ROOT = Path(__file__).resolve().parents[1]
_servers: Servers | None = None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(pytest.mark.usefixtures("servers"))


@pytest.fixture(scope="session")
def servers() -> Servers:
    global _servers
    if _servers is None:
        _servers = start_servers()
        print(f"\n[servers] {_servers.describe()}")
    yield _servers


def pytest_terminal_summary(terminalreporter):
    if _servers is not None:
        terminalreporter.write_line(f"integration tests ran against: {_servers.describe()}")


def pytest_sessionfinish(session, exitstatus):
    if _servers is not None:
        _servers.stop()


class Namespace:
    """One test's private slice of the real servers, and the services it runs."""

    def __init__(self, servers: Servers, prefix: str, database_url: str, log_dir: Path) -> None:
        self.servers, self.prefix, self.database_url, self.log_dir = servers, prefix, database_url, log_dir
        self.kafka = KafkaIO(servers.kafka_bootstrap, prefix)
        self.processes: list[ServiceProcess] = []
        self.config_dir = ROOT / "config"
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "HELPDESK_CONFIG_DIR": str(self.config_dir),
            "HELPDESK_TOPIC_PREFIX": self.prefix,
            "KAFKA_PARTITIONS": "3",
            "TIMER_POLL_INTERVAL": "0.1",
            "POLICY_CHECK_INTERVAL": "0.2",
            **self.extra_env,
        }

    def service(self, name: str, start: bool = True) -> ServiceProcess:
        process = ServiceProcess(name, self.env(), self.log_dir)
        self.processes.append(process)
        return process.start() if start else process

    def settings(self):
        from shared.settings import Settings

        return Settings(kafka_bootstrap_servers=self.servers.kafka_bootstrap, database_url=self.database_url,
                        helpdesk_config_dir=self.config_dir, helpdesk_topic_prefix=self.prefix, kafka_partitions=3)


@pytest.fixture
async def ns(servers: Servers, tmp_path: Path, request):
    name = f"t{uuid.uuid4().hex[:12]}"
    database_url = await create_database(servers.database_url, name)
    namespace = Namespace(servers, f"{name}.", database_url, tmp_path)
    yield namespace
    for process in namespace.processes:
        process.stop(timeout=20)
    await namespace.kafka.close()
    await delete_topics(servers.kafka_bootstrap, namespace.prefix)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for process in namespace.processes:
            print(f"--- {process.name} log ---\n{process.tail(80)}")
    if not os.environ.get("HELPDESK_KEEP_TEST_DATABASES"):
        await drop_database(servers.database_url, name)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
