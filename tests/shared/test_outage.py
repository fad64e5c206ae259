"""The outbox relay and the timer loop through a PostgreSQL outage (a cut TCP proxy, the shared
server keeps running) and a Kafka outage (a producer that fails): few log lines, growing backoff,
a retry counter, and everything delivered afterwards."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from shared import db
from shared.events import Outbound
from shared.kafka import ensure_topics, make_producer
from shared.outbox import OutboxRelay, enqueue
from shared.resilience import fold_library_retry_logs
from shared.timers import Timer, TimerEngine, arm_many
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
SCHEMA = "outagetest"
TOPIC = "events.v1"


def sample(service: str, name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(f"helpdesk_{service}_{name}", labels)


def attempts(records: list[logging.LogRecord], loop: str) -> list[float]:
    """When the loop's failed attempts came (one DEBUG record each, traceback attached)."""
    return [r.created for r in records if r.levelno == logging.DEBUG and r.exc_info
            and r.getMessage().startswith(f"{loop} loop: postgres still unreachable")]


@pytest.fixture
def quiet_aiokafka():
    logger = logging.getLogger("aiokafka")
    level = logger.level
    yield logger
    logger.setLevel(level)


@pytest.fixture
async def parts(ns):
    settings = ns.settings()
    await ensure_topics(settings, (TOPIC,))
    direct = await db.create_pool(ns.database_url, min_size=1, max_size=3)
    await db.migrate(direct, SCHEMA, [])
    proxy, proxied_url = TcpProxy.for_url(ns.database_url)
    pool = await db.create_pool(proxied_url, min_size=1, max_size=4)
    producer = make_producer(settings)
    await producer.start()
    yield direct, pool, proxy, producer, settings.topic(TOPIC)
    await producer.stop()
    pool.terminate()
    proxy.stop()
    await direct.close()


async def test_a_postgres_outage_is_two_lines_per_loop_backs_off_and_loses_nothing(ns, parts, caplog, quiet_aiokafka):
    direct, pool, proxy, producer, topic = parts
    service = f"out{uuid.uuid4().hex[:6]}"

    async def fire_one(conn, timer: Timer) -> None:
        await enqueue(conn, SCHEMA, topic, timer.key, Outbound(type="fired", case_id=timer.key))

    engine = TimerEngine(pool, SCHEMA, service=service, fire_one=fire_one, poll_interval=0.05)
    relay = OutboxRelay(pool, SCHEMA, producer, service=service, idle_wait=0.2)
    tasks = [asyncio.ensure_future(engine.run()), asyncio.ensure_future(relay.run())]
    now = datetime.now(timezone.utc)
    keys = [f"case-{n:02d}" for n in range(16)]
    # Due from now to 8 s from now: some fire before the outage, most fall due during it.
    async with direct.acquire() as conn:
        await arm_many(conn, SCHEMA, [Timer(k, "due", now + timedelta(seconds=n * 0.5)) for n, k in enumerate(keys)])
    await asyncio.sleep(1.2)
    fold_library_retry_logs()  # as setup_logging does in a service
    caplog.clear()
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="shared")  # the last call sets the capturing handler's level
    quiet_aiokafka.setLevel(logging.WARNING)  # as in a service (the test reads topics with it)
    outage_started = time.monotonic()
    proxy.cut()
    await asyncio.sleep(3)
    assert sample(service, "dependency_up", dependency="postgres") == 0.0
    await asyncio.sleep(4)  # a 7 s outage
    outage_seconds = time.monotonic() - outage_started
    proxy.restore()

    records = await ns.kafka.wait_for(TOPIC, lambda rs: {r["case_id"] for r in rs} >= set(keys), timeout=40)
    await asyncio.sleep(0.5)
    for loop in (engine, relay):
        await loop.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 15)

    assert {r["case_id"] for r in records if r["type"] == "fired"} == set(keys), "every timer fired"
    assert await direct.fetchval(f"SELECT count(*) FROM {SCHEMA}.timers") == 0
    assert await direct.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 0

    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    shown = "\n".join(f"{r.levelname} {r.name} {r.getMessage()}" for r in loud)
    assert not [r for r in loud if r.exc_info], f"no tracebacks above DEBUG:\n{shown}"
    ours = [r.getMessage() for r in loud if r.name.startswith("shared.")]
    for loop in ("timers", "outbox"):
        down = [m for m in ours if m.startswith(f"postgres unreachable from the {loop} loop: ")]
        back = [m for m in ours if m.startswith(f"postgres reachable again from the {loop} loop after ")]
        assert len(down) == 1 and down[0].endswith("(retrying with backoff)"), shown
        assert len(back) == 1 and back[0].endswith(" retries)"), shown
        seconds = float(back[0].split(" after ")[1].split(" s ")[0])
        assert outage_seconds - 1.5 <= seconds <= outage_seconds + 11, back[0]  # + at most one capped wait
    assert len(loud) <= 6, f"a 7 s outage is a few lines, not one per attempt:\n{shown}"

    for loop in ("timers", "outbox"):
        times = attempts(caplog.records, loop)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert len(gaps) >= 3, (loop, gaps)
        assert gaps[-1] > 3 * gaps[0], f"the {loop} loop backs off: {gaps}"
        assert sample(service, "dependency_retries_total", dependency="postgres", loop=loop) == len(times)
    assert sample(service, "dependency_up", dependency="postgres") == 1.0
    assert sample(service, "dependency_retries_total", dependency="kafka", loop="outbox") == 0.0


class FlakyProducer:
    """A producer whose broker is unreachable while `down` is set, as aiokafka reports it."""

    def __init__(self, producer) -> None:
        self.producer, self.down, self.attempts = producer, True, 0

    async def send(self, topic, value=None, key=None):
        if self.down:
            self.attempts += 1
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")
        return await self.producer.send(topic, value=value, key=key)


async def test_a_kafka_outage_of_the_relay_is_one_line_each_way_and_publishes_everything_after(ns, parts, caplog):
    direct, _pool, _proxy, producer, topic = parts
    service = f"out{uuid.uuid4().hex[:6]}"
    flaky = FlakyProducer(producer)
    relay = OutboxRelay(direct, SCHEMA, flaky, service=service, idle_wait=0.2)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO)
    async with direct.acquire() as conn, conn.transaction():
        for n in range(5):
            await enqueue(conn, SCHEMA, topic, f"k-{n}", Outbound(type="kept", case_id=f"k-{n}"))
    task = asyncio.ensure_future(relay.run())
    await asyncio.sleep(4)
    assert flaky.attempts >= 4
    assert sample(service, "dependency_retries_total", dependency="kafka", loop="outbox") == flaky.attempts
    assert sample(service, "dependency_up", dependency="kafka") == 0.0
    assert await direct.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 5, "kept until published"
    flaky.down = False
    records = await ns.kafka.wait_for(TOPIC, lambda rs: len(rs) >= 5, timeout=30)
    await relay.stop()
    await asyncio.wait_for(task, 10)
    assert sorted(r["case_id"] for r in records) == [f"k-{n}" for n in range(5)]
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("shared.")]
    assert messages[0] == ("WARNING", "kafka unreachable from the outbox loop: KafkaConnectionError: "
                                      "Unable to bootstrap from [('127.0.0.1', 9092)] (retrying with backoff)")
    assert messages[1][0] == "INFO" and messages[1][1].startswith("kafka reachable again from the outbox loop after ")
    assert len(messages) == 2, messages
    assert sample(service, "dependency_up", dependency="kafka") == 1.0
