"""Sampling a running service with py-spy (no code change, no restart) and summarizing where its
time goes: the functions most often on CPU (self) and our own frames most often on the stack."""
from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

OUR_CODE = ("services/", "shared/")


@dataclass
class Profile:
    pid: int
    samples: int = 0
    idle: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    raw_path: Path | None = None
    error: str | None = None

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0

    def busy_share(self) -> float:
        return 1 - self.share(self.idle)


def py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 100) -> Profile:
    """Samples `pid` for `seconds`, including idle frames so waiting on I/O shows as such."""
    exe = py_spy()
    if exe is None:
        return Profile(pid, error="py-spy is not installed (pip install -e '.[bench]')")
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
        "--format", "raw", "--idle", "--threads", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    text, _ = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return Profile(pid, error=f"py-spy failed ({proc.returncode}): {text.decode(errors='replace')[-500:]}")
    return summarize(pid, out)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function and short path.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# A leaf here means the thread waited: the event loop in epoll, a helper thread on its condition.
IDLE_LEAVES = ("EpollSelector.select (", "select (selectors.py)", "Runner.run (asyncio/runners.py)", "Condition.wait (",
               "Event.wait (", "_worker (concurrent/futures/thread.py)")


AREAS = (  # the first of these found anywhere on a sample's stack names its area
    ("run_in_threadpool (fast_depends", "FastStream Context() injection: a thread-pool hop per message"),
    ("PoolConnectionHolder.release", "asyncpg pool: connection reset query on release"),
    ("OutboxRelay.", "outbox relay (shared/outbox.py)"),
    ("TimerEngine.", "timer engine (shared/timers.py)"),
    ("Inbox.handle", "handler: Inbox.handle (parse, transaction, service logic)"),
    ("commit (aiokafka/consumer", "Kafka offset commit (aiokafka)"),
    ("AIOKafkaConsumer.getone", "Kafka fetch (aiokafka consumer)"),
    ("Fetcher.", "Kafka fetch (aiokafka consumer)"),
    ("AIOKafkaProducer.", "Kafka produce (aiokafka producer)"),
    ("Sender.", "Kafka produce (aiokafka producer)"),
    ("AIOKafkaConnection.", "Kafka connection I/O (aiokafka)"),
    ("(faststream/", "FastStream dispatch, middlewares, acknowledgement"),
    ("(prometheus_client/", "Prometheus client"),
    ("(asyncpg/", "asyncpg (stack cut short by the sampler)"),
    ("_healthz", "HTTP server (metrics, health)"),
    ("make_asgi_app", "HTTP server (metrics, health)"),
)


def _area(frames: list[str]) -> str:
    for marker, area in AREAS:
        if any(marker in frame for frame in frames):
            return area
    return "event loop and other"


def summarize(pid: int, raw: Path) -> Profile:
    """Shares are of the event loop's thread (MainThread): helper threads only wait."""
    profile = Profile(pid, raw_path=raw)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        if parts and parts[0].startswith("thread ") and "MainThread" not in parts[0]:
            continue
        frames = [_frame_name(f) for f in parts[1:] if f and not f.startswith("process ")]
        if not frames:
            continue
        profile.samples += count
        leaf = frames[-1]
        if leaf.startswith(IDLE_LEAVES):
            profile.idle += count
            continue
        profile.self_time[leaf] += count
        profile.areas[_area(frames)] += count
        for name in set(frames):
            if any(name.split(" (", 1)[1].startswith(p) for p in OUR_CODE):
                profile.inclusive[name] += count
    return profile


def by_area(profile: Profile) -> list[tuple[str, float]]:
    """CPU samples grouped by the outermost interesting frame: where the event loop spends its CPU."""
    return [(area, profile.share(n)) for area, n in profile.areas.most_common()]


def table(profile: Profile, top: int = 12) -> str:
    if profile.error:
        return f"(no profile: {profile.error})"
    lines = [f"{profile.samples} samples of the event loop's thread; on CPU {profile.busy_share():.0%} of the time, "
             "waiting (on the database, Kafka or for work) the rest.", "",
             "| on CPU (self) | share of samples |", "| --- | --- |"]
    lines += [f"| `{name}` | {profile.share(n):.1%} |" for name, n in profile.self_time.most_common(top)]
    lines += ["", "| where the CPU went | share of samples |", "| --- | --- |"]
    lines += [f"| {area} | {share:.1%} |" for area, share in by_area(profile)]
    lines += ["", "| our frames on the stack (inclusive, CPU only) | share of samples |", "| --- | --- |"]
    lines += [f"| `{name}` | {profile.share(n):.1%} |" for name, n in profile.inclusive.most_common(top)]
    return "\n".join(lines)
