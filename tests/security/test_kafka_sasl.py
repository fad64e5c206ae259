"""Kafka SASL/SCRAM through the environment, against a real broker that only lets SCRAM users in.

The broker is a private second KRaft process (see scram_broker.py); the shared one on
127.0.0.1:9092 is never stopped or reconfigured.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.events import CLASSIFIED, COMPLAINTS
from shared.kafka import client_args
from shared.kafka_reader import read_topic
from tests.builders import complaint_event
from tests.security.scram_broker import ScramBroker
from tests.support.processes import ROOT, ServiceProcess
from tests.support.servers import Servers, create_database, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

USERNAME, PASSWORD = "helpdesk", "s3cret"
WRONG_PASSWORD = "not-the-s3cret-9f2c"


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> ScramBroker:
    broker = ScramBroker(USERNAME, PASSWORD, tmp_path_factory.mktemp("scram-kafka")).start()
    yield broker
    broker.stop()


@pytest.fixture
async def database_url(servers: Servers):
    name = f"t{uuid.uuid4().hex[:12]}"
    yield await create_database(servers.database_url, name)
    await drop_database(servers.database_url, name)


def intake_env(broker: ScramBroker, database_url: str, password: str | None = None) -> dict[str, str]:
    return {
        **broker.env(password),
        "DATABASE_URL": database_url,
        "HELPDESK_CONFIG_DIR": str(ROOT / "config"),
        "HELPDESK_TOPIC_PREFIX": "",
        "KAFKA_PARTITIONS": "1",
    }


async def wait_for_classification(broker: ScramBroker, causation_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        records = await read_topic(broker.settings(), CLASSIFIED)
        found = [r for r in records if r.get("causation_id") == causation_id]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no classification of {causation_id} after {timeout}s; {len(records)} records")
        await asyncio.sleep(0.5)


async def test_intake_given_scram_credentials_in_env_classifies_complaints_on_a_sasl_only_broker(
    scram_broker: ScramBroker, database_url: str, tmp_path: Path
):
    intake = ServiceProcess("intake", intake_env(scram_broker, database_url), tmp_path)
    try:
        intake.start()  # healthy means: topics created, producer and consumers connected with SCRAM
        event = complaint_event(event_id=str(uuid.uuid4()), case_id=f"CRM-{uuid.uuid4().hex[:8]}",
                                subject="Late delivery", description="My order is late.")
        producer = AIOKafkaProducer(**client_args(scram_broker.settings()), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(COMPLAINTS, json.dumps(event).encode(), key=event["case_id"].encode())
        finally:
            await producer.stop()
        classified = await wait_for_classification(scram_broker, event["event_id"])
        assert classified["type"] == "complaint.classified"
        assert classified["case_id"] == event["case_id"]
        assert "helpdesk_intake_" in intake.metrics()
    finally:
        intake.stop(timeout=20)
    assert PASSWORD not in intake.log_path.read_text(errors="replace")


async def test_a_client_with_the_wrong_password_is_refused_by_the_broker(scram_broker: ScramBroker):
    producer = AIOKafkaProducer(**client_args(scram_broker.settings(password=WRONG_PASSWORD)),
                                request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        async with asyncio.timeout(30):
            await producer.start()
    await producer.stop()


async def test_intake_with_the_wrong_password_stops_at_start_up_and_says_why_without_the_password(
    scram_broker: ScramBroker, database_url: str, tmp_path: Path
):
    intake = ServiceProcess("intake", intake_env(scram_broker, database_url, WRONG_PASSWORD), tmp_path)
    try:
        intake.start(wait=False)
        with pytest.raises(RuntimeError, match="exited"):  # fails fast for the orchestrator to see
            intake.wait_healthy(timeout=25)
    finally:
        intake.stop(timeout=20)
    assert intake.proc is not None and intake.proc.returncode != 0
    log = intake.log_path.read_text(errors="replace")
    assert "SaslAuthenticationFailed" in log, log[-2000:]
    assert WRONG_PASSWORD not in log
