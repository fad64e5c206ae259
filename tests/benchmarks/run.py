"""`make bench`: every benchmark, each against a baseline measured in the same run, written to
docs/benchmarks.md.

    .venv/bin/python -m tests.benchmarks.run            # the full run (about 20-25 minutes, a third of it seeding a year of history)
    .venv/bin/python -m tests.benchmarks.run --quick    # a smoke variant (about 4-5 minutes)
    .venv/bin/python -m tests.benchmarks.run --only timers|pipeline|scaling|classification
    .venv/bin/python -m tests.benchmarks.run --only pipeline --history-scale 0.2   # a fifth of a year's history

The run ends with one line `BENCH_SUMMARY {json}` (report.bench_summary): the keys of the sections
that ran, for scripts and CI.

Servers come from tests/support/servers.py (the environment's KAFKA_BOOTSTRAP_SERVERS and
DATABASE_URL, else Docker, else the local stack). Each trial uses a fresh database, dropped after,
and its own topic prefix.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks import classification_bench as classification
from tests.benchmarks import history
from tests.benchmarks import pipeline_bench as pipeline
from tests.benchmarks import profiling, report, statements, timer_bench
from tests.benchmarks.common import ROOT, machine_facts, median, run_space, say, server_incarnation
from tests.support.servers import Servers, start_servers


@dataclass
class PipelineSettings:
    complaints: int = 2_000
    repeats: int = 3
    partitions: int = 3
    target_rate: float = 1_000.0  # the fixed rate for latency
    latency_seconds: float = 15.0
    scaling: tuple[int, ...] = (1, 2, 4)
    scaling_complaints: int = 1_500
    profile: bool = True
    # Issue #15 item 6: the services again on a database holding this share of a year's history
    # (tests/benchmarks/history.py; 1.0 = 5M handled events, 1M cases, 100k open timers; 0 = skip).
    history_scale: float = 1.0
    # Complaints per like-for-like baseline run, as a multiple of `complaints`.
    like_for_like_factor: int = 5


def plan(quick: bool) -> tuple[timer_bench.TimerSettings, PipelineSettings, classification.ClassificationSettings]:
    if not quick:
        return timer_bench.TimerSettings(), PipelineSettings(), classification.ClassificationSettings()
    return (
        timer_bench.TimerSettings(count=20_000, window=1.0, repeats=1, procrastinate_count=2_000, million=100_000,
                                  million_due=5_000),
        PipelineSettings(complaints=600, repeats=1, latency_seconds=6.0, scaling=(1, 2), scaling_complaints=400,
                         history_scale=0.01),
        classification.ClassificationSettings(complaints=600, repeats=1, single_samples=200, low_seconds=5.0),
    )


async def run_classification(servers: Servers, settings: classification.ClassificationSettings, logs: Path) -> dict[str, Any]:
    say(f"classification: CPU per complaint in process, rules only and with the model ({settings.complaints:,} complaints)")
    out: dict[str, Any] = {"settings": dataclasses.asdict(settings), "in_process": classification.in_process(settings)}
    say(f"classification: the pipeline with the model and with rules only ({settings.complaints:,} complaints"
        f" x {settings.repeats}, alternating)")
    out["services"] = await classification.services(servers, settings, logs)
    return out


async def run_timers(servers: Servers, settings: timer_bench.TimerSettings) -> dict[str, Any]:
    trials = await timer_bench.compare(servers, settings)
    result: dict[str, Any] = {"settings": dataclasses.asdict(settings), "summary": timer_bench.summarize(trials),
                              "trials": {k: [dataclasses.asdict(t) for t in v] for k, v in trials.items()}}
    result["million"] = dataclasses.asdict(await timer_bench.million(servers, settings))
    return result


async def run_pipeline(servers: Servers, settings: PipelineSettings, logs: Path) -> dict[str, Any]:
    """The pipeline section: the raw baseline, the four services on an empty database (rate, CPU,
    records and bytes per complaint on each output topic, statements per complaint), the
    like-for-like baseline producing the records the services were just measured to produce,
    latency of the services and the raw baseline, and the services on a database holding
    `history_scale` of a year's history against two empty-database runs around it."""
    out: dict[str, Any] = {"settings": dataclasses.asdict(settings)}
    async with run_space(servers, "pipe") as space:
        source = await statements.locate(space.database_url, servers.database_url)
        statements_missing = source if isinstance(source, str) else None
        out["statements_missing"] = statements_missing
        # The raw baseline first; it gets ten times the complaints: at its rate fewer last well under a second.
        base_count = settings.complaints * 10
        say(f"pipeline: raw aiokafka pass-through baseline ({base_count:,} complaints x {settings.repeats})")
        async with pipeline.Phase(space, "baseline", "base", settings.partitions, logs) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
            count = pipeline.OutputCount(phase.watch)
            base_runs = [await phase.throughput(base_count) for _ in range(settings.repeats)]
            out["baseline_cpu"] = _per_complaint(meter.used(), base_count * settings.repeats)
            out["baseline_outputs"] = await count.per_complaint(base_count * settings.repeats)
            say(f"  baseline: {[round(r.rate) for r in base_runs]} complaints/s")
            base_rate = pipeline.median_throughput(base_runs)
        say(f"pipeline: the four services ({settings.complaints:,} complaints x {settings.repeats})")
        async with pipeline.Phase(space, "services", "serv", settings.partitions, logs) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
            count = pipeline.OutputCount(phase.watch)
            before = None if isinstance(source, str) else await statements.snapshot(source)
            runs: list[pipeline.Throughput] = []
            for i in range(settings.repeats):
                last = i == settings.repeats - 1
                profile_task = None
                if last and settings.profile:
                    expected = settings.complaints / (median([r.rate for r in runs]) if runs else 100.0)
                    # The service that has used the most CPU so far is the hottest path.
                    used = meter.used()
                    hottest = max(pipeline.SERVICES, key=lambda name: used.get(name, 0.0)) if runs else "sla"
                    raw_path = logs / f"{hottest}.pyspy.raw"
                    profile_task = asyncio.create_task(profiling.record(
                        phase.fleet.pid(hottest), max(2.0, expected * 0.8), raw_path))
                runs.append(await phase.throughput(settings.complaints))
                if profile_task:
                    out["profile"] = profiling.table(await profile_task)
                    out["profile_raw"], out["profile_service"] = str(raw_path), hottest
            out["services_cpu"] = _per_complaint(meter.used(), settings.complaints * settings.repeats)
            out["services_outputs"] = await count.per_complaint(settings.complaints * settings.repeats, settle=2.0)
            if before is not None:
                out["statements"] = statements.per_complaint(before, await statements.snapshot(source),
                                                             settings.complaints * settings.repeats)
            say(f"  services: {[round(r.rate) for r in runs]} complaints/s")
            rate = pipeline.median_throughput(runs)
            # Latency at the rate when the services sustain it, else at 70% of what they sustain.
            latency_rate = settings.target_rate if rate >= settings.target_rate * 1.2 else max(10.0, round(rate * 0.7))
            say(f"pipeline: latency at {latency_rate:,.0f} complaints/s for {settings.latency_seconds:.0f}s")
            services_latency = await phase.latency(latency_rate, settings.latency_seconds)
        # Like for like: the services' parsers and models, and as many records per complaint as the
        # services produced just now on each topic (rounded to whole records).
        records = records_per_role(out["services_outputs"])
        out["like_for_like_records"] = records
        lfl_count = settings.complaints * settings.like_for_like_factor
        say(f"pipeline: like-for-like pass-through ({lfl_count:,} complaints x {settings.repeats}; records per "
            f"complaint {records})")
        async with pipeline.Phase(space, "like_for_like", "lfl", settings.partitions, logs, records=records) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
            count = pipeline.OutputCount(phase.watch)
            lfl_runs = [await phase.throughput(lfl_count) for _ in range(settings.repeats)]
            out["like_for_like_cpu"] = _per_complaint(meter.used(), lfl_count * settings.repeats)
            out["like_for_like_outputs"] = await count.per_complaint(lfl_count * settings.repeats)
            say(f"  like-for-like: {[round(r.rate) for r in lfl_runs]} complaints/s")
        async with pipeline.Phase(space, "baseline", "base2", settings.partitions, logs) as phase:
            base_latency = await phase.latency(latency_rate, settings.latency_seconds)
    out.update(
        baseline=[dataclasses.asdict(r) for r in base_runs], services=[dataclasses.asdict(r) for r in runs],
        like_for_like=[dataclasses.asdict(r) for r in lfl_runs],
        baseline_rate=base_rate, services_rate=rate, like_for_like_rate=pipeline.median_throughput(lfl_runs),
        latency_rate=latency_rate,
        services_latency=dataclasses.asdict(services_latency), baseline_latency=dataclasses.asdict(base_latency),
    )
    if settings.history_scale > 0:
        out["history"] = await run_history(servers, settings, logs)
    return out


