"""Everything the services' schemas hold about one case: the rows `helpdesk case show` reads.

`case_rows` finds every table of the services' schemas (services/registry.py) with a `case_id`
column, plus the rows tied to the case another way: compensation's approval answers (by decision
id) and each schema's armed timers (sla by the clocks' `armed_timers`, followup by follow-up id,
compensation by decision id). `to_json` writes them for machines: datetimes ISO 8601 with their offset, decimals
as strings (exact), intervals as ISO 8601 durations, jsonb columns as JSON.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic_core import to_jsonable_python

from services.registry import SCHEMAS

Rows = dict[str, list[dict[str, Any]]]
"""Table name as `schema.table` → that table's rows for the case, each row column → value."""


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def case_rows(database_url: str, case_id: str) -> Rows:
    """The case's rows in every service schema, keyed `schema.table`; tables without a row for it
    are left out, so `{}` means no service knows the case. jsonb columns come decoded.

    Raises asyncpg / OSError errors when the database cannot be reached."""
    conn = await asyncpg.connect(database_url)
    try:
        await _json_codecs(conn)
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE column_name = 'case_id' AND table_schema = ANY($1::text[]) ORDER BY 1, 2",
            list(SCHEMAS),
        )
        found: Rows = {}
        for t in tables:
            rows = await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}" WHERE case_id = $1 ORDER BY 1',
                                    case_id)
            if rows:
                found[f'{t["table_schema"]}.{t["table_name"]}'] = [dict(r) for r in rows]
        if found:
            await _linked_rows(conn, found)
        return found
    finally:
        await conn.close()


async def _linked_rows(conn: asyncpg.Connection, found: Rows) -> None:
    """Rows without a case_id column that belong to the case: approval answers and armed timers."""
    decisions = [r["decision_id"] for r in found.get("compensation.decisions", [])]
    followups = [r["followup_id"] for r in found.get("followup.followups", [])]
    sla_timers = [key for r in found.get("sla.clocks", []) for key in (r.get("armed_timers") or [])]
    queries = [
        ("compensation.approval_answers", "decision_id", decisions, "received_at"),
        ("sla.timers", "key", sla_timers, "due_at"),
        ("compensation.timers", "key", [f"escalate:{d}" for d in decisions], "due_at"),
        ("followup.timers", "key", [f"followup:{f}" for f in followups], "due_at"),
    ]
    for table, column, values, order in queries:
        if not values or not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            continue
        schema, name = table.split(".")
        rows = await conn.fetch(f'SELECT * FROM "{schema}"."{name}" WHERE {column} = ANY($1::text[]) ORDER BY {order}',
                                values)
        if rows:
            found[table] = [dict(r) for r in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()  # asyncpg gives timestamptz in UTC: "+00:00"
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return to_jsonable_python(value)  # ISO 8601 duration, "PT6S"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(case_id: str, rows: Rows) -> str:
    """`{"case_id": …, "tables": {"schema.table": [row, …]}}` as indented JSON (see the module doc)."""
    return json.dumps({"case_id": case_id, "tables": rows}, default=_plain, indent=2, ensure_ascii=False)
