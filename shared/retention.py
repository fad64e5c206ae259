"""Bounded inbox: the inbound event ids each service remembers for de-duplication are forgotten
after `PROCESSED_EVENTS_RETENTION` (7 days by default), pruned in the background.

The retention must cover every redelivery that can still happen: Kafka redelivers at most what its
topics retain (7 days by default), and an operator who resets a consumer group re-reads only what
is retained. An id forgotten earlier than its record leaves the topic would be handled again.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import asyncpg
from prometheus_client import Counter, Gauge

from shared import db
from shared.resilience import DependencyWatch

log = logging.getLogger(__name__)


class InboxRetention:
    """Every `interval` seconds, deletes the processed-event ids older than `retention` from
    `<schema>.processed_events` (shared/db.prune_processed_events) and counts them in
    `helpdesk_<service>_processed_events_pruned_total`; `helpdesk_<service>_processed_events_retention_seconds`
    shows the retention in force. A database outage is one line down and one line back (`watch`)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, service: str, retention: timedelta, interval: float,
                 watch: DependencyWatch) -> None:
        self.pool, self.schema, self.retention, self.interval, self.watch = pool, schema, retention, interval, watch
        self.pruned = _pruned(service)
        _retention_gauge(service).set(retention.total_seconds())

    async def prune_once(self, now: datetime | None = None) -> int:
        """One prune: ids recorded before `now - retention` (now: the current UTC time)."""
        cutoff = (now or datetime.now(timezone.utc)) - self.retention
        deleted = await db.prune_processed_events(self.pool, self.schema, cutoff)
        self.pruned.inc(deleted)
        if deleted:
            log.info("forgot %d inbound event ids recorded before %s (retention %s)", deleted,
                     cutoff.isoformat(timespec="seconds"), self.retention)
        return deleted

    async def run(self) -> None:
        """Prunes every `interval` seconds until cancelled, the first time at once."""
        while True:
            try:
                await self.prune_once()
                self.watch.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.watch.failed(exc)
            await asyncio.sleep(self.interval)


_COUNTERS: dict[str, Counter] = {}
_GAUGES: dict[str, Gauge] = {}


def _pruned(service: str) -> Counter:
    if service not in _COUNTERS:
        _COUNTERS[service] = Counter(f"helpdesk_{service}_processed_events_pruned_total",
                                     "Inbound event ids forgotten after PROCESSED_EVENTS_RETENTION")
    return _COUNTERS[service]


def _retention_gauge(service: str) -> Gauge:
    if service not in _GAUGES:
        _GAUGES[service] = Gauge(f"helpdesk_{service}_processed_events_retention_seconds",
                                 "How long inbound event ids are remembered for de-duplication")
    return _GAUGES[service]
