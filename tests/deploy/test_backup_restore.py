"""deploy/backup/backup.sh and restore.sh on the real server: the four schemas out and back, every
row and sequence as it was; an existing schema, a tampered archive and a bad role are refused."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest

from services import registry
from shared import db
from tests.support.servers import create_database, drop_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BACKUP, RESTORE = ROOT / "deploy" / "backup" / "backup.sh", ROOT / "deploy" / "backup" / "restore.sh"


def run(script: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATION_DATABASE_URL", "MIGRATION_GRANT_TO")}
    return subprocess.run(["bash", str(script), *args], env={**env, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=300)


async def snapshot(url: str) -> dict[str, list]:
    """Every row of every table of the four schemas, in a stable order, and each sequence's value."""
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, list] = {}
        for schema in registry.SCHEMAS:
            for table in [r["tablename"] for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema)]:
                rows = await conn.fetch(f"SELECT to_jsonb(t) AS row FROM {schema}.{table} t")
                out[f"{schema}.{table}"] = sorted(json.dumps(json.loads(r["row"]), sort_keys=True) for r in rows)
            for seq in [r["sequencename"] for r in await conn.fetch(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = $1", schema)]:
                out[f"{schema}.{seq}"] = [await conn.fetchval(f"SELECT last_value FROM {schema}.{seq}")]
        return out
    finally:
        await conn.close()


async def fill(url: str) -> None:
    """The four schemas migrated, with rows in the tables every service has (all column types)."""
    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        for entry in registry.SERVICES:
            await db.migrate(pool, entry.schema, importlib.import_module(f"services.{entry.name}.store").MIGRATIONS)
            await pool.execute(f"INSERT INTO {entry.schema}.processed_events (event_id) SELECT 'ev-' || g FROM generate_series(1, 50) g")
            await pool.execute(f"INSERT INTO {entry.schema}.outbox (topic, key, payload) VALUES ('t', 'CRM-1'::bytea, '{{\"a\": 1}}'::bytea), ('t', NULL, '\\x00ff'::bytea)")
            await pool.execute(f"INSERT INTO {entry.schema}.timers (key, kind, due_at, payload) VALUES ($1, 'breach', $2, $3::jsonb)",
                               f"{entry.name}:t1", datetime(2026, 11, 29, 12, tzinfo=timezone.utc), json.dumps({"case_id": "CRM-1"}))
    finally:
        await pool.close()


async def test_the_schemas_come_back_as_they_were(ns, servers, tmp_path):
    await fill(ns.database_url)
    before = await snapshot(ns.database_url)
    assert before["sla.processed_events"] and before["compensation.outbox"] and before["followup.schema_version"]

    taken = run(BACKUP, str(tmp_path / "b"), url=ns.database_url)
    assert taken.returncode == 0, taken.stderr
    manifest = (tmp_path / "b" / "manifest.txt").read_text()
    assert [line.split()[0] for line in manifest.splitlines()] == [*registry.SCHEMAS, "taken_at"]

    name = f"r{uuid.uuid4().hex[:12]}"
    target = await create_database(servers.database_url, name)
    if target == servers.database_url:
        pytest.skip("the test database's user may not create databases")
    try:
        restored = run(RESTORE, str(tmp_path / "b"), url=target)
        assert restored.returncode == 0, restored.stderr
        assert await snapshot(target) == before
        conn = await asyncpg.connect(target)
        try:  # the outbox's ids continue after the restored ones
            new_id = await conn.fetchval("INSERT INTO sla.outbox (topic, payload) VALUES ('t', 'x'::bytea) RETURNING id")
            assert new_id > max(json.loads(r)["id"] for r in before["sla.outbox"])
        finally:
            await conn.close()

        again = run(RESTORE, str(tmp_path / "b"), url=target)
        assert again.returncode == 1 and "schema intake exists" in again.stderr
        clean = run(RESTORE, str(tmp_path / "b"), "--clean", url=target)
        assert clean.returncode == 0, clean.stderr
        assert await snapshot(target) == before

        with open(tmp_path / "b" / "sla.dump", "ab") as archive:
            archive.write(b"tampered")
        broken = run(RESTORE, str(tmp_path / "b"), "--clean", url=target)
        assert broken.returncode == 1 and "does not match the manifest" in broken.stderr
        assert await snapshot(target) == before, "nothing is touched when an archive is bad"

        bad_role = run(RESTORE, str(tmp_path / "b"), "--grant-to", "x; DROP SCHEMA sla", url=target)
        assert bad_role.returncode == 2 and "invalid role name" in bad_role.stderr
    finally:
        await drop_database(servers.database_url, name)