def records_per_role(outputs: dict[str, dict[str, float]]) -> dict[str, int]:
    """Whole records per complaint each role must produce to match the services' output topics."""
    from shared.events import CLASSIFIED, COMPENSATION, FOLLOWUPS, SLA

    topics = {"intake": CLASSIFIED, "sla": SLA, "compensation": COMPENSATION, "followup": FOLLOWUPS}
    return {role: int(round(outputs.get(topic, {}).get("records", 0.0))) for role, topic in topics.items()}


async def _services_run(servers: Servers, settings: PipelineSettings, logs: Path, label: str,
                        scale: float) -> dict[str, Any]:
    """The four services in a fresh database (with `scale` of a year's history when > 0): rates and
    CPU per complaint of `settings.repeats` throughput runs."""
    async with run_space(servers, label) as space:
        seeded = None
        if scale > 0:
            sizes = history.sizes(scale)
            say(f"history: seeding {sizes['handled_events']:,} handled events, {sizes['cases']:,} cases, "
                f"{sizes['open_timers']:,} open timers (scale {scale:g} of a year)")
            seeded = await history.seed(space.database_url, scale, say)
            say(f"  seeded {seeded.rows:,} rows in {seeded.seconds:.0f}s ({seeded.database_mib:,.0f} MiB)")
        # A year of handled events is kept: the services must not spend the run pruning it.
        env = {"PROCESSED_EVENTS_RETENTION": "365d"}
        async with pipeline.Phase(space, "services", label, settings.partitions, logs, env=env) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
            runs = [await phase.throughput(settings.complaints) for _ in range(settings.repeats)]
            cpu = _per_complaint(meter.used(), settings.complaints * settings.repeats)
    say(f"  {label}: {[round(r.rate) for r in runs]} complaints/s")
    return {"runs": [dataclasses.asdict(r) for r in runs], "rate": pipeline.median_throughput(runs), "cpu": cpu,
            "seeded": None if seeded is None else history.as_dict(seeded)}


