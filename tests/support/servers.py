"""Where the real Kafka and PostgreSQL for the tests come from, in this order:

1. `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` given in the environment: use them.
2. A Docker engine is reachable: testcontainers start Kafka and PostgreSQL.
3. Otherwise: the repository's local servers (`deploy/local/stack.sh up`: Kafka from Maven
   Central jars, PostgreSQL from Debian packages).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Servers:
    kafka_bootstrap: str
    database_url: str
    kafka_from: str
    postgres_from: str
    kafka_version: str = "?"
    postgres_version: str = "?"
    _containers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for container in self._containers:
            container.stop()

    def describe(self) -> str:
        return (f"Kafka {self.kafka_version} ({self.kafka_from}, {self.kafka_bootstrap}); "
                f"PostgreSQL {self.postgres_version} ({self.postgres_from})")


def docker_reachable() -> bool:
    if os.environ.get("HELPDESK_TESTS_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _local_kafka_version() -> str:
    """The version of the running broker process, read from its classpath."""
    candidates = [ROOT / ".stack" / "kafka-libs"]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in args and b"-cp" in args:
            candidates.insert(0, Path(args[args.index(b"-cp") + 1].decode().rstrip("*")))
    for libs in candidates:
        for jar in sorted(libs.glob("kafka_2.13-*.jar")):
            return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return "?"


def start_servers() -> Servers:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    containers: list[Any] = []
    kafka_from = postgres_from = "environment"
    kafka_version = "?"
    if not (kafka and database) and docker_reachable():
        if not kafka:
            from testcontainers.kafka import KafkaContainer

            image = "apache/kafka:3.9.1"
            container = KafkaContainer(image).with_kraft()
            container.start()
            containers.append(container)
            kafka, kafka_from, kafka_version = container.get_bootstrap_server(), "testcontainers", image.split(":")[1]
        if not database:
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:16-alpine", driver=None)
            container.start()
            containers.append(container)
            database, postgres_from = container.get_connection_url(), "testcontainers"
    if not (kafka and database):
        subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), "up"], check=True,
                       env={**os.environ, **({"DATABASE_URL": database} if database else {})})
        if not kafka:
            kafka, kafka_from, kafka_version = "127.0.0.1:9092", "local KRaft broker process", _local_kafka_version()
        if not database:
            from shared.settings import LOCAL_DATABASE_URL

            database, postgres_from = LOCAL_DATABASE_URL, "local server process"
    servers = Servers(kafka, database, kafka_from, postgres_from, kafka_version, _containers=containers)
    servers.postgres_version = asyncio.run(_pg_version(database))
    return servers


async def _pg_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


async def create_database(base_url: str, name: str) -> str:
    """A fresh database per test for isolation; falls back to the given one without CREATEDB."""
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        return base_url
    finally:
        await conn.close()
    head, _, _ = base_url.rpartition("/")
    return f"{head}/{name}"


async def drop_database(base_url: str, name: str) -> None:
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except asyncpg.PostgresError:
        pass
    finally:
        await conn.close()
