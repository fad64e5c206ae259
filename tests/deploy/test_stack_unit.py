"""deploy/local/stack_owner.py and the scripts' argument handling, without servers (the servers
themselves: tests/deploy/test_stack.py)."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("stack_owner", ROOT / "deploy/local/stack_owner.py")
stack_owner = sys.modules.setdefault("stack_owner", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(stack_owner)


def test_the_owner_file_round_trips(tmp_path):
    state, checkout = tmp_path / "state", tmp_path / "checkout"
    stack_owner.record("kafka", state, checkout, 123, "127.0.0.1:19092")
    stack_owner.record("postgres", state, checkout, 456, "127.0.0.1:55532")
    assert (state / "kafka" / "owner").is_file() and (state / "pg.owner").is_file()
    kafka = stack_owner.read_owner("kafka", state)
    assert kafka["checkout"] == str(checkout) and kafka["state_dir"] == str(state) and kafka["pid"] == "123"
    assert stack_owner.read_owner("postgres", state)["address"] == "127.0.0.1:55532"
    assert stack_owner.read_owner("kafka", tmp_path / "elsewhere") == {}


def test_a_brokers_state_dir_and_checkout_come_from_its_command_line():
    args = ["java", "-Xmx512m", "-Dlog4j.configuration=file:/src/helpdesk/deploy/local/kafka/log4j.properties",
            "-cp", "/var/st/kafka-libs/*", "kafka.Kafka", "/var/st/kafka/server.properties"]
    assert stack_owner._kafka_state(args) == (Path("/var/st"), Path("/src/helpdesk"))
    # a broker that is no helpdesk stack's (another properties file, or no kafka.Kafka at all)
    assert stack_owner._kafka_state(["java", "kafka.Kafka", "/opt/kafka/config/server.properties"]) == (None, None)
    assert stack_owner._kafka_state(["docker-proxy", "-host-port", "9092"]) == (None, None)


def test_a_postgres_state_dir_comes_from_its_data_directory(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "deploy" / "local").mkdir(parents=True)
    (checkout / "deploy" / "local" / "stack.sh").write_text("")
    (checkout / ".stack" / "logs").mkdir(parents=True)
    args = ["/usr/lib/postgresql/15/bin/postgres", "-D", str(checkout / ".stack" / "pg"), "-p", "55432"]
    assert stack_owner._postgres_state(args) == (checkout / ".stack", checkout)
    other = tmp_path / "st"
    (other / "logs").mkdir(parents=True)
    assert stack_owner._postgres_state(["postgres", "-D", str(other / "pg")]) == (other, None)
    assert stack_owner._postgres_state(["postgres", "-D", "/var/lib/postgresql/15/main"]) == (None, None)


def test_the_listening_process_is_found_and_a_foreign_one_is_named_as_such(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert stack_owner.listening_pid(port) == os.getpid()
        assert stack_owner._pids_from_proc(port) == [os.getpid()]
        owner = stack_owner.identify("kafka", port, tmp_path)
        assert owner.relation(tmp_path) == stack_owner.FOREIGN
        label = owner.label(tmp_path, ROOT)
        assert label.startswith(f"unknown (not started by any helpdesk checkout; pid {os.getpid()}")
    assert stack_owner.identify("kafka", port, tmp_path) is None


def test_owner_phrases_tell_this_checkout_from_another():
    theirs = stack_owner.Owner(42, ["java"], Path("/x/.stack"), Path("/x"))
    assert theirs.relation(Path("/y/.stack")) == stack_owner.OTHER
    assert theirs.phrase(Path("/y/.stack"), Path("/y")).startswith("started by /x (state dir /x/.stack, pid 42")
    assert theirs.label(Path("/y/.stack"), Path("/y")).startswith("other checkout /x (state dir /x/.stack, pid 42")
    assert theirs.relation(Path("/x/.stack")) == stack_owner.OURS
    assert theirs.label(Path("/x/.stack"), Path("/x")) == "this checkout (/x, state dir /x/.stack, pid 42)"
    unseen = stack_owner.Owner(None, [])
    assert unseen.relation(Path("/y/.stack")) == stack_owner.UNSEEN
    assert unseen.label(Path("/y/.stack"), Path("/y")).startswith("unknown (")


def test_kafka_tool_names_its_tools_and_refuses_an_unknown_one():
    tool = ROOT / "deploy/local/kafka-tool.sh"
    helped = subprocess.run(["bash", str(tool), "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0
    for name in ("console-consumer", "consumer-groups", "topics", "get-offsets", "KAFKA_PORT"):
        assert name in helped.stdout
    wrong = subprocess.run(["bash", str(tool), "consumer-grups"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "unknown tool 'consumer-grups'" in wrong.stderr


def test_stack_sh_without_a_command_prints_its_usage(tmp_path):
    env = {**os.environ, "HELPDESK_STACK_DIR": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "deploy/local/stack.sh")], capture_output=True, text=True, env=env,
                          timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_the_kafka_pom_resolves_the_tools_in_the_brokers_version():
    pom = (ROOT / "deploy/local/kafka/pom.xml").read_text()
    for artifact in ("kafka_2.13", "kafka-tools"):
        assert f"<artifactId>{artifact}</artifactId>\n      <version>${{kafka.version}}</version>" in pom
