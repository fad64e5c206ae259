"""Everything the services' schemas hold about one case, found by the `case_id` column."""
from __future__ import annotations

from typing import Any

import asyncpg

SCHEMAS = ("intake", "sla", "compensation", "followup")


async def case_rows(database_url: str, case_id: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE column_name = 'case_id' AND table_schema = ANY($1::text[]) ORDER BY 1, 2",
            list(SCHEMAS),
        )
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for t in tables:
            rows = await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}" WHERE case_id = $1', case_id)
            if rows:
                found[(t["table_schema"], t["table_name"])] = [dict(r) for r in rows]
        return found
    finally:
        await conn.close()
