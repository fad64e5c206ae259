"""Pipeline benchmark: complaints through the four services (real processes) vs two pass-through
baselines on the same topics (raw aiokafka, and like-for-like: the services' parsers and models,
the same records; tests/benchmarks/passthrough.py); records and bytes per complaint on each output
topic; latency at a fixed rate; intake scaling with instances.

Times come from Kafka record timestamps (CreateTime, set by each producer on one machine clock):
a complaint's publish time, and the time its `complaint.classified`, compensation decision and
first `sla.started` were produced.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.simulator import CrmSimulator, Mix
from shared import kafka
from shared.events import CLASSIFIED, COMPENSATION, COMPLAINTS, FOLLOWUPS, SLA
from shared.settings import Settings
from tests.benchmarks.common import ROOT, RunSpace, median, percentile
from tests.support.processes import ServiceProcess

SERVICES = ("intake", "sla", "compensation", "followup")
DECISIONS = {"compensation.granted", "compensation.pending_approval", "compensation.none", "compensation.denied"}
NO_ACTIVITY = Mix(contacted=0, promise=0, paused=0, resolved=0, returned=0)


def complaints(count: int, tag: str, seed: int = 11) -> list[dict[str, Any]]:
    """`count` complaints from the CRM simulator (no follow-on activity), case ids tagged per run."""
    sim = CrmSimulator("", seed=seed, mix=NO_ACTIVITY)
    now = time.time()
    for _ in range(count):
        sim.plan_case(now)
    out = []
    for item in sim.queue:
        event = dict(item.event)
        event["case_id"] = f"{tag}-{event['case_id']}"
        out.append(event)
    return out


# ---------- what ran: services or the baseline ----------
class Fleet:
    """The processes of one phase: the four services (`kind="services"`), or the four pass-through
    roles: `"baseline"` (raw) or `"like_for_like"` (the services' parsers and models, `records[role]`
    records produced per input; tests/benchmarks/passthrough.py)."""

    def __init__(self, kind: str, env: dict[str, str], log_dir: Path, counts: dict[str, int] | None = None,
                 records: dict[str, int] | None = None) -> None:
        self.kind, self.env, self.log_dir = kind, env, log_dir
        self.counts = counts or {name: 1 for name in SERVICES}
        self.records = records or {}
        self.services: list[ServiceProcess] = []
        self.raw: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    async def start(self) -> None:
        if self.kind == "services":
            for name, count in self.counts.items():
                for _ in range(count):
                    self.services.append(ServiceProcess(name, self.env, self.log_dir).start(wait=False))
            await asyncio.gather(*(asyncio.to_thread(p.wait_healthy, 120.0) for p in self.services))
        else:
            await kafka.ensure_topics(Settings(**_settings_args(self.env)))
            for name, count in self.counts.items():
                for i in range(count):
                    log = self.log_dir / f"{self.kind}-{name}-{i}.log"
                    args = [name]
                    if self.kind == "like_for_like":
                        args += ["--like-for-like", "--records", str(self.records.get(name, 1))]
                    proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.passthrough", *args], cwd=ROOT,
                                            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
                    self.raw.append((name, proc, log))
            for name, proc, log in self.raw:
                await _wait_for_text(proc, log, "READY", 60)

    def pid(self, name: str) -> int:
        for p in self.services:
            if p.name == name and p.proc is not None:
                return p.proc.pid
        for role, proc, _ in self.raw:
            if role == name:
                return proc.pid
        raise KeyError(name)

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(p.stop, 30.0) for p in self.services))
        for _, proc, _ in self.raw:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in self.raw:
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _settings_args(env: dict[str, str]) -> dict[str, Any]:
    return {"kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"], "helpdesk_topic_prefix": env["HELPDESK_TOPIC_PREFIX"],
            "kafka_partitions": int(env["KAFKA_PARTITIONS"]), "database_url": env["DATABASE_URL"]}


async def _wait_for_text(proc: subprocess.Popen[bytes], log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name} exited: {log.read_text(errors='replace')[-2000:]}")
        if text in log.read_text(errors="replace"):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{log.name} not ready after {timeout}s")


# ---------- watching the outputs ----------
@dataclass
class Outputs:
    classified: dict[str, float] = field(default_factory=dict)
    decided: dict[str, float] = field(default_factory=dict)
    sla_started: dict[str, float] = field(default_factory=dict)

    def done(self, cases: Iterable[str], classified_only: bool = False) -> bool:
        maps = (self.classified,) if classified_only else (self.classified, self.decided, self.sla_started)
        return all(case in m for case in cases for m in maps)

    def missing(self, cases: Iterable[str], classified_only: bool = False) -> int:
        return sum(1 for case in cases if not self.done([case], classified_only))


class OutputWatch:
    """Reads the output topics from their start, noting when each case's outputs were produced, and
    counting every record and its value's bytes per topic (`tally`: topic without prefix →
    [records, bytes])."""

    def __init__(self, bootstrap: str, prefix: str, classified_only: bool = False) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self.topics = [prefix + CLASSIFIED] + ([] if classified_only else
                                               [prefix + COMPENSATION, prefix + SLA, prefix + FOLLOWUPS])
        self.outputs = Outputs()
        self.tally: dict[str, list[int]] = {t[len(prefix):]: [0, 0] for t in self.topics}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=100)
        await consumer.start()
        await consumer._client.force_metadata_update()  # noqa: SLF001 - topics were just created
        tps = [TopicPartition(t, p) for t in self.topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        o = self.outputs
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                topic = tp.topic[len(self.prefix):]
                tally = self.tally.setdefault(topic, [0, 0])
                for r in records:
                    tally[0] += 1
                    tally[1] += len(r.value or b"")
                    try:
                        event = json.loads(r.value)
                    except ValueError:
                        continue
                    case, kind, at = event.get("case_id"), event.get("type"), r.timestamp / 1000
                    if topic == CLASSIFIED and kind == "complaint.classified":
                        o.classified.setdefault(case, at)
                    elif topic == COMPENSATION and kind in DECISIONS:
                        o.decided.setdefault(case, at)
                    elif topic == SLA and kind == "sla.started":
                        o.sla_started.setdefault(case, at)

    async def wait_done(self, cases: list[str], timeout: float, classified_only: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while not self.outputs.done(cases, classified_only):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.outputs.missing(cases, classified_only)} of {len(cases)} complaints "
                                   f"incomplete after {timeout:.0f}s")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()


# ---------- publishing ----------
class Publisher:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.topic = prefix + COMPLAINTS
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")

    async def __aenter__(self) -> "Publisher":
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def burst(self, events: list[dict[str, Any]]) -> dict[str, float]:
        """Publishes as fast as the producer takes them; returns each case's publish time."""
        futures = [await self.producer.send(self.topic, json.dumps(e).encode(), key=e["case_id"].encode())
                   for e in events]
        metadata = await asyncio.gather(*futures)
        return {e["case_id"]: m.timestamp / 1000 for e, m in zip(events, metadata)}

    async def steady(self, events: list[dict[str, Any]], rate: float) -> dict[str, float]:
        """Publishes at `rate` per second (in 10 ms steps); returns each case's publish time."""
        futures = []
        started, sent = time.monotonic(), 0
        while sent < len(events):
            due = min(len(events), int((time.monotonic() - started) * rate) + 1)
            for e in events[sent:due]:
                futures.append(await self.producer.send(self.topic, json.dumps(e).encode(), key=e["case_id"].encode()))
            sent = due
            await asyncio.sleep(0.01)
        metadata = await asyncio.gather(*futures)
        return {e["case_id"]: m.timestamp / 1000 for e, m in zip(events, metadata)}