async def run_history(servers: Servers, settings: PipelineSettings, logs: Path) -> dict[str, Any]:
    """Issue #15 item 6: the services on an empty database, then on one holding `history_scale` of a
    year, then on an empty one again; the ratios are against the mean of the two empty runs."""
    say(f"history: the four services on an empty database ({settings.complaints:,} complaints x {settings.repeats})")
    empty_before = await _services_run(servers, settings, logs, "empty1", 0)
    full = await _services_run(servers, settings, logs, "hist", settings.history_scale)
    say("history: the four services on an empty database again")
    empty_after = await _services_run(servers, settings, logs, "empty2", 0)
    empty_rate = (empty_before["rate"] + empty_after["rate"]) / 2
    empty_cpu = (_total(empty_before["cpu"]) + _total(empty_after["cpu"])) / 2
    return {"scale": settings.history_scale, "empty_before": empty_before, "history": full, "empty_after": empty_after,
            "empty_rate": empty_rate, "empty_cpu_ms": empty_cpu, "rate_ratio": full["rate"] / empty_rate,
            "cpu_ratio": _total(full["cpu"]) / empty_cpu}


def _total(cpu: dict[str, float]) -> float:
    return sum(cpu.values())


def _per_complaint(cpu: dict[str, float], complaints: int) -> dict[str, float]:
    return {name: seconds * 1000 / complaints for name, seconds in cpu.items()}


