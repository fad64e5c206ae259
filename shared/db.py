"""asyncpg pool, per-service schemas and an ordered-SQL migration runner.

Each service owns one PostgreSQL schema. Migrations are `(version, sql)` pairs applied in order
inside one transaction each, recorded in `<schema>.schema_version`; an advisory lock makes two
instances starting at once apply them only once.
"""
from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

# Tables every service has: processed inbound events, the outbox, and durable timers.
COMMON_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.processed_events (
    event_id     text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.timers (
    key      text COLLATE "C" PRIMARY KEY,
    kind     text NOT NULL,
    due_at   timestamptz NOT NULL,
    payload  jsonb NOT NULL DEFAULT '{{}}',
    attempts int NOT NULL DEFAULT 0,
    armed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS timers_due_at ON {schema}.timers (due_at);
"""


# Idempotent DDL every start applies after the versioned migrations (cheap once done). A BRIN
# index on processed_at: the inbox inserts in time order, so a few pages of summary let the prune
# find old ids without the cost of a second B-tree on the hot insert path.
COMMON_EVERY_START = """
CREATE INDEX IF NOT EXISTS processed_events_processed_at
    ON {schema}.processed_events USING brin (processed_at);
"""

PRUNE_CHUNK = 10_000  # rows per DELETE: short transactions, no long lock on the inbox's table


def check_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=60)


def _steps(schema: str, migrations: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    check_schema(schema)
    steps = [(0, COMMON_TABLES), *migrations]
    versions = [v for v, _ in steps]
    if versions != sorted(set(versions)):
        raise ValueError(f"migrations of {schema} must have increasing, unique versions: {versions}")
    return steps


async def pending_migrations(pool: asyncpg.Pool, schema: str, migrations: Sequence[tuple[int, str]]) -> list[int]:
    """The versions of `migrations` (and the common tables, version 0) not applied to `schema` yet,
    in order; every version when the schema does not exist. Read-only: what a service started
    with MIGRATE_ON_START=false checks before it runs."""
    steps = _steps(schema, migrations)
    exists = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_version")
    done = {r["version"] for r in await pool.fetch(f"SELECT version FROM {schema}.schema_version")} if exists else set()
    return [v for v, _ in steps if v not in done]


def check_role(role: str) -> str:
    """A PostgreSQL role name this project will put in a GRANT: lower-case letters, digits and
    underscores (ValueError otherwise), so it never needs quoting."""
    if not _SCHEMA_NAME.match(role):
        raise ValueError(f"invalid role name {role!r}: lower-case letters, digits and _ only")
    return role


async def migrate(pool: asyncpg.Pool, schema: str, migrations: Sequence[tuple[int, str]],
                  grant_to: str | None = None) -> int:
    """Applies the not yet applied migrations; `{schema}` in the SQL is the service's schema.
    Returns how many were applied.

    `grant_to`: a runtime role that must not own or change the schema (the DDL role runs this,
    `helpdesk migrate`): it gets USAGE on the schema and SELECT, INSERT, UPDATE, DELETE on its
    tables and USAGE, SELECT, UPDATE on its sequences, now and (default privileges) for tables
    later migrations create."""
    steps = _steps(schema, migrations)
    applied = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"migrate:{schema}".encode()))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_version "
            "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_version")}
        for version, sql in steps:
            if version in done:
                continue
            await conn.execute(sql.format(schema=schema))
            await conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES ($1)", version)
            applied += 1
        await conn.execute(COMMON_EVERY_START.format(schema=schema))
        if grant_to is not None:
            role = check_role(grant_to)
            await conn.execute(
                f"GRANT USAGE ON SCHEMA {schema} TO {role}; "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; "
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}; "
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}; "
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}"
            )
    if applied:
        log.info("schema %s: applied %d migration(s)", schema, applied)
    return applied


async def first_times(conn: asyncpg.Connection, schema: str, event_ids: Sequence[str]) -> set[str]:
    """Records inbound event ids in one round trip; returns those not processed before (the rest are
    redeliveries). An id twice in `event_ids` is returned once; the caller treats its second
    occurrence as a redelivery. Call it inside the transaction that makes the state change, so
    both commit or neither."""
    rows = await conn.fetch(
        f"INSERT INTO {schema}.processed_events (event_id) SELECT unnest($1::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


async def prune_processed_events(pool: asyncpg.Pool, schema: str, older_than: datetime,
                                 chunk: int = PRUNE_CHUNK) -> int:
    """Forgets the inbound event ids recorded before `older_than` (zone-aware), `chunk` rows per
    transaction so the inbox never waits long; returns how many were deleted.

    Why not daily partitions dropped whole: the table's primary key on `event_id` is what makes a
    redelivery a no-op, and PostgreSQL enforces a unique key across partitions only when it
    includes the partition key (the day), which would let the same id in again the next day."""
    check_schema(schema)
    if older_than.tzinfo is None:
        raise ValueError("older_than must be zone-aware")
    total = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await conn.fetchval(
                f"WITH gone AS (DELETE FROM {schema}.processed_events WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {schema}.processed_events WHERE processed_at < $1 LIMIT $2)) RETURNING 1) "
                "SELECT count(*) FROM gone",
                older_than, chunk,
            )
        total += deleted
        if deleted < chunk:
            return total
