"""Timer benchmark: our TimerEngine vs PgQueuer and procrastinate doing the same work, and our engine
with a million timers armed. Each trial gets a fresh database; each worker is its own process."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from tests.benchmarks import timer_systems as systems
from tests.benchmarks.common import median, percentile, run_space, say, spawn, wait_for_line
from tests.support.servers import Servers


@dataclass
class TimerTrial:
    system: str
    armed: int
    fired: int
    exactly_once: bool
    arm_seconds: float
    rate: float  # timers fired per second, first firing to last
    lag_p50: float
    lag_p99: float
    lag_max: float
    rss_mib: float
    tuning: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimerSettings:
    count: int = 100_000
    # Every deadline falls due within this many seconds: shorter than any system needs to fire them
    # all, so the rate measured is capacity, not the arrival rate.
    window: float = 2.0
    repeats: int = 3
    procrastinate_count: int = 5_000  # one job per fetch query: far slower, so fewer
    pgqueuer_batch: int = 100
    procrastinate_concurrency: int = 10
    million: int = 1_000_000
    million_due: int = 10_000  # the subset that falls due while the million are armed


async def timer_trial(servers: Servers, system: str, count: int, window: float, tuning: int = 0) -> TimerTrial:
    async with run_space(servers, f"t{system[:3]}") as space:
        await systems.prepare(system, space.database_url)
        worker = await spawn("tests.benchmarks.timer_systems", system, space.database_url, str(count),
                             "--limit", str(max(120.0, count / 200)), "--tuning", str(tuning))
        try:
            await wait_for_line(worker, "READY", 60)
            lead = 2.0 + count / 15_000  # arming must finish before the first deadline
            start = datetime.now(timezone.utc) + timedelta(seconds=lead)
            timers = systems.planned_timers(count, start, window)
            arm_seconds = await systems.arm(system, space.database_url, timers)
            if datetime.now(timezone.utc) > start:
                say(f"  warning: arming {system} took {arm_seconds:.1f}s, past the first deadline")
            report = json.loads(await wait_for_line(worker, "REPORT", lead + window + max(120.0, count / 200) + 30))
        finally:
            await finish(worker, 15.0 if system == "ours" else 3.0)
        written = await _outbox_events(space.database_url)
    lags = report["lags"]
    span = report["last"] - report["first"]
    trial = TimerTrial(
        system=system, armed=count, fired=report["fired"], exactly_once=written == (count, count),
        arm_seconds=arm_seconds, rate=(report["fired"] - 1) / span if span > 0 else float("nan"),
        lag_p50=percentile(lags, 50), lag_p99=percentile(lags, 99), lag_max=max(lags) if lags else float("nan"),
        rss_mib=report["rss_mib"], tuning={k: report[k] for k in ("batch_size", "poll_interval", "concurrency") if k in report},
    )
    say(f"  {system}: {trial.fired}/{count} fired at {trial.rate:,.0f}/s, lag p50 {trial.lag_p50:.2f}s "
        f"p99 {trial.lag_p99:.2f}s, arm {arm_seconds:.1f}s, exactly once: {trial.exactly_once}")
    return trial


async def finish(worker: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    """Lets a worker that reported shut down on its own (our engine commits its last batch then);
    one that takes longer (PgQueuer's shutdown) is terminated: its firings were already committed."""
    try:
        await asyncio.wait_for(worker.wait(), grace)
    except asyncio.TimeoutError:
        worker.terminate()
        try:
            await asyncio.wait_for(worker.wait(), 10)
        except asyncio.TimeoutError:
            worker.kill()
            await worker.wait()


async def _outbox_events(url: str) -> tuple[int, int]:
    """(outbox rows, distinct causing timers): equal to the armed count when each fired exactly once."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT convert_from(payload, 'UTF8')::jsonb->>'causation_id') AS d "
            f"FROM {systems.SCHEMA}.outbox")
        return row["n"], row["d"]
    finally:
        await conn.close()


async def compare(servers: Servers, settings: TimerSettings) -> dict[str, list[TimerTrial]]:
    """Interleaved trials (ours, PgQueuer, procrastinate, ours, …) so drifting load hits all alike."""
    trials: dict[str, list[TimerTrial]] = {s: [] for s in systems.SYSTEMS}
    for round_no in range(settings.repeats):
        say(f"timers: round {round_no + 1}/{settings.repeats}")
        trials["ours"].append(await timer_trial(servers, "ours", settings.count, settings.window))
        trials["pgqueuer"].append(await timer_trial(servers, "pgqueuer", settings.count, settings.window,
                                                    settings.pgqueuer_batch))
        if round_no == 0 or settings.repeats <= 3:
            window = settings.window * settings.procrastinate_count / settings.count
            trials["procrastinate"].append(await timer_trial(servers, "procrastinate", settings.procrastinate_count,
                                                             max(window, 0.5), settings.procrastinate_concurrency))
    return trials


@dataclass
class MillionResult:
    armed: int
    due: int
    copy_seconds: float
    rss_idle_mib: float  # engine process with only the due subset armed
    rss_armed_mib: float  # engine process with all armed
    lag_idle_p50: float
    lag_idle_p99: float
    lag_armed_p50: float
    lag_armed_p99: float
    fired_armed: int
    rate_armed: float


async def _subset_run(servers: Servers, total: int, due: int, window: float) -> tuple[float, dict[str, Any]]:
    """Arms `due` timers falling due within `window` and `total - due` far in the future; runs our
    engine until the due ones fired; returns (COPY seconds, worker report with its RSS)."""
    async with run_space(servers, "tmil") as space:
        await systems.prepare("ours", space.database_url)
        far = datetime.now(timezone.utc) + timedelta(days=1)
        later = (t for t in systems.planned_timers(total - due, far, 86_400.0, prefix="L"))
        copy_seconds = await systems.copy_armed(space.database_url, later, total - due) if total > due else 0.0
        worker = await spawn("tests.benchmarks.timer_systems", "ours", space.database_url, str(due), "--limit", "120")
        try:
            await wait_for_line(worker, "READY", 60)
            start = datetime.now(timezone.utc) + timedelta(seconds=2)
            await systems.arm("ours", space.database_url, systems.planned_timers(due, start, window))
            report = json.loads(await wait_for_line(worker, "REPORT", 200))
        finally:
            await finish(worker)
    return copy_seconds, report


async def million(servers: Servers, settings: TimerSettings) -> MillionResult:
    say(f"timers: {settings.million:,} armed, {settings.million_due:,} of them due (and the same subset alone)")
    _, alone = await _subset_run(servers, settings.million_due, settings.million_due, settings.window)
    copy_seconds, armed = await _subset_run(servers, settings.million, settings.million_due, settings.window)
    span = armed["last"] - armed["first"]
    result = MillionResult(
        armed=settings.million, due=settings.million_due, copy_seconds=copy_seconds,
        rss_idle_mib=alone["rss_mib"], rss_armed_mib=armed["rss_mib"],
        lag_idle_p50=percentile(alone["lags"], 50), lag_idle_p99=percentile(alone["lags"], 99),
        lag_armed_p50=percentile(armed["lags"], 50), lag_armed_p99=percentile(armed["lags"], 99),
        fired_armed=armed["fired"], rate_armed=(armed["fired"] - 1) / span if span > 0 else float("nan"),
    )
    say(f"  1M armed: COPY {copy_seconds:.1f}s, RSS {result.rss_armed_mib:.0f} MiB (vs {result.rss_idle_mib:.0f}), "
        f"lag p99 {result.lag_armed_p99:.2f}s (vs {result.lag_idle_p99:.2f}s)")
    return result


def summarize(trials: dict[str, list[TimerTrial]]) -> dict[str, dict[str, float]]:
    out = {}
    for system, runs in trials.items():
        if runs:
            out[system] = {
                "armed": runs[0].armed, "runs": len(runs),
                "rate": median([t.rate for t in runs]),
                "lag_p50": median([t.lag_p50 for t in runs]), "lag_p99": median([t.lag_p99 for t in runs]),
                "arm_rate": median([t.armed / t.arm_seconds for t in runs]),
                "rss_mib": median([t.rss_mib for t in runs]),
                "exactly_once": all(t.exactly_once for t in runs),
                "rates": [round(t.rate) for t in runs],
            }
    return out