async def run_scaling(servers: Servers, settings: PipelineSettings, logs: Path) -> dict[str, Any]:
    points = []
    for n in settings.scaling:
        say(f"scaling: intake with {n} partition(s) and {n} instance(s), {settings.scaling_complaints:,} complaints")
        async with run_space(servers, f"s{n}") as space:
            async with pipeline.Phase(space, "services", f"scale{n}", n, logs, counts={"intake": n},
                                      classified_only=True) as phase:
                runs = [await phase.throughput(settings.scaling_complaints) for _ in range(2)]
        points.append({"instances": n, "rates": [r.rate for r in runs], "rate": median([r.rate for r in runs])})
        say(f"  {n}: {[round(r.rate) for r in runs]} complaints/s")
    return {"points": points}


async def postgres_settings(url: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")}
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace, servers: Servers) -> int:
    started = time.monotonic()
    timer_settings, pipeline_settings, classification_settings = plan(args.quick)
    if args.history_scale is not None:
        pipeline_settings.history_scale = args.history_scale
    facts = machine_facts(servers)
    facts["postgres_settings"] = await postgres_settings(servers.database_url)
    say(f"{facts['nproc']} cores, {facts['memory_gib']} GiB; {facts['servers']}")
    logs = Path(tempfile.mkdtemp(prefix="helpdesk-bench-"))
    results: dict[str, Any] = {"facts": facts, "quick": args.quick, "command": _command(args)}
    servers_before = await server_incarnation(servers)
    wanted = args.only or ["timers", "pipeline", "scaling", "classification"]
    if "timers" in wanted:
        results["timers"] = await run_timers(servers, timer_settings)
    if "pipeline" in wanted:
        results["pipeline"] = await run_pipeline(servers, pipeline_settings, logs)
    if "scaling" in wanted:
        results["scaling"] = await run_scaling(servers, pipeline_settings, logs)
    if "classification" in wanted:
        results["classification"] = await run_classification(servers, classification_settings, logs)
    results["minutes"] = (time.monotonic() - started) / 60
    servers_after = await server_incarnation(servers)
    if servers_after != servers_before:
        results["servers_restarted"] = f"before: {servers_before}; after: {servers_after}"
        say(f"WARNING: a server was restarted during the run ({results['servers_restarted']}); run it again")
    (logs / "results.json").write_text(json.dumps(results, indent=2, default=str))
    say(f"results: {logs / 'results.json'} (service logs and the raw profile beside it)")
    if args.output:
        out = Path(args.output)
        out.write_text(report.render(results))
        say(f"written: {out}")
    print(report.summary(results))
    print(report.bench_summary(results), flush=True)
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m tests.benchmarks.run"]
    if args.quick:
        parts.append("--quick")
    if args.only:
        parts.append("--only " + " ".join(args.only))
    if args.history_scale is not None:
        parts.append(f"--history-scale {args.history_scale:g}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description="helpdesk benchmarks, each against a same-run baseline")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run of a few minutes")
    parser.add_argument("--only", nargs="+", choices=["timers", "pipeline", "scaling", "classification"])
    parser.add_argument("--history-scale", type=float, default=None, metavar="SHARE",
                        help="pipeline: share of a year's history to seed for the growth phase (1 = 5M handled "
                             "events, 1M cases, 100k open timers; 0 = skip; default 1, --quick 0.01)")
    parser.add_argument("--output", default=None,
                        help="markdown file to write (default: docs/benchmarks.md for a full run, none for --quick)")
    parser.add_argument("--no-output", action="store_true", help="write no markdown file")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="only rewrite the markdown from an earlier run's results.json (no benchmark runs)")
    args = parser.parse_args()
    if args.render:
        results = json.loads(Path(args.render).read_text())
        out = Path(args.output or ROOT / "docs" / "benchmarks.md")
        out.write_text(report.render(results))
        say(f"written: {out}")
        return
    if args.output is None and not args.quick and not args.only and not args.no_output:
        args.output = str(ROOT / "docs" / "benchmarks.md")
    if args.no_output:
        args.output = None
    logging.basicConfig(level=logging.WARNING)
    servers = start_servers()
    try:
        code = asyncio.run(main_async(args, servers))
    finally:
        servers.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
