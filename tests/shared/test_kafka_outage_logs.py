"""A Kafka outage logs quietly: aiokafka's own per-attempt errors are folded (first of each template
shown, repeats counted and summarised, full detail at DEBUG), the consumer-lag loop says "kafka
unreachable" once and "reachable again" once, and counts its retries. The broker is never stopped:
the outage is a cut TCP proxy that every aiokafka connection of the test goes through."""
from __future__ import annotations

import asyncio
import inspect
import io
import logging
import time

import aiokafka.client
import aiokafka.consumer.fetcher
import aiokafka.consumer.group_coordinator
import aiokafka.producer.sender
import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from prometheus_client import REGISTRY

from shared.resilience import KAFKA, LIBRARY_REPEATS, DependencyWatch, RepeatFolder
from shared.service import setup_logging
from tests.shared.test_logging_setup import restored_logging  # noqa: F401 (a fixture)
from tests.support.tcp_proxy import TcpProxy

# (module, level, template, args) as aiokafka 0.14 logs them while the broker is away; each
# template is checked against the installed source below, so an upgrade that rewords one shows.
OUTAGE_RECORDS = [
    (aiokafka.client, logging.ERROR, "Unable connect to node with id %s: %s",
     (1, "[Errno 111] Connect call failed ('127.0.0.1', 9092)")),
    (aiokafka.client, logging.ERROR, "Unable to update metadata from %s", ([1],)),
    (aiokafka.consumer.fetcher, logging.ERROR, "Failed fetch messages from %s: %s",
     (1, NodeNotReadyError("Attempt to send a request to node which is not ready (node id 1)."))),
    (aiokafka.consumer.group_coordinator, logging.ERROR, "Group Coordinator Request failed: %s",
     (KafkaConnectionError("No connection to node with id 1"),)),
    (aiokafka.producer.sender, logging.WARNING, "Got error produce response: %s",
     (KafkaConnectionError("No connection to node with id 1"),)),
]


@pytest.fixture
def log_to(restored_logging):
    """setup_logging on a StringIO at a level; the root's handlers and level restored afterwards."""
    LIBRARY_REPEATS.reset()

    def setup(level_name: str = "INFO") -> io.StringIO:
        out = io.StringIO()
        setup_logging(level_name, stream=out)
        return out

    yield setup
    LIBRARY_REPEATS.reset()


def above_debug(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if " DEBUG " not in line and line.strip()]


def test_the_templates_are_aiokafka_s_own():
    for module, _level, template, _args in OUTAGE_RECORDS:
        assert template in inspect.getsource(module).replace('"\n                        "', ""), template
    assert "Got error produce response on topic-partition" in inspect.getsource(aiokafka.producer.sender)


def test_an_outage_s_worth_of_aiokafka_errors_is_one_line_per_template(log_to):
    out = log_to("INFO")
    for _ in range(300):  # some 3 s of an outage: aiokafka retries every 100 ms or so
        for module, level, template, args in OUTAGE_RECORDS:
            module.log.log(level, template, *args)
    lines = above_debug(out)
    assert len(lines) == len(OUTAGE_RECORDS), lines
    assert any("ERROR aiokafka Unable connect to node with id 1" in line for line in lines)
    assert any("WARNING aiokafka.producer.sender Got error produce response" in line for line in lines)
    assert LIBRARY_REPEATS.take_suppressed() == 299 * len(OUTAGE_RECORDS)
    assert LIBRARY_REPEATS.take_suppressed() == 0, "taken once"


def test_at_debug_the_repeats_show_in_full_as_debug_records(log_to):
    out = log_to("DEBUG")
    module, level, template, args = OUTAGE_RECORDS[0]
    for _ in range(5):
        module.log.log(level, template, *args)
    lines = out.getvalue().splitlines()
    assert [" ERROR " in line for line in lines] == [True, False, False, False, False]
    assert all("Unable connect to node with id 1" in line for line in lines) and len(lines) == 5
    assert sum(" DEBUG aiokafka " in line for line in lines) == 4


def test_other_loggers_are_not_folded(log_to):
    out = log_to("INFO")
    for _ in range(3):
        logging.getLogger("shared.outbox").error("same message %s", 1)
    assert len(above_debug(out)) == 3


def record(created: float, template: str = "Unable connect to node with id %s: %s") -> logging.LogRecord:
    r = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, template, (1, "refused"), None)
    r.created = created
    return r


def test_the_next_line_shown_summarises_the_repeats_and_the_window_doubles():
    folder = RepeatFolder(window=60, longest=200)
    assert folder.filter(record(0.0))
    assert not any(folder.filter(record(t)) for t in range(1, 60))  # 59 repeats within the minute
    again = record(61.0)
    assert folder.filter(again)
    assert again.getMessage() == "Unable connect to node with id 1: refused (59 similar messages in 61 s suppressed)"
    assert not folder.filter(record(100.0)) and not folder.filter(record(180.0)), "now 120 s"
    later = record(182.0)
    assert folder.filter(later) and "(2 similar messages in 121 s suppressed)" in later.getMessage()
    assert not folder.filter(record(300.0)), "at most `longest` (200 s)"
    assert folder.filter(record(383.0))
    assert folder.filter(record(383.0, "Unable to update metadata from %s")), "another template is shown"
    quiet = record(10_000.0)  # the template was quiet for longer than its window: a new outage
    assert folder.filter(quiet) and "suppressed" not in quiet.getMessage()
    assert folder.take_suppressed() == 59 + 2 + 1


