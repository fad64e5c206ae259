"""Schema changes by a DDL role, the service by a runtime role that cannot change the schema:
`helpdesk migrate --grant-to ROLE` migrates and grants; a service with MIGRATE_ON_START=false waits
until its schema is migrated, and then works with read/write rights only."""
from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli import app
from services.sla import store as sla_store
from shared import db
from shared.service import ServiceRuntime
from shared.settings import Settings, get_settings

pytestmark = pytest.mark.integration
runner = CliRunner()


def as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
async def roles(ns):
    """A DDL role (may create schemas in the test database) and a runtime role (may only connect)."""
    suffix = uuid.uuid4().hex[:8]
    ddl, app_role, password = f"ddl_{suffix}", f"app_{suffix}", uuid.uuid4().hex
    admin = await asyncpg.connect(ns.database_url)
    try:
        can = await admin.fetchval("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user")
        if not can:
            pytest.skip("the test database's user may not create roles (the local stack's may: make stack-up)")
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"CREATE ROLE {ddl} LOGIN PASSWORD '{password}'; CREATE ROLE {app_role} LOGIN PASSWORD '{password}'")
        await admin.execute(f'GRANT CREATE, CONNECT ON DATABASE "{database}" TO {ddl}; '
                            f'GRANT CONNECT ON DATABASE "{database}" TO {app_role}')
        yield as_user(ns.database_url, ddl, password), as_user(ns.database_url, app_role, password), app_role
    finally:
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ddl):
            owner = await asyncpg.connect(as_user(ns.database_url, ddl, password))
            await owner.execute(f"DROP SCHEMA IF EXISTS {sla_store.SCHEMA} CASCADE")  # its grants go with it
            await owner.close()
        database = await admin.fetchval("SELECT current_database()")
        for role in (app_role, ddl):
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}; DROP ROLE {role}')
        await admin.close()


def migrate_cli(*args: str, env: dict[str, str]) -> object:
    get_settings.cache_clear()
    try:
        return runner.invoke(app, ["migrate", *args], env=env)
    finally:
        get_settings.cache_clear()


async def test_the_runtime_role_waits_for_the_ddl_role_and_then_only_reads_and_writes(roles):
    ddl_url, app_url, app_role = roles
    runtime = ServiceRuntime("sla", schema=sla_store.SCHEMA, migrations=sla_store.MIGRATIONS,
                             settings=Settings(database_url=app_url, migrate_on_start=False))
    runtime.pool = await db.create_pool(app_url, min_size=1, max_size=2)
    try:
        waiting = asyncio.ensure_future(runtime._wait_for_migrations(every=0.05))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "it must not start on an unmigrated schema"

        check = await asyncio.to_thread(migrate_cli, "sla", "--check", env={"DATABASE_URL": app_url})
        assert check.exit_code == 1 and "sla: pending 0, 1, 2" in check.output

        done = await asyncio.to_thread(migrate_cli, "sla", "--grant-to", app_role,
                                       env={"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": ddl_url})
        assert done.exit_code == 0, done.output
        assert f"sla: 3 migration(s) applied, schema sla at version 2; rights granted to {app_role}" in done.output
        await asyncio.wait_for(waiting, 5)

        again = await asyncio.to_thread(migrate_cli, "sla", env={"DATABASE_URL": ddl_url})
        assert "sla: 0 migration(s) applied" in again.output

        async with runtime.pool.acquire() as conn:
            await conn.execute(f"INSERT INTO {sla_store.SCHEMA}.processed_events (event_id) VALUES ('e-1')")
            assert await db.first_times(conn, sla_store.SCHEMA, ["e-1", "e-2"]) == {"e-2"}
            await conn.execute(f"DELETE FROM {sla_store.SCHEMA}.processed_events WHERE event_id = 'e-2'")
            for ddl in (f"CREATE TABLE {sla_store.SCHEMA}.mine (x int)", f"DROP TABLE {sla_store.SCHEMA}.timers",
                        f"ALTER TABLE {sla_store.SCHEMA}.timers ADD COLUMN y int"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(ddl)
    finally:
        await runtime.pool.close()


def test_a_role_name_that_would_need_quoting_is_refused():
    result = runner.invoke(app, ["migrate", "--grant-to", 'app"; DROP TABLE x; --'])
    assert result.exit_code == 2 and "invalid role name" in result.output
    assert runner.invoke(app, ["migrate", "nope"]).exit_code == 2
