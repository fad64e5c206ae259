"""`make bench`: every benchmark, each against a baseline measured in the same run, written to
docs/benchmarks.md.

    .venv/bin/python -m tests.benchmarks.run            # the full run (about 10-15 minutes)
    .venv/bin/python -m tests.benchmarks.run --quick    # a smoke variant (about 2-3 minutes)
    .venv/bin/python -m tests.benchmarks.run --only timers|pipeline|scaling|classification

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
from tests.benchmarks import pipeline_bench as pipeline
from tests.benchmarks import profiling, report, timer_bench
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


def plan(quick: bool) -> tuple[timer_bench.TimerSettings, PipelineSettings, classification.ClassificationSettings]:
    if not quick:
        return timer_bench.TimerSettings(), PipelineSettings(), classification.ClassificationSettings()
    return (
        timer_bench.TimerSettings(count=20_000, window=1.0, repeats=1, procrastinate_count=2_000, million=100_000,
                                  million_due=5_000),
        PipelineSettings(complaints=600, repeats=1, latency_seconds=6.0, scaling=(1, 2), scaling_complaints=400),
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
    out: dict[str, Any] = {"settings": dataclasses.asdict(settings)}
    async with run_space(servers, "pipe") as space:
        # The baseline first: its rate tells how fast the latency run may go.
        # The baseline gets ten times the complaints: at its rate fewer last well under a second.
        base_count = settings.complaints * 10
        say(f"pipeline: raw aiokafka pass-through baseline ({base_count:,} complaints x {settings.repeats})")
        async with pipeline.Phase(space, "baseline", "base", settings.partitions, logs) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
            base_runs = [await phase.throughput(base_count) for _ in range(settings.repeats)]
            out["baseline_cpu"] = _per_complaint(meter.used(), base_count * settings.repeats)
            say(f"  baseline: {[round(r.rate) for r in base_runs]} complaints/s")
            base_rate = pipeline.median_throughput(base_runs)
        say(f"pipeline: the four services ({settings.complaints:,} complaints x {settings.repeats})")
        async with pipeline.Phase(space, "services", "serv", settings.partitions, logs) as phase:
            meter = pipeline.CpuMeter(phase.fleet)
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
            say(f"  services: {[round(r.rate) for r in runs]} complaints/s")
            rate = pipeline.median_throughput(runs)
            # Latency at the rate when the services sustain it, else at 70% of what they sustain.
            latency_rate = settings.target_rate if rate >= settings.target_rate * 1.2 else max(10.0, round(rate * 0.7))
            say(f"pipeline: latency at {latency_rate:,.0f} complaints/s for {settings.latency_seconds:.0f}s")
            services_latency = await phase.latency(latency_rate, settings.latency_seconds)
        async with pipeline.Phase(space, "baseline", "base2", settings.partitions, logs) as phase:
            base_latency = await phase.latency(latency_rate, settings.latency_seconds)
    out.update(
        baseline=[dataclasses.asdict(r) for r in base_runs], services=[dataclasses.asdict(r) for r in runs],
        baseline_rate=base_rate, services_rate=rate, latency_rate=latency_rate,
        services_latency=dataclasses.asdict(services_latency), baseline_latency=dataclasses.asdict(base_latency),
    )
    return out


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
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m tests.benchmarks.run"]
    if args.quick:
        parts.append("--quick")
    if args.only:
        parts.append("--only " + " ".join(args.only))
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description="helpdesk benchmarks, each against a same-run baseline")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run of a few minutes")
    parser.add_argument("--only", nargs="+", choices=["timers", "pipeline", "scaling", "classification"])
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