def test_the_reachable_again_line_counts_the_folded_lines(log_to):
    out = log_to("INFO")
    watch = DependencyWatch("kafkafold", "consumer_lag", (KAFKA,), logger=logging.getLogger("shared.service"))
    watch.failed(KafkaConnectionError("no connection"))
    for _ in range(40):
        aiokafka.client.log.error("Unable to update metadata from %s", [1])
    watch.succeeded()
    lines = above_debug(out)
    assert len(lines) == 3, lines
    assert "kafka unreachable from the consumer_lag loop" in lines[0]
    assert "kafka reachable again from the consumer_lag loop" in lines[2]
    assert "(1 retry; 39 repeated aiokafka log lines suppressed)" in lines[2]


def test_simulate_folds_the_not_leader_warnings_of_a_new_prefix(caplog, capsys):
    """The CLI's producer on a new prefix: one "retrying" warning per partition until the leaders
    are elected. One is shown, the others are counted at the end."""
    from services import simulate_cli
    from shared.settings import Settings
    from tests.test_simulator import CapturingProducer

    class ElectingProducer(CapturingProducer):
        async def send(self, topic, value=None, key=None, **kwargs):  # type: ignore[no-untyped-def]
            for partition in range(3):
                aiokafka.producer.sender.log.warning(
                    "Got error produce response on topic-partition %s, retrying. Error: %s",
                    aiokafka.structs.TopicPartition(topic, partition), "NotLeaderForPartitionError")
            return await super().send(topic, value=value, key=key, **kwargs)

    LIBRARY_REPEATS.reset()
    caplog.set_level(logging.WARNING)
    settings = Settings(helpdesk_topic_prefix="fold.")
    simulate_cli.run(5, 0.5, 1, True, settings=settings, producer=ElectingProducer())
    warned = [r for r in caplog.records if r.name == "aiokafka.producer.sender" and r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    err = capsys.readouterr().err
    assert "repeated aiokafka warnings suppressed" in err


# ---------- a real outage, through a proxy ----------

def sample(service: str, name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(f"helpdesk_{service}_{name}", labels)


@pytest.fixture
def kafka_through(monkeypatch):
    """Every aiokafka connection to the shared broker goes through a TcpProxy (the bootstrap and
    the advertised node address alike): cutting the proxy is a broker outage for this process only."""
    created = []
    real_create_conn = aiokafka.client.create_conn

    def start(bootstrap: str) -> TcpProxy:
        host, port = bootstrap.rsplit(":", 1)
        proxy = TcpProxy(host, int(port)).start()
        created.append(proxy)

        async def via_proxy(conn_host, conn_port, **kwargs):  # type: ignore[no-untyped-def]
            if int(conn_port) == int(port):
                conn_host, conn_port = "127.0.0.1", proxy.port
            return await real_create_conn(conn_host, conn_port, **kwargs)

        monkeypatch.setattr(aiokafka.client, "create_conn", via_proxy)
        return proxy

    yield start
    for proxy in created:
        proxy.stop()


@pytest.mark.integration
async def test_a_broker_outage_is_one_line_down_and_one_up_with_retries_counted(ns, log_to, kafka_through):
    from shared.service import ServiceRuntime

    proxy = kafka_through(ns.servers.kafka_bootstrap)
    out = log_to("INFO")
    service = "kafkaoutage"
    runtime = ServiceRuntime(service, settings=ns.settings())

    @runtime.subscriber("outage.v1")
    async def handle(batch: list[bytes]) -> None:  # a consumer whose fetcher and coordinator retry too
        return None

    await runtime.broker.start()
    lag_loop = asyncio.ensure_future(runtime._measure_consumer_lag(every=0.5, timeout=2.0))
    try:
        await asyncio.sleep(3)
        assert "unreachable" not in out.getvalue()
        retries_before = sample(service, "dependency_retries_total", dependency="kafka", loop="consumer_lag")
        assert retries_before == 0
        mark = len(out.getvalue())

        proxy.cut()
        await asyncio.sleep(10)
        assert sample(service, "dependency_up", dependency="kafka") == 0
        proxy.restore()
        deadline = time.monotonic() + 40
        while "kafka reachable again" not in out.getvalue() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        lag_loop.cancel()
        await asyncio.gather(lag_loop, return_exceptions=True)
        await runtime.broker.stop()

    lines = [line for line in out.getvalue()[mark:].splitlines() if " DEBUG " not in line and line.strip()]
    down = [line for line in lines if "kafka unreachable from the consumer_lag loop" in line]
    up = [line for line in lines if "kafka reachable again from the consumer_lag loop" in line]
    assert len(down) == 1 and len(up) == 1, "\n".join(lines)
    assert " WARNING " in down[0] and " INFO " in up[0]
    assert "repeated aiokafka log lines suppressed" in up[0]
    assert len(lines) <= 25, "\n".join(lines)  # unfolded: well over a thousand in 10 s
    assert sample(service, "dependency_retries_total", dependency="kafka", loop="consumer_lag") > 0
    assert sample(service, "dependency_up", dependency="kafka") == 1
