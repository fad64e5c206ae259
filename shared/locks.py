"""Transaction-scoped advisory locks by text key: the one way the services serialise the work on
one case, customer or budget done by two batches, two instances, or a batch and a timer.

A lock is named by a namespace and a key (`AdvisoryLocks("followup:customer")` and a customer id)
and is PostgreSQL's transaction-level advisory lock on the 64-bit
`hashtextextended(namespace || ':' || key, 0)`. It is held until the transaction commits or rolls
back; there is nothing to release. Nothing stops a writer that does not take the lock: every code
path that changes what a lock protects must take it first.

- **Namespaces keep services apart.** A namespace is a service's name, or `service:purpose`
  (`sla`, `compensation:budget`). Keys of different namespaces never name the same lock, except
  by a 64-bit hash collision: the hashed text is the namespace, a colon and the key, and a
  namespace's colon is at a fixed place. A service therefore uses either its bare name or names
  with a purpose, never both (`sla:case` with key `x` and `sla` with key `case:x` are one lock);
  `AdvisoryLocks` refuses such a pair in one process, and the tests check the four services'
  namespaces together.
- **A batch's keys are taken in one statement, in sorted order.** Two transactions that each
  take locks one by one in their own order deadlock as soon as one holds `a` waiting for `b` and
  the other holds `b` waiting for `a`. When every transaction takes its keys in one global order,
  the one holding the highest-ranked lock never waits for a lock held by another, so no such
  circle can form. The order is byte order: Python's `sorted` on `str` (code point order, which
  is UTF-8 byte order) and SQL's `ORDER BY k COLLATE "C"` agree, whatever the database's locale
  (`ordered` gives the order in Python, `lock` sorts in SQL whatever order it is given). Locks
  of different namespaces are taken in a fixed order by the caller (sla and followup: cases,
  then customers; compensation: cases, then budgets).
- **Take the lock in a statement of its own, before reading.** Under READ COMMITTED each
  statement sees the data committed when it started. A statement that waits for a lock and reads
  in the same breath reads what was there before the wait; the next statement sees what the
  holder committed.
- **The try-lock never waits.** It takes those keys nobody else holds and returns them; the
  caller puts the rest of its work back (a timer fires again on the next claim) rather than wait
  while holding rows the lock's holder may be waiting for.

Row locks (`SELECT ... FOR UPDATE`) remain the natural way to read a row that the same
transaction updates next; they are not a substitute for these locks where the row may not exist
yet or where one lock stands for many rows.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import asyncpg

_NAMESPACE = re.compile(r"[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)?")

# The lock's id: the namespace ($1) and the key joined by a colon, hashed to a bigint.
_ID = "hashtextextended($1::text || ':' || k, 0)"
# The keys in byte order, whatever order the array came in (unnest keeps the array's order, but
# the ORDER BY states it where the locks are taken).
_SORTED = '(SELECT k FROM unnest($2::text[]) AS k ORDER BY k COLLATE "C") AS sorted_keys'
_LOCK = f"SELECT count(pg_advisory_xact_lock({_ID})) FROM {_SORTED}"
# pg_try_advisory_xact_lock is volatile: PostgreSQL never pushes it below the sort.
_TRY_LOCK = f"SELECT k FROM {_SORTED} WHERE pg_try_advisory_xact_lock({_ID})"

_namespaces: set[str] = set()


def _check(namespace: str) -> None:
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"lock namespace {namespace!r}: write `service` or `service:purpose` "
                         "(lower case letters, digits, '-' and '_')")
    service = namespace.split(":")[0]
    for other in _namespaces:
        if other != namespace and (other == service or namespace == other.split(":")[0]):
            raise ValueError(f"lock namespaces {other!r} and {namespace!r} may name the same lock: "
                             "a service uses its bare name or names with a purpose, not both")


def ordered(keys: Iterable[str]) -> list[str]:
    """Each key once, in the order locks are taken: byte order (= COLLATE "C" in PostgreSQL)."""
    return sorted(set(keys))


class AdvisoryLocks:
    """The advisory locks of one namespace (see the module doc): `lock` waits for all of a batch's
    keys, taken in one statement in sorted order; `try_lock` takes those that are free."""

    __slots__ = ("namespace",)

    def __init__(self, namespace: str) -> None:
        _check(namespace)
        _namespaces.add(namespace)
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"AdvisoryLocks({self.namespace!r})"

    async def lock(self, conn: asyncpg.Connection, keys: Iterable[str]) -> None:
        """Waits for, then holds until the transaction ends, the lock of every key, taken in byte
        order in one statement (so two batches never wait on each other in a circle). Read what
        the locks protect in later statements, not in this one."""
        wanted = _in_transaction(conn, keys)
        if wanted:
            await conn.execute(_LOCK, self.namespace, wanted)

    async def try_lock(self, conn: asyncpg.Connection, keys: Iterable[str]) -> set[str]:
        """Takes, without waiting, the locks of those keys nobody else holds (held until the
        transaction ends) and returns those keys; a lock this transaction already holds counts
        as obtained."""
        wanted = _in_transaction(conn, keys)
        if not wanted:
            return set()
        rows = await conn.fetch(_TRY_LOCK, self.namespace, wanted)
        return {r["k"] for r in rows}


def _in_transaction(conn: asyncpg.Connection, keys: Iterable[str]) -> list[str]:
    if not conn.is_in_transaction():
        # Outside a transaction the lock would end with its own statement: a silent no-op.
        raise RuntimeError("advisory transaction locks need a transaction (conn.transaction())")
    return ordered(keys)
