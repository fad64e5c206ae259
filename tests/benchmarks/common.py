"""What every benchmark shares: a private database and topic prefix per run, statistics, machine facts."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.servers import Servers, create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("nan")


@dataclass
class RunSpace:
    """One benchmark run's private slice of the servers: a fresh database and a topic prefix."""

    servers: Servers
    name: str
    database_url: str

    @property
    def prefix(self) -> str:
        return f"{self.name}."

    def service_env(self, partitions: int = 3, prefix: str | None = None) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "HELPDESK_CONFIG_DIR": str(ROOT / "config"),
            "HELPDESK_TOPIC_PREFIX": prefix if prefix is not None else self.prefix,
            "KAFKA_PARTITIONS": str(partitions),
            "LOG_LEVEL": "WARNING",
        }


@asynccontextmanager
async def run_space(servers: Servers, label: str) -> AsyncIterator[RunSpace]:
    name = f"bench{label}{uuid.uuid4().hex[:8]}"
    url = await create_database(servers.database_url, name)
    try:
        yield RunSpace(servers, name, url)
    finally:
        if not os.environ.get("HELPDESK_KEEP_BENCH_DATABASES"):
            await drop_database(servers.database_url, name)


def machine_facts(servers: Servers) -> dict[str, Any]:
    mem_kib = 0
    cpu = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "servers": servers.describe(),
        "load_at_start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "commit": _git_commit(),
    }


async def server_incarnation(servers: Servers) -> str:
    """Which PostgreSQL start and which broker process this is: when it differs at the end of a run,
    someone restarted a server during it (the team's chaos tests do) and the figures are suspect."""
    try:
        conn = await asyncpg.connect(servers.database_url)
        try:
            pg = str(await conn.fetchval("SELECT pg_postmaster_start_time()"))
        finally:
            await conn.close()
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        pg = f"unreachable ({type(exc).__name__})"
    brokers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"kafka.Kafka" in cmdline.read_bytes():
                brokers.append(cmdline.parent.name)
        except OSError:
            continue
    return f"postgres started {pg}; broker pid {','.join(sorted(brokers)) or '?'}"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except Exception:
        return "?"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_for_line(proc: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    """Reads a child's stdout until a line starting with `prefix` (the child's report) arrives."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {prefix!r} line from pid {proc.pid} within {timeout}s")
        line = await asyncio.wait_for(proc.stdout.readline(), remaining)
        if not line:
            raise RuntimeError(f"pid {proc.pid} ended (code {await proc.wait()}) before reporting {prefix!r}")
        text = line.decode().rstrip()
        if text.startswith(prefix):
            return text[len(prefix):].strip()


async def spawn(module: str, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )


def report_line(data: dict[str, Any]) -> str:
    return "REPORT " + json.dumps(data)


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)
