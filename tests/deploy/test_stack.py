"""deploy/local/stack.sh tells the truth about whose servers run, and Kafka's own tools work.

One isolated stack for the whole module: checkout A (a directory whose `deploy/` links to this
repository's, so `stack.sh` takes it for the checkout) starts Kafka and PostgreSQL on free ports in
its own state dir; checkout B (state dir given by HELPDESK_STACK_DIR) then runs up, status and down
against the same ports. The shared servers on 9092/55432 are never touched: every command here gets
its own KAFKA_PORT, KAFKA_CONTROLLER_PORT and PG_PORT. The last test stops A's servers; the module's
fixture stops whatever is left and deletes the directories."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK = "deploy/local/stack.sh"
TOOL = "deploy/local/kafka-tool.sh"
KAFKA_VERSION = "3.9.1"


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound and released at once)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class World:
    base: Path
    a: Path  # checkout A; its state dir is the default a/.stack
    b: Path  # checkout B; its state dir is b_state, through HELPDESK_STACK_DIR
    b_state: Path
    kafka_port: int
    pg_port: int
    env: dict[str, str]
    up_a: subprocess.CompletedProcess

    @property
    def a_state(self) -> Path:
        return self.a / ".stack"

    def run(self, checkout: Path, *args: str, extra: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if checkout == self.b:
            env["HELPDESK_STACK_DIR"] = str(self.b_state)
        env.update(extra or {})
        return subprocess.run(["bash", str(checkout / STACK), *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    def tool(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(self.a / TOOL), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)


def _our_processes(base: Path) -> list[int]:
    """Processes started from the module's directories (their command line names one)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(base).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return [pid for pid in found if pid != os.getpid()]