# ---------- runs ----------
@dataclass
class Throughput:
    complaints: int
    seconds: float
    rate: float


@dataclass
class Latency:
    rate: float
    complaints: int
    classified_p50: float
    classified_p99: float
    decided_p50: float
    decided_p99: float
    sla_p50: float
    sla_p99: float


class Phase:
    """One fleet (services or baseline) on its own topic prefix, with a watcher and a publisher."""

    def __init__(self, space: RunSpace, kind: str, label: str, partitions: int, log_dir: Path,
                 counts: dict[str, int] | None = None, classified_only: bool = False,
                 env: dict[str, str] | None = None, records: dict[str, int] | None = None) -> None:
        self.prefix = f"{space.prefix}{label}."
        self.env = {**space.service_env(partitions=partitions, prefix=self.prefix), **(env or {})}
        self.bootstrap = space.servers.kafka_bootstrap
        self.fleet = Fleet(kind, self.env, log_dir, counts, records)
        self.watch = OutputWatch(self.bootstrap, self.prefix, classified_only)
        self.classified_only = classified_only
        self.label = label
        self.runs = 0

    async def __aenter__(self) -> "Phase":
        try:
            await self.fleet.start()
        except BaseException:
            await self.fleet.stop()  # a process that never became healthy must not outlive the run
            raise
        await self.watch.start()
        await self.throughput(60, timeout=120)  # warm-up: consumers joined, caches and pools filled
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.watch.stop()
        await self.fleet.stop()

    async def throughput(self, count: int, timeout: float | None = None) -> Throughput:
        self.runs += 1
        events = complaints(count, f"{self.label}{self.runs}", seed=self.runs)
        cases = [e["case_id"] for e in events]
        async with Publisher(self.bootstrap, self.prefix) as publisher:
            published = await publisher.burst(events)
        await self.watch.wait_done(cases, timeout or max(120.0, count / 20), self.classified_only)
        o = self.watch.outputs
        maps = (o.classified,) if self.classified_only else (o.classified, o.decided, o.sla_started)
        end = max(m[c] for m in maps for c in cases)
        seconds = end - min(published.values())
        return Throughput(count, seconds, count / seconds)

    async def latency(self, rate: float, seconds: float) -> Latency:
        self.runs += 1
        events = complaints(int(rate * seconds), f"{self.label}{self.runs}", seed=self.runs)
        cases = [e["case_id"] for e in events]
        async with Publisher(self.bootstrap, self.prefix) as publisher:
            published = await publisher.steady(events, rate)
        await self.watch.wait_done(cases, max(120.0, len(cases) / 20))
        o = self.watch.outputs

        def lag(m: dict[str, float]) -> list[float]:
            return [m[c] - published[c] for c in cases]

        c, d, s = lag(o.classified), lag(o.decided), lag(o.sla_started)
        return Latency(rate, len(cases), percentile(c, 50), percentile(c, 99), percentile(d, 50), percentile(d, 99),
                       percentile(s, 50), percentile(s, 99))


