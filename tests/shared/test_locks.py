"""shared/locks.py on real PostgreSQL: a held lock makes the next taker wait (and the try-lock
fail) until commit, keys are taken in byte order, namespaces never share a lock, and the services'
lock ids are the ones they used before the helper existed."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared import locks
from shared.locks import AdvisoryLocks
from tests.support.servers import create_database, drop_database

pytestmark = pytest.mark.integration
CASES = AdvisoryLocks("lockstest:case")
CUSTOMERS = AdvisoryLocks("lockstest:customer")


@pytest.fixture
async def connect(servers) -> AsyncIterator:
    """Opens connections to a database of this test's own (advisory locks are per database)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    url = await create_database(servers.database_url, name)
    opened: list[asyncpg.Connection] = []

    async def open_one() -> asyncpg.Connection:
        opened.append(await asyncpg.connect(url))
        return opened[-1]

    yield open_one
    for conn in opened:
        await conn.close()
    await drop_database(servers.database_url, name)


async def begin(conn: asyncpg.Connection) -> asyncpg.transaction.Transaction:
    tx = conn.transaction()
    await tx.start()
    return tx


async def free(conn: asyncpg.Connection, space: AdvisoryLocks, *keys: str) -> set[str]:
    """Which of `keys` nobody holds, asked from `conn` in a transaction that gives them back at once."""
    async with conn.transaction():
        return await space.try_lock(conn, keys)


async def still_waiting(task: asyncio.Task, seconds: float = 0.3) -> bool:
    await asyncio.sleep(seconds)
    return not task.done()


async def test_a_held_lock_makes_the_next_taker_wait_until_commit(connect):
    first, second = await connect(), await connect()
    tx = await begin(first)
    await CASES.lock(first, ["c1", "c2"])

    async def take() -> None:
        async with second.transaction():
            await CASES.lock(second, ["c2", "c3"])

    waiting = asyncio.create_task(take())
    assert await still_waiting(waiting)
    await tx.commit()
    await asyncio.wait_for(waiting, 5)


async def test_a_rollback_releases_too(connect):
    first, second = await connect(), await connect()
    tx = await begin(first)
    await CASES.lock(first, ["c1"])
    assert await free(second, CASES, "c1") == set()
    await tx.rollback()
    assert await free(second, CASES, "c1") == {"c1"}


async def test_the_try_lock_takes_the_free_keys_and_fails_on_held_ones_until_commit(connect):
    first, second = await connect(), await connect()
    tx = await begin(first)
    await CASES.lock(first, ["held"])
    assert await free(second, CASES, "held", "free", "free") == {"free"}
    # Its own locks count as obtained.
    assert await CASES.try_lock(first, ["held", "other"]) == {"held", "other"}
    await tx.commit()
    assert await free(second, CASES, "held", "free", "other") == {"held", "free", "other"}


async def test_the_try_lock_holds_what_it_obtained_until_commit(connect):
    first, second = await connect(), await connect()
    tx = await begin(first)
    assert await CASES.try_lock(first, ["a", "b"]) == {"a", "b"}
    assert await free(second, CASES, "a", "b", "c") == {"c"}
    await tx.commit()
    assert await free(second, CASES, "a", "b") == {"a", "b"}


async def test_keys_are_taken_in_byte_order_whatever_order_they_come_in(connect):
    holder, taker, observer = await connect(), await connect(), await connect()
    tx = await begin(holder)
    await CASES.lock(holder, ["z"])
    # Byte order (COLLATE "C"): "Z" < "z" < "ä" < "é". A locale's order (ä, é before z) would take
    # the accented keys before waiting; byte order takes "Z", then waits at "z", holding no more.
    keys = ["é", "z", "ä", "Z"]
    assert locks.ordered(keys) == ["Z", "z", "ä", "é"]
    in_c = await observer.fetchval('SELECT array_agg(k ORDER BY k COLLATE "C") FROM unnest($1::text[]) AS k', keys)
    assert list(in_c) == locks.ordered(keys)

    async def take() -> None:
        async with taker.transaction():
            await CASES.lock(taker, keys)

    waiting = asyncio.create_task(take())
    assert await still_waiting(waiting)
    assert await free(observer, CASES, "Z", "ä", "é") == {"ä", "é"}
    await tx.commit()
    await asyncio.wait_for(waiting, 5)


async def test_two_batches_locking_the_same_keys_in_opposite_orders_never_deadlock(connect):
    a, b = await connect(), await connect()
    keys = [f"case-{i}" for i in range(20)]

    async def batch(conn: asyncpg.Connection, order: list[str]) -> None:
        for _ in range(15):
            async with conn.transaction():
                await CASES.lock(conn, order)
                await asyncio.sleep(0.005)

    await asyncio.wait_for(asyncio.gather(batch(a, keys), batch(b, keys[::-1])), 30)


async def test_namespaces_never_share_a_lock(connect):
    first, second = await connect(), await connect()
    tx = await begin(first)
    await CASES.lock(first, ["x", "customer:y"])
    assert await free(second, CUSTOMERS, "x") == {"x"}
    assert await free(second, CASES, "x") == set()
    # "lockstest:case" + ":customer:y" is not "lockstest:customer" + ":y": the colon is at a fixed place.
    assert await free(second, CUSTOMERS, "y") == {"y"}
    await tx.commit()


@pytest.mark.parametrize("namespace, sql_key", [
    ("sla", "'sla:' || $1"),
    ("followup:case", "'followup:case:' || $1"),
    ("followup:customer", "'followup:customer:' || $1"),
])
async def test_the_services_keep_the_lock_ids_they_used_before(connect, namespace, sql_key):
    # An instance of the previous release and one of this release (a rolling update) still exclude each other.
    old, new = await connect(), await connect()
    tx = await begin(old)
    await old.execute(f"SELECT pg_advisory_xact_lock(hashtextextended({sql_key}, 0))", "k1")
    assert await free(new, AdvisoryLocks(namespace), "k1", "k2") == {"k2"}
    await tx.commit()


def test_the_four_services_namespaces_are_distinct_and_cannot_collide():
    from services.compensation import store as compensation
    from services.followup import store as followup
    from services.intake import store as intake
    from services.sla import store as sla

    spaces = [v.namespace for m in (intake, sla, compensation, followup) for v in vars(m).values()
              if isinstance(v, AdvisoryLocks)]
    assert sorted(spaces) == ["compensation:budget", "compensation:case", "followup:case", "followup:customer",
                              "intake:case", "sla"]
    # Importing them together passed AdvisoryLocks' check; a service's bare name next to one of its
    # purposes would not.
    with pytest.raises(ValueError, match="may name the same lock"):
        AdvisoryLocks("sla:case")
    with pytest.raises(ValueError, match="may name the same lock"):
        AdvisoryLocks("followup")


@pytest.mark.parametrize("namespace", ["", "Sla", "sla:", ":case", "a:b:c", "sla case", "sla:ca$e"])
def test_a_namespace_is_a_service_or_service_and_purpose(namespace):
    with pytest.raises(ValueError, match="service:purpose"):
        AdvisoryLocks(namespace)


async def test_outside_a_transaction_is_refused_and_no_keys_lock_nothing(connect):
    conn = await connect()
    with pytest.raises(RuntimeError, match="transaction"):
        await CASES.lock(conn, ["a"])
    with pytest.raises(RuntimeError, match="transaction"):
        await CASES.try_lock(conn, ["a"])
    async with conn.transaction():
        await CASES.lock(conn, [])
        assert await CASES.try_lock(conn, []) == set()
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
