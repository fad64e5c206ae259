"""`make demo`: the whole story in about a minute.

Starts the four services as separate processes against the local Kafka and PostgreSQL (in a fresh
database and under a topic prefix of its own, so it can run again and again), a real Prometheus
scraping them when installed, plays the CRM stories of deploy/demo/stories.py with demo policies in
seconds, prints a timeline per case and a closing summary, and stops everything it started, also on
Ctrl-C.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
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
from deploy.demo.timeline import describe, summary_rows  # noqa: E402
from shared import events as ev  # noqa: E402
from shared.settings import LOCAL_DATABASE_URL  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

SERVICES = ("intake", "sla", "compensation", "followup")
OUTPUT_TOPICS = (ev.CLASSIFIED, ev.REJECTED, ev.SLA, ev.COMPENSATION, ev.FOLLOWUPS)
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
        self.records: list[dict[str, Any]] = []
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
        collector = asyncio.create_task(self.collect())
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
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)

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
        for story in self.script.stories:
            console.print(f"\n[bold cyan]{story.case_id.rsplit('-', 1)[0] if story.case_id != 'GARBAGE' else '(no case)'}[/]  [bold]{story.title}[/]")
            lines: list[tuple[float, str]] = []
            for t, case_id, event, note in self.sent:
                if case_id == story.case_id:
                    lines.append((t, f"[dim]CRM →[/] {note}"))
            for r in self.records:
                belongs = r.get("case_id") == story.case_id or (story.case_id == "GARBAGE" and r.get("type") == "complaint.rejected")
                if belongs:
                    text = describe(r, self.t0)
                    if text:
                        lines.append((r["_t"], text))
            for t, text in sorted(lines, key=lambda x: x[0]):
                console.print(f"  [dim]{t:5.1f}s[/]  {text}")
        console.rule("[bold]Classification")
        table = Table(show_lines=False)
        for col in ("case", "channel", "category", "severity", "temperament", "loyalty", "publicity", "priority", "repeat"):
            table.add_column(col)
        for row in summary_rows(self.records):
            table.add_row(*row)
        console.print(table)
        self.closing_summary()

    def closing_summary(self) -> None:
        console.rule("[bold]Summary")
        if self.prometheus:
            for label, value in self.prometheus.summary():
                console.print(f"  {label:<42} {value}")
            console.print(f"  [dim](queried from Prometheus over HTTP at :{self.prometheus.port})[/]")
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.get("type", "?")] = counts.get(r.get("type", "?"), 0) + 1
        console.print("  events published by the helpdesk: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    # ---------- tear-down ----------
    async def teardown(self) -> None:
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
        demo.report()
        return 0
    except asyncio.CancelledError:
        console.print("\n[yellow]interrupted: stopping what the demo started[/]")
        return 130
    finally:
        await demo.teardown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