class OutputCount:
    """Records and bytes each output topic received between `start()` and `per_complaint()`."""

    def __init__(self, watch: OutputWatch) -> None:
        self.watch = watch
        self.start = {t: list(v) for t, v in watch.tally.items()}

    async def per_complaint(self, complaints: int, settle: float = 1.0) -> dict[str, dict[str, float]]:
        """topic → {"records": records per complaint, "bytes": average value size}; waits `settle`
        seconds first, for records produced after the last complaint was done (followups)."""
        await asyncio.sleep(settle)
        out = {}
        for topic, (records, size) in self.watch.tally.items():
            r0, b0 = self.start.get(topic, [0, 0])
            n = records - r0
            out[topic] = {"records": n / complaints, "bytes": (size - b0) / n if n else 0.0}
        return out


def log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="helpdesk-bench-"))


def median_throughput(runs: list[Throughput]) -> float:
    return median([r.rate for r in runs])


# ---------- where the CPU went ----------
def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _pids_matching(needle: bytes) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


class CpuMeter:
    """CPU seconds used per process group during a run: each of ours, the broker, PostgreSQL (all its
    processes, other users' backends included) and this harness."""

    def __init__(self, fleet: Fleet) -> None:
        self.groups: dict[str, list[int]] = {}
        for p in fleet.services:
            if p.proc is not None:
                self.groups.setdefault(p.name, []).append(p.proc.pid)
        for role, proc, _ in fleet.raw:
            self.groups.setdefault(f"{fleet.kind.replace('_', '-')} {role}", []).append(proc.pid)
        self.groups["kafka broker"] = _pids_matching(b"kafka.Kafka")
        self.groups["postgresql"] = _pids_matching(b"postgres")
        self.groups["harness (publisher, watcher)"] = [os.getpid()]
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def used(self) -> dict[str, float]:
        end = self._sample()
        return {name: max(0.0, end[name] - self.start[name]) for name in self.groups}
