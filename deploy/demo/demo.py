"""`make demo`: the whole story in about a minute.

Starts the four services as separate processes against the local Kafka and PostgreSQL (in a fresh
database and under a topic prefix of its own, so it can run again and again), a real Prometheus
scraping them when installed, plays the CRM stories of deploy/demo/stories.py with demo policies in
seconds, prints a timeline per case and a closing summary, and stops everything it started, also on
Ctrl-C.

The timeline and the summary are taken at one moment: the demo keeps reading the output topics
and the metrics until they agree (timers keep firing after the last CRM event, and an event reaches
its topic a moment after its metric counted it), so every figure matches the events shown.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from deploy.demo import stories as story_book  # noqa: E402
from deploy.demo.prometheus import PrometheusServer  # noqa: E402
from deploy.demo.summary import EventFacts, Figures, disagreements, metric_samples, render  # noqa: E402
from deploy.demo.timeline import describe_all, summary_rows  # noqa: E402
from services.registry import NAMES as SERVICES, output_topics  # noqa: E402
from shared import events as ev  # noqa: E402
from shared.settings import LOCAL_DATABASE_URL  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

OUTPUT_TOPICS = output_topics()  # classified, rejected, sla, compensation, followups
INPUT_TOPICS = {"complaints": ev.COMPLAINTS, "activity": ev.CASE_ACTIVITY, "approval": ev.COMPENSATION_APPROVALS}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = uuid.uuid4().hex[:6]
        self.prefix = f"demo-{self.run}."
        self.base_url = os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)
        self.db_name = f"helpdesk_demo_{self.run}"
        self.database_url = self.base_url.rsplit("/", 1)[0] + "/" + self.db_name
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        self.workdir = ROOT / ".demo"
        self.config_dir = Path(tempfile.mkdtemp(prefix="helpdesk-demo-config-"))
        self.processes: list[ServiceProcess] = []
        self.prometheus: PrometheusServer | None = None
        self.records: list[dict[str, Any]] = []  # output events as the collector reads them
        self.collector: asyncio.Task[None] | None = None
        self.figures: Figures | None = None  # the metrics at the moment of `snapshot`
        self.figures_from = ""  # where they were read
        self.shown: list[dict[str, Any]] = []  # the output events at that moment
        self.settled_at: float | None = None  # seconds into the demo when both agreed; None if they never did
        self.sent: list[tuple[float, str, dict[str, Any] | bytes, str]] = []

    # ---------- set-up ----------
    async def setup(self) -> None:
        conn = await asyncpg.connect(self.base_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await conn.close()
        for f in (ROOT / "config").glob("*.yaml"):
            shutil.copy(f, self.config_dir / f.name)
        for f in (ROOT / "deploy/demo/config").glob("*.yaml"):
            shutil.copy(f, self.config_dir / f.name)  # demo policies: seconds instead of hours
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "DATABASE_URL": self.database_url,
            "HELPDESK_CONFIG_DIR": str(self.config_dir), "HELPDESK_TOPIC_PREFIX": self.prefix,
            "KAFKA_PARTITIONS": "3", "TIMER_POLL_INTERVAL": "0.1", "LOG_LEVEL": "WARNING",
        }
        available = [s for s in SERVICES if (ROOT / "services" / s / "__main__.py").exists()]
        for name in available:
            self.processes.append(ServiceProcess(name, env, self.workdir / "logs"))
        with console.status("starting " + ", ".join(available) + " …"):
            for p in self.processes:
                p.start(wait=False)
            for p in self.processes:
                p.wait_healthy(90)
        console.print("[green]✓[/] services up: " + ", ".join(f"{p.name} :{p.port}" for p in self.processes))
        if PrometheusServer.available():
            self.prometheus = PrometheusServer(self.workdir, {p.name: p.port for p in self.processes})
            self.prometheus.start()
            console.print(f"[green]✓[/] Prometheus scraping them on :{self.prometheus.port}")
        else:
            console.print("[yellow]![/] Prometheus is not installed (make tools): summary from /metrics instead")

    # ---------- playing the stories ----------
    async def play(self) -> None:
        start = story_book.start_time()
        script = story_book.build(start, self.run)
        steps = sorted((step for story in script.stories for step in story.steps), key=lambda s: s.at)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        self.collector = asyncio.create_task(self.collect())  # runs on until `snapshot`
        self.t0 = time.time()
        self.script = script
        try:
            with console.status("") as status:
                for step in steps:
                    while (wait := step.at - (time.time() - self.t0)) > 0:
                        status.update(self.progress(f"next: {step.note}"))
                        await asyncio.sleep(min(wait, 0.2))
                    if step.wait_for_pending and not await self.fill_decision(step, status):
                        continue
                    value = step.event if isinstance(step.event, bytes) else json.dumps(step.event).encode()
                    key = step.case_id.encode() if step.case_id else None
                    await producer.send_and_wait(self.prefix + INPUT_TOPICS[step.topic], value=value, key=key)
                    self.sent.append((time.time() - self.t0, step.case_id or "", step.event, step.note))
                settle_until = time.time() + self.args.settle
                while time.time() < settle_until:
                    status.update(self.progress("letting timers fall due"))
                    await asyncio.sleep(0.2)
        finally:
            await producer.stop()

    async def stop_collecting(self) -> None:
        if self.collector is not None:
            self.collector.cancel()
            await asyncio.gather(self.collector, return_exceptions=True)
            self.collector = None

    # ---------- one moment for the timeline and the summary ----------
    def read_figures(self) -> tuple[Figures, str]:
        """The services' metrics now and where they came from: Prometheus when it runs and answers,
        else each service's /metrics (read directly, so without a scrape's delay)."""
        if self.prometheus:
            try:
                return self.prometheus.figures(), f"queried from Prometheus over HTTP at :{self.prometheus.port}"
            except (OSError, ValueError, KeyError) as exc:
                console.print(f"[yellow]![/] Prometheus did not answer ({type(exc).__name__}): reading /metrics instead")
        figures = Figures.from_samples(s for p in self.processes for s in metric_samples(p.metrics()))
        return figures, "read from each service's /metrics"

    async def snapshot(self, timeout: float = 25.0, pause: float = 1.5) -> None:
        """Freezes the events and the metrics at a moment they agree and stood still for `pause`
        seconds (longer than Prometheus' 1 s scrape interval): timers still fire after the last CRM
        event, and a metric counts an event a moment before the outbox relay publishes it. After
        `timeout` it takes what it has; the summary then marks each figure the events contradict."""
        deadline, previous = time.time() + timeout, None
        with console.status("reading the metrics and the topics at one moment …"):
            while True:
                figures, source = await asyncio.to_thread(self.read_figures)
                records = list(self.records)
                current = (figures, EventFacts.from_records(records))
                agree = not disagreements(*current)
                if (agree and current == previous) or time.time() > deadline:
                    break
                previous = current if agree else None
                await asyncio.sleep(pause)
        await self.stop_collecting()
        self.figures, self.figures_from, self.shown = figures, source, records
        self.settled_at = time.time() - self.t0 if agree else None

    def progress(self, what: str) -> str:
        elapsed = time.time() - self.t0
        return f"[bold]{elapsed:5.1f}s[/] · {len(self.sent)} CRM events sent · {len(self.records)} helpdesk events seen · {what}"

    async def fill_decision(self, step: story_book.Step, status: Any) -> bool:
        deadline = time.time() + 15
        while time.time() < deadline:
            for r in self.records:
                if r.get("type") == "compensation.pending_approval" and r.get("case_id") == step.case_id:
                    step.event["decision_id"] = r["decision_id"]  # type: ignore[index]
                    return True
            status.update(self.progress("waiting for the approval request"))
            await asyncio.sleep(0.2)
        return False

    async def collect(self) -> None:
        consumer = AIOKafkaConsumer(*(self.prefix + t for t in OUTPUT_TOPICS), bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    metadata_max_age_ms=1000)
        await consumer.start()
        try:
            async for record in consumer:
                try:
                    value = json.loads(record.value)
                except Exception:
                    continue
                value["_t"] = record.timestamp / 1000 - self.t0
                value["_topic"] = record.topic.removeprefix(self.prefix)
                self.records.append(value)
        finally:
            await consumer.stop()

    # ---------- what happened ----------
    def report(self) -> None:
        console.rule("[bold]What happened, case by case")
        described = describe_all(self.shown, self.t0)
        for story in self.script.stories:
            console.print(f"\n[bold cyan]{story.case_id.rsplit('-', 1)[0] if story.case_id != 'GARBAGE' else '(no case)'}[/]  [bold]{story.title}[/]")
            lines: list[tuple[float, str]] = []
            for t, case_id, event, note in self.sent:
                if case_id == story.case_id:
                    lines.append((t, f"[dim]CRM →[/] {note}"))
            for r, text in described:
                belongs = r.get("case_id") == story.case_id or (story.case_id == "GARBAGE" and r.get("type") == "complaint.rejected")
                if belongs:
                    lines.append((r["_t"], text))
            for t, text in sorted(lines, key=lambda x: x[0]):
                console.print(f"  [dim]{t:5.1f}s[/]  {text}")
        console.rule("[bold]Classification")
        table = Table(show_lines=False)
        for col in ("case", "channel", "category", "severity", "temperament", "loyalty", "publicity", "priority", "repeat"):
            table.add_column(col)
        for row in summary_rows(self.shown):
            table.add_row(*row)
        console.print(table)
        self.closing_summary()

    def closing_summary(self) -> None:
        console.rule("[bold]Summary")
        assert self.figures is not None
        for line in render(self.figures, EventFacts.from_records(self.shown)):
            console.print(line)
        when = (f"metrics and events read together at {self.settled_at:.1f}s, when they agreed"
                if self.settled_at is not None else "[yellow]metrics and events still differed when the demo stopped waiting[/]")
        console.print(f"  [dim]({self.figures_from}; {when})[/]")

    # ---------- what an admin sees afterwards ----------
    def admin(self) -> None:
        """The admin's side, through the commands an admin runs: the recovery report (did the
        customers come back?) and a simulation of one policy edit (the coupon raised from 15% to
        20%) against the decisions this run made. The demo's cases live seconds, so the return
        window is seconds too."""
        env = {**os.environ, "DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "HELPDESK_CONFIG_DIR": str(self.config_dir), "HELPDESK_TOPIC_PREFIX": self.prefix,
               "COLUMNS": str(console.width)}
        helpdesk = [sys.executable, "-m", "services.cli"]
        console.rule("[bold]Recovery: did the customers come back?")
        console.print("[dim]$ helpdesk report recovery --since 1d --within 30s[/]")
        subprocess.run([*helpdesk, "report", "recovery", "--since", "1d", "--within", "30s"], env=env, cwd=ROOT)

        policy = (self.config_dir / "compensation.yaml").read_text(encoding="utf-8")
        draft = self.config_dir.parent / f"{self.config_dir.name}-draft-compensation.yaml"
        edited = policy.replace("        percent: 15\n", "        percent: 20\n", 1)
        if edited == policy:
            console.print("[yellow]![/] the demo policy has no 15% coupon any more: simulation skipped")
            return
        draft.write_text(edited, encoding="utf-8")
        try:
            console.rule("[bold]What if the coupon were 20% instead of 15%?")
            console.print("[dim]$ helpdesk policy simulate --policy draft-compensation.yaml --since 1d --show 5[/]")
            subprocess.run([*helpdesk, "policy", "simulate", "--policy", str(draft), "--since", "1d", "--show", "5"],
                           env=env, cwd=ROOT)
        finally:
            draft.unlink(missing_ok=True)

    # ---------- tear-down ----------
    async def teardown(self) -> None:
        await self.stop_collecting()
        for p in self.processes:
            p.stop(timeout=20)
        if self.prometheus:
            self.prometheus.stop()
        shutil.rmtree(self.config_dir, ignore_errors=True)
        from tests.support.kafka_io import delete_topics

        await delete_topics(self.bootstrap, self.prefix)
        if not self.args.keep:
            try:
                conn = await asyncpg.connect(self.base_url)
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
                finally:
                    await conn.close()
            except Exception:
                pass
        console.print(f"[dim]stopped everything the demo started; service logs in {self.workdir / 'logs'}[/]")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=14.0, help="seconds to wait after the last CRM event")
    parser.add_argument("--keep", action="store_true", help="keep the demo database afterwards")
    demo = Demo(parser.parse_args())
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await demo.setup()
        await demo.play()
        await demo.snapshot()
        demo.report()
        await asyncio.to_thread(demo.admin)
        return 0
    except asyncio.CancelledError:
        console.print("\n[yellow]interrupted: stopping what the demo started[/]")
        return 130
    finally:
        await demo.teardown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