@pytest.fixture(scope="module")
def world():
    if not shutil.which("java") or not shutil.which("mvn"):
        pytest.skip("needs Java and Maven (the local stack's Kafka)")
    base = Path(tempfile.mkdtemp(prefix="helpdesk-stack-test-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user: it must reach its data directory
    a, b = base / "a", base / "b"
    for checkout in (a, b):
        checkout.mkdir()
        (checkout / "deploy").symlink_to(ROOT / "deploy")
    kafka_port, controller_port, pg_port = free_ports(3)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HELPDESK_STACK_DIR", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(PYTHON=sys.executable, KAFKA_PORT=str(kafka_port), KAFKA_CONTROLLER_PORT=str(controller_port),
               PG_PORT=str(pg_port))
    world = World(base, a, b, base / "b-state", kafka_port, pg_port, env, None)  # type: ignore[arg-type]
    try:
        world.up_a = world.run(a, "up", timeout=480)
        assert world.up_a.returncode == 0, world.up_a.stderr
        yield world
    finally:
        world.run(a, "down", timeout=180)
        for pid in _our_processes(base):  # anything still left of what this module started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(base, ignore_errors=True)


def lines(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


def owner_fields(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


# ---------- ownership ----------
def test_up_starts_both_servers_and_records_their_owner(world):
    err = world.up_a.stderr
    assert f"starting Kafka on 127.0.0.1:{world.kafka_port}" in err
    assert f"starting PostgreSQL on 127.0.0.1:{world.pg_port}" in err
    for path in (world.a_state / "kafka" / "owner", world.a_state / "pg.owner"):
        fields = owner_fields(path)
        assert fields["checkout"] == str(world.a)
        assert fields["state_dir"] == str(world.a_state)
        assert fields["pid"].isdigit()


def test_status_reports_each_server_with_address_version_and_this_checkout_as_owner(world):
    done = world.run(world.a, "status")
    assert done.returncode == 0, done.stderr
    (kafka,) = lines(done.stdout, "kafka:")
    (postgres,) = lines(done.stdout, "postgres:")
    assert kafka.startswith(f"kafka: up, 127.0.0.1:{world.kafka_port}, Kafka {KAFKA_VERSION}, "
                            f"owner: this checkout ({world.a}, state dir {world.a_state}, pid ")
    assert postgres.startswith(f"postgres: up, 127.0.0.1:{world.pg_port}, PostgreSQL ")
    assert f"owner: this checkout ({world.a}, state dir {world.a_state}, pid " in postgres


def test_a_second_up_in_the_same_checkout_reuses_and_starts_nothing(world):
    done = world.run(world.a, "up")
    assert done.returncode == 0, done.stderr
    assert "starting" not in done.stderr
    assert f"Kafka already runs on 127.0.0.1:{world.kafka_port}, started by this checkout ({world.a}" in done.stderr
    assert f"PostgreSQL already runs on 127.0.0.1:{world.pg_port}, started by this checkout ({world.a}" in done.stderr


def test_another_checkout_says_whose_servers_it_reuses_and_leaves_them_running(world):
    up = world.run(world.b, "up")
    assert up.returncode == 0, up.stderr
    assert "starting" not in up.stderr
    assert (f"reusing Kafka on 127.0.0.1:{world.kafka_port} started by {world.a} "
            f"(state dir {world.a_state}, pid ") in up.stderr
    assert (f"reusing PostgreSQL on 127.0.0.1:{world.pg_port} started by {world.a} "
            f"(state dir {world.a_state}, pid ") in up.stderr

    status = world.run(world.b, "status")
    (kafka,) = lines(status.stdout, "kafka:")
    (postgres,) = lines(status.stdout, "postgres:")
    assert kafka.startswith(f"kafka: up, 127.0.0.1:{world.kafka_port}, Kafka {KAFKA_VERSION}, "
                            f"owner: other checkout {world.a} (state dir {world.a_state}, pid ")
    assert f"owner: other checkout {world.a} (state dir {world.a_state}, pid " in postgres

    down = world.run(world.b, "down")
    assert down.returncode == 0, down.stderr
    assert "stopping" not in down.stderr
    assert f"no Kafka started by this state dir ({world.b_state}) runs" in down.stderr
    assert f"left Kafka on 127.0.0.1:{world.kafka_port} running: started by {world.a} (state dir {world.a_state}" \
        in down.stderr
    assert f"left PostgreSQL on 127.0.0.1:{world.pg_port} running: started by {world.a} (state dir {world.a_state}" \
        in down.stderr
    assert not (world.b_state / "kafka" / "owner").exists() and not (world.b_state / "pg.owner").exists()

    still = world.run(world.a, "status").stdout
    assert lines(still, "kafka:")[0].startswith("kafka: up,"), still
    assert lines(still, "postgres:")[0].startswith("postgres: up,"), still


def test_the_owner_of_servers_started_before_owner_files_existed_is_told_from_their_command_line(world):
    files = [world.a_state / "kafka" / "owner", world.a_state / "pg.owner"]
    for path in files:
        path.rename(path.with_suffix(".aside"))
    try:
        status = world.run(world.b, "status").stdout
        assert f"owner: other checkout {world.a} (state dir {world.a_state}" in lines(status, "kafka:")[0]
        assert f"owner: other checkout {world.a} (state dir {world.a_state}" in lines(status, "postgres:")[0]
    finally:
        for path in files:
            path.with_suffix(".aside").rename(path)


def test_a_port_held_by_something_else_is_reported_as_no_helpdesk_server(world):
    port, unused = free_ports(2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        status = world.run(world.b, "status", extra={"KAFKA_PORT": str(port), "PG_PORT": str(unused)})
        who = subprocess.run([sys.executable, str(ROOT / "deploy/local/stack_owner.py"), "who", "kafka", str(port),
                              str(world.b_state), str(world.b)], capture_output=True, text=True, timeout=60)
        up = world.run(world.b, "kafka-up", extra={"KAFKA_PORT": str(port)}, timeout=120)
    (kafka,) = lines(status.stdout, "kafka:")
    assert kafka.startswith(f"kafka: not answering, 127.0.0.1:{port} is taken, owner: unknown "
                            f"(not started by any helpdesk checkout; pid {os.getpid()}: ")
    assert lines(status.stdout, "postgres:") == [f"postgres: down, 127.0.0.1:{unused}"]
    assert who.returncode == 4
    assert who.stdout.startswith(f"not started by any helpdesk checkout (pid {os.getpid()}: ")
    assert up.returncode == 1  # at once: no waiting for a process that is no helpdesk broker, no second broker
    assert (f"127.0.0.1:{port} is taken by a process that does not answer as Kafka, not started by any helpdesk "
            f"checkout (pid {os.getpid()}: ") in up.stderr
    assert "starting Kafka" not in up.stderr and not (world.b_state / "kafka" / "pid").exists()


# ---------- Kafka's own tools ----------
@pytest.fixture(scope="module")
def topic(world):
    """A topic named as a prefixed deployment would name it (HELPDESK_TOPIC_PREFIX + contract name)."""
    name = f"tooltest-{uuid.uuid4().hex[:8]}.helpdesk.case-activity.v1"
    done = world.tool("topics", "--create", "--topic", name, "--partitions", "1", "--replication-factor", "1")
    assert done.returncode == 0, done.stderr
    asyncio.run(_produce(f"127.0.0.1:{world.kafka_port}", name, [(f"case-{i}", f'{{"n": {i}}}') for i in range(3)]))
    return name


async def _produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value.encode(), key=key.encode(), partition=0)
    finally:
        await producer.stop()


async def _commit(bootstrap: str, topic: str, group: str, offset: int) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.commit({partition: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


def test_topics_tool_lists_topics(world, topic):
    done = world.tool("topics", "--list")
    assert done.returncode == 0, done.stderr
    assert topic in done.stdout.split()


def test_console_consumer_reads_a_topic_with_keys(world, topic):
    done = world.tool("console-consumer", "--topic", topic, "--from-beginning", "--property", "print.key=true",
                      "--max-messages", "3", "--timeout-ms", "30000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f'case-{i}\t{{"n": {i}}}' for i in range(3)]


def test_consumer_groups_tool_shows_a_groups_lag(world, topic):
    group = f"{topic.split('.')[0]}.helpdesk-sla.helpdesk.case-activity.v1"
    asyncio.run(_commit(f"127.0.0.1:{world.kafka_port}", topic, group, 1))
    done = world.tool("consumer-groups", "--describe", "--group", group)
    assert done.returncode == 0, done.stderr
    header, *rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert header[:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert [row[:6] for row in rows] == [[group, topic, "0", "1", "3", "2"]]


def test_the_helpdesk_command_runs_the_same_tools(world, topic):
    helpdesk = Path(sys.executable).with_name("helpdesk")
    env = {**world.env, "HELPDESK_STACK_DIR": str(world.a_state)}
    done = subprocess.run([str(helpdesk), "stack", "kafka", "topics", "--describe", "--topic", topic], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Topic: {topic}" in done.stdout and "PartitionCount: 1" in done.stdout


def test_kafka_jars_resolves_again_when_a_state_dir_has_no_tools(world):
    state = world.base / "old-state"
    (state / "kafka-libs").mkdir(parents=True)
    broker_jar = f"kafka_2.13-{KAFKA_VERSION}.jar"
    shutil.copy(world.a_state / "kafka-libs" / broker_jar, state / "kafka-libs" / broker_jar)
    done = world.run(world.a, "kafka-jars", extra={"HELPDESK_STACK_DIR": str(state)})
    assert done.returncode == 0, done.stderr
    assert "resolving Kafka" in done.stderr
    assert (state / "kafka-libs" / f"kafka-tools-{KAFKA_VERSION}.jar").is_file()
    again = world.run(world.a, "kafka-jars", extra={"HELPDESK_STACK_DIR": str(state)})
    assert "resolving" not in again.stderr


# ---------- last: the owner stops its servers ----------
def test_down_in_the_owning_checkout_stops_both_and_status_says_down(world):
    done = world.run(world.a, "down", timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"stopping Kafka on 127.0.0.1:{world.kafka_port} (pid " in done.stderr
    assert f"stopping PostgreSQL on 127.0.0.1:{world.pg_port} (pid " in done.stderr
    assert "left " not in done.stderr
    assert not (world.a_state / "kafka" / "owner").exists() and not (world.a_state / "pg.owner").exists()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = world.run(world.a, "status").stdout
        if "up," not in status:
            break
        time.sleep(1)
    assert lines(status, "kafka:") == [f"kafka: down, 127.0.0.1:{world.kafka_port}"]
    assert lines(status, "postgres:") == [f"postgres: down, 127.0.0.1:{world.pg_port}"]
