"""`helpdesk simulate`: the CRM simulator with a progress display in two phases.

While generating, one bar counts up to `--duration`; then a second line shows the draining: the
activity the planned cases still have to publish (contacts, promises, resolutions fall due up to
`Mix.max_delay` seconds after a complaint), counting down to nothing.
"""
from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from services.simulator import CrmSimulator, SimProgress


class PhasedProgress:
    """Feeds `SimProgress` reports to a rich progress display: a "generating" task up to the run's
    duration, then a separate "draining" task over the events queued when draining began."""

    def __init__(self, progress: Progress, duration: float) -> None:
        self.progress, self.duration = progress, duration
        self.generating: TaskID = progress.add_task("generating", total=max(duration, 1e-9), detail="")
        self.draining: TaskID | None = None

    def __call__(self, p: SimProgress) -> None:
        if p.phase == "generating" or self.draining is None:  # frozen once draining began
            self.progress.update(self.generating, completed=p.elapsed,
                                 detail=f"{p.elapsed:.1f}/{self.duration:g} s: {p.cases} cases, {p.published} events published")
        if p.phase != "draining":
            return
        if self.draining is None:
            self.progress.stop_task(self.generating)
            self.draining = self.progress.add_task("draining", total=max(p.drain_events, 1), detail="")
        done = p.drain_events - p.remaining_events
        self.progress.update(self.draining, completed=done if p.drain_events else 1,
                             detail=f"{p.drain_cases - p.remaining_cases}/{p.drain_cases} cases' remaining activity, "
                                    f"{done}/{p.drain_events} events")


def progress_display(console: Console | None = None) -> Progress:
    """The two-line display `helpdesk simulate` shows (`console`: where to, default stdout)."""
    return Progress(TextColumn("{task.description:<10}"), BarColumn(bar_width=24), TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(), console=console or Console(width=None if sys.stdout.isatty() else 100))


def run(rate: float, duration: float, seed: int | None, drain: bool, *, settings: Any,
        producer: Any = None, console: Console | None = None) -> CrmSimulator:
    """Runs the simulator against `settings`' Kafka (topics created if absent, unless a `producer`
    is given) with the two-phase display, then prints events per topic; returns the simulator."""
    import asyncio

    from shared.kafka import client_args, ensure_topics
    from shared.resilience import LIBRARY_REPEATS, fold_library_retry_logs

    # On a new prefix the topics' leaders are still being elected: aiokafka warns "Got error produce
    # response on topic-partition …, retrying. Error: NotLeaderForPartitionError" for each partition
    # and retries. One such line is enough; the repeats are folded and counted at the end.
    fold_library_retry_logs()
    LIBRARY_REPEATS.take_suppressed()
    if producer is None:
        asyncio.run(ensure_topics(settings))
    sim = CrmSimulator(settings.kafka_bootstrap_servers, settings.helpdesk_topic_prefix, seed=seed,
                       client=client_args(settings))
    with progress_display(console) as bar:
        counts = asyncio.run(sim.run(rate, duration, on_progress=PhasedProgress(bar, duration), drain=drain,
                                     producer=producer))
    for topic, n in sorted(counts.items()):
        typer.echo(f"{topic}: {n}")
    if sim.case_ids:
        typer.echo(f"{len(sim.case_ids)} cases, {sim.case_ids[0]} … {sim.case_ids[-1]}, started "
                   f"{sim.started_at.isoformat(timespec='seconds')}"
                   + (f"; seed {seed}: the same seed repeats these ids and events" if seed is not None else ""))
    if sim.queue:
        typer.echo(f"not drained: {len(sim.queue)} events of {sim.queued_cases} cases left unpublished (--no-drain)")
    if folded := LIBRARY_REPEATS.take_suppressed():
        typer.echo(f"({folded} repeated aiokafka warning{'s' * (folded != 1)} suppressed: the client retried them)", err=True)
    return sim
