"""The recovery read model's service layer: the records of its own consumer (group
`helpdesk-followup.recovery`: complaints.classified, case-activity, sla.v1, compensation.v1) folded
into each case's facts (services/followup/domain/recovery.py), the report's gauges, and the rebuild
from the start of the topics (`helpdesk report rebuild`).

Why in followup: followup already owns the customer's story after the resolution (resolutions,
reopenings, returns). A separate consumer group and separate tables keep it rebuildable without
touching follow-up scheduling. It publishes nothing and arms no timer.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import asyncpg

from services.followup import metrics
from services.followup import recovery_store as real_store
from services.followup.contract import RECOVERY_PARSERS, RecoveryIgnored, RecoveryInput
from services.followup.domain.recovery import CaseFacts, RecoveryReport, Return, fold, recovery_report
from shared.batch import Batch
from shared.events import now

# The window of the gauges (`refresh_gauges`): cases resolved in the last 90 days whose 30-day return
# window has closed, the CLI's defaults (`helpdesk report recovery`).
GAUGE_SINCE = timedelta(days=90)
GAUGE_WITHIN = timedelta(days=30)


@dataclass
class RecoveryBatch:
    """A batch's state (`Batch.state`): the facts of its cases as loaded by `prepare` and folded by
    `on_event`, the cases it changed and the returns it saw; written once, before commit."""

    cases: dict[str, CaseFacts]
    changed: set[str] = field(default_factory=set)
    returns: list[Return] = field(default_factory=list)


def fold_all(inputs: Iterable[RecoveryInput], cases: dict[str, CaseFacts] | None = None
             ) -> tuple[dict[str, CaseFacts], list[Return]]:
    """`inputs` folded into `cases` (a new dict: case id → facts; the argument is not changed), and
    the returns among them, one per event id: what a rebuild writes."""
    out = dict(cases or {})
    returns: dict[str, Return] = {}
    for item in inputs:
        if isinstance(item.fact, Return):
            returns.setdefault(item.fact.event_id, item.fact)
        else:
            out[item.case_id] = fold(out.get(item.case_id), item.fact)
    return out, list(returns.values())


def parse_records(records: Iterable[tuple[str, bytes | None]]) -> list[RecoveryInput]:
    """(topic without prefix, record value) pairs → the read model's inputs, skipping what it does
    not use (as the live consumer's router does)."""
    out = []
    for topic, raw in records:
        parse = RECOVERY_PARSERS.get(topic)
        if parse is None:
            continue
        try:
            out.append(parse(raw))
        except RecoveryIgnored:
            continue
    return out


@dataclass
class Recovery:
    """The read model's layer between the Inbox and the domain. `store` is
    services/followup/recovery_store.py (or tests/fakes/recovery_store.py's MemoryRecoveryStore);
    `clock` gives the current instant (UTC) the gauges are computed at."""

    store: Any = real_store
    clock: Callable[[], datetime] = now

    async def prepare(self, batch: Batch, events: list[Any]) -> RecoveryBatch:
        """Waits out a rebuild in progress, locks the batch's cases (sorted, one statement) and
        loads their facts once."""
        await self.store.enter_live(batch.conn)
        case_ids = sorted({e.case_id for e in events if isinstance(e, RecoveryInput) and not isinstance(e.fact, Return)})
        await batch.lock(self.store.RECOVERY_LOCKS, case_ids)
        state = RecoveryBatch(await self.store.load_cases(batch.conn, case_ids))
        batch.before_commit(lambda: self._write(batch, state))
        return state

    async def _write(self, batch: Batch, state: RecoveryBatch) -> None:
        await self.store.save_cases(batch.conn, [state.cases[c] for c in sorted(state.changed)])
        await self.store.save_returns(batch.conn, state.returns)

    async def on_event(self, batch: Batch, event: RecoveryInput) -> str:
        """Folds one record into its case's facts (or records a return). Returns "recorded"."""
        state: RecoveryBatch = batch.state
        if isinstance(event.fact, Return):
            state.returns.append(event.fact)
            metrics.recovery_events.labels("customer.returned").inc()
            return "recorded"
        before = state.cases.get(event.case_id)
        after = fold(before, event.fact)
        if after != before:
            state.cases[event.case_id] = after
            state.changed.add(event.case_id)
        metrics.recovery_events.labels(_fact_name(event)).inc()
        return "recorded"

    async def report(self, conn: asyncpg.Connection, since: timedelta, within: timedelta,
                     at: datetime | None = None) -> RecoveryReport:
        """The report at `at` (default: now) over the cases resolved in the last `since` with a
        closed `within` return window (domain/recovery.py, `recovery_report`)."""
        at = at or self.clock()
        cases, returns = await self.store.report_facts(conn, at - since)
        # In a thread: over months of cases it takes a while, and the event loop must keep serving
        # the consumers and /livez meanwhile.
        return await asyncio.to_thread(partial(recovery_report, cases, returns, now=at, since=since, within=within))

    async def refresh_gauges(self, conn: asyncpg.Connection) -> None:
        """Sets the recovery gauges from the read model over GAUGE_SINCE / GAUGE_WITHIN."""
        metrics.set_recovery(await self.report(conn, GAUGE_SINCE, GAUGE_WITHIN))

    async def rebuild(self, conn: asyncpg.Connection,
                      read: Callable[[], Awaitable[Iterable[tuple[str, bytes | None]]]]) -> tuple[int, int]:
        """Replaces the read model by the topics read from the start. Call it in one transaction
        (`helpdesk report rebuild` does): takes the tables (`enter_rebuild`: live batches in flight
        finish first, new ones wait until the transaction ends), then calls `read()` for every
        (topic without prefix, record value) now in the four topics, folds them with the live
        consumer's rules and writes every row anew. Returns (cases, returns) written."""
        await self.store.enter_rebuild(conn)
        cases, returns = fold_all(parse_records(await read()))
        await self.store.replace_all(conn, [cases[c] for c in sorted(cases)], returns)
        return len(cases), len(returns)


def _fact_name(event: RecoveryInput) -> str:
    return type(event.fact).__name__.lower()
