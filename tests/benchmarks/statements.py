"""Statements executed per complaint per service, from PostgreSQL's `pg_stat_statements` (issue #15).

The view is cluster-wide; a snapshot reads the entries of one database (the benchmark's own,
fresh one), and the figure is the difference in `calls` between two snapshots divided by the
complaints handled between them. Services share one database user, so a statement is attributed to
a service by the schema its text names (`intake.`, `sla.`, `compensation.`, `followup.`: every
store and the shared inbox, outbox and timer SQL qualify their tables); statements that name none
(BEGIN, COMMIT, advisory locks, asyncpg's reset on release) are counted apart.

The extension must be loaded at server start (`shared_preload_libraries`; deploy/local/stack.sh
does so for the local stack from its next start) and created in a database the benchmark can read:
`locate()` says why not when it is not, and the benchmark reports "n/a" with that reason rather
than failing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from services import registry

SCHEMAS = {s.schema: s.name for s in (registry.INTAKE, registry.SLA, registry.COMPENSATION, registry.FOLLOWUP)}
_SCHEMA_IN_TEXT = re.compile(r"\b(" + "|".join(map(re.escape, SCHEMAS)) + r")\.[a-z_]", re.IGNORECASE)
NOT_LOADED = ("pg_stat_statements not loaded: restart the local PostgreSQL with make stack-down && make stack-up")
UNATTRIBUTED = "no schema named (BEGIN, COMMIT, locks, resets)"


@dataclass
class Snapshot:
    """`calls` and total execution milliseconds per (queryid, query text) of one database."""

    calls: dict[tuple[int, str], tuple[int, float]] = field(default_factory=dict)


@dataclass
class Source:
    """Where to read the counters: `url` is a database with the extension, `database` the benchmark's
    database whose entries count."""

    url: str
    database: str


async def _readable(url: str, create: bool) -> bool:
    conn = await asyncpg.connect(url)
    try:
        if create:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            except asyncpg.PostgresError:
                pass
        try:
            await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
            return True
        except asyncpg.PostgresError:
            return False
    finally:
        await conn.close()


async def preloaded(url: str) -> bool | None:
    """Whether the server preloads pg_stat_statements: `SHOW shared_preload_libraries` (superusers and
    pg_read_all_settings members may), else the command line of a PostgreSQL process on this machine
    (the local stack passes it with -c), else None: unknown."""
    conn = await asyncpg.connect(url)
    try:
        return "pg_stat_statements" in (await conn.fetchval("SHOW shared_preload_libraries") or "")
    except asyncpg.InsufficientPrivilegeError:
        pass
    finally:
        await conn.close()
    seen = False
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"postgres") and b"-D" in args:
            seen = True
            if any(b"pg_stat_statements" in arg for arg in args):
                return True
    return False if seen else None


async def locate(bench_url: str, base_url: str) -> Source | str:
    """Where `pg_stat_statements` can be read for the benchmark's database `bench_url`: in that
    database (creating the extension there when the user may: a superuser) or in `base_url`'s (where
    an administrator created it once: `CREATE EXTENSION pg_stat_statements`). Else a one-line reason:
    `NOT_LOADED` when the server was started without the library (or that cannot be told and the
    view is nowhere)."""
    conn = await asyncpg.connect(bench_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    for url, create in ((bench_url, True), (base_url, False)):
        if await _readable(url, create):
            return Source(url, database)
    if await preloaded(bench_url) is True:
        return ("pg_stat_statements is loaded but no database the benchmark reads has the extension: run "
                "CREATE EXTENSION pg_stat_statements as a superuser in the database of DATABASE_URL")
    return NOT_LOADED


async def snapshot(source: Source) -> Snapshot:
    """The current counters of the benchmark's database (this harness's own queries left out)."""
    conn = await asyncpg.connect(source.url)
    try:
        rows = await conn.fetch(
            "SELECT queryid, query, calls, total_exec_time FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) "
            "AND query NOT ILIKE '%pg_stat_statements%'", source.database)
    finally:
        await conn.close()
    return Snapshot({(r["queryid"] or 0, r["query"]): (r["calls"], r["total_exec_time"]) for r in rows})


def service_of(query: str) -> str:
    """The service whose schema the statement names first, else UNATTRIBUTED."""
    match = _SCHEMA_IN_TEXT.search(query)
    return SCHEMAS[match.group(1).lower()] if match else UNATTRIBUTED


def per_complaint(before: Snapshot, after: Snapshot, complaints: int, top: int = 8) -> dict[str, object]:
    """{"services": {service: {"statements": per complaint, "ms": execution ms per complaint}},
    "top": the `top` statements by calls, each {"service", "query" (first 120 characters),
    "per_complaint"}}."""
    services: dict[str, dict[str, float]] = {}
    rows = []
    for key, (calls, ms) in after.calls.items():
        calls0, ms0 = before.calls.get(key, (0, 0.0))
        delta = calls - calls0
        if delta <= 0:
            continue
        name = service_of(key[1])
        entry = services.setdefault(name, {"statements": 0.0, "ms": 0.0})
        entry["statements"] += delta / complaints
        entry["ms"] += (ms - ms0) / complaints
        rows.append({"service": name, "query": " ".join(key[1].split())[:120], "per_complaint": delta / complaints})
    rows.sort(key=lambda r: -r["per_complaint"])
    return {"services": services, "top": rows[:top]}
