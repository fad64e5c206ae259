"""A second, private single-node KRaft broker that only lets SCRAM-SHA-512 users in.

Started from the same Maven jars as the shared local broker (`deploy/local/stack.sh`), on ports
free at runtime and in its own temporary data directory, so the shared broker on 127.0.0.1:9092
that other tests and benchmarks use is never touched.

Clients talk to it on a SASL_PLAINTEXT listener; the controller and inter-broker listeners are
PLAINTEXT on 127.0.0.1 (one node: nothing else can reach them). The SCRAM user is written into the
cluster metadata when the storage is formatted (`StorageTool format --add-scram`), as KRaft wants.
"""
from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import Settings
from tests.support.processes import ROOT, free_port

KAFKA_LIBS = ROOT / ".stack" / "kafka-libs"
LOG4J = ROOT / "deploy" / "local" / "kafka" / "log4j.properties"
MECHANISM = "SCRAM-SHA-512"

PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=SASL_PLAINTEXT://127.0.0.1:{client_port},INTERNAL://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{client_port},INTERNAL://127.0.0.1:{internal_port}
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms={mechanism}
listener.name.sasl_plaintext.{mechanism_lower}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs={data}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""


def ensure_kafka_jars() -> None:
    """The jars come from the local stack script (resolved from Maven Central, cached)."""
    if not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
        subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh"), "kafka-jars"], check=True, timeout=600)


def kafka_cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding (what
    # `StorageTool random-uuid` prints), without paying for a JVM start.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class ScramBroker:
    username: str
    password: str
    workdir: Path
    client_port: int = field(default_factory=free_port)
    internal_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def settings(self, password: str | None = None, **overrides: object) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism=MECHANISM,
            kafka_sasl_username=self.username,
            kafka_sasl_password=self.password if password is None else password,
            helpdesk_topic_prefix="",  # a private broker: no need to share topic names
            **overrides,
        )

    def env(self, password: str | None = None) -> dict[str, str]:
        """The environment a service needs to reach this broker (README "Security")."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": self.username,
            "KAFKA_SASL_PASSWORD": self.password if password is None else password,
        }

    def _java(self, *args: str) -> list[str]:
        return ["java", "-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{LOG4J}",
                "-cp", f"{KAFKA_LIBS}/*", *args]

    def start(self, ready_within: float = 60.0) -> "ScramBroker":
        ensure_kafka_jars()
        data = self.workdir / "data"
        properties = self.workdir / "server.properties"
        properties.write_text(PROPERTIES.format(
            client_port=self.client_port, internal_port=self.internal_port,
            controller_port=self.controller_port, mechanism=MECHANISM,
            mechanism_lower=MECHANISM.lower(), data=data,
        ))
        scram_user = f"{MECHANISM}=[name={self.username},password={self.password}]"
        formatted = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c", str(properties),
                       "--add-scram", scram_user),
            capture_output=True, text=True, timeout=60,
        )
        if formatted.returncode != 0:
            raise RuntimeError(f"formatting the SCRAM broker's storage failed:\n{formatted.stdout}\n{formatted.stderr}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self._java("kafka.Kafka", str(properties)),
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            asyncio.run(self._wait_ready(ready_within))
        except BaseException:
            self.stop()
            raise
        return self

    async def _wait_ready(self, within: float) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        from shared.kafka import client_args

        deadline = time.monotonic() + within
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SCRAM broker exited with {self.process.returncode}:\n{self.tail()}")
            admin = AIOKafkaAdminClient(**client_args(self.settings()), request_timeout_ms=5000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SCRAM broker not ready after {within}s:\n{self.tail()}") from None
            finally:
                await admin.close()
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
