"""How the store's pooled sessions are set up on the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from osago.storage.postgres import open_postgres_store

pytestmark = pytest.mark.integration


async def test_pooled_sessions_plan_index_lookups_even_on_empty_tables(pg_url: str) -> None:
    # A plan cached while the tables were empty kept sequential scans as they grew
    # (bench/capacity.py: most of PostgreSQL's CPU). Planning every call cured that at the
    # price of planning being half of PostgreSQL's CPU; each session now keeps one generic
    # plan per statement, and that plan must use the index however small the table is now.
    async def probe(conn: Any) -> tuple[Any, str]:
        settings = await conn.fetchrow(
            "SELECT current_setting('plan_cache_mode') AS plans, current_setting('jit') AS jit"
        )
        await conn.execute(
            "PREPARE osago_probe (uuid[]) AS"
            " SELECT * FROM exchanges WHERE correlation_id = ANY($1::uuid[])"
        )
        try:
            plan = await conn.fetch("EXPLAIN EXECUTE osago_probe ('{}')")
        finally:
            await conn.execute("DEALLOCATE osago_probe")
        return settings, "\n".join(r[0] for r in plan)

    async with open_postgres_store(pg_url, min_size=2, max_size=2) as store:
        results = [await store._tx("probe", probe, alone=True) for _ in range(3)]
    assert {(s["plans"], s["jit"]) for s, _ in results} == {("force_generic_plan", "off")}
    for _, plan in results:
        assert "Index Scan" in plan, plan
        assert "Seq Scan" not in plan, plan
