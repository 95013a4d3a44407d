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


async def test_opening_the_store_warns_when_the_server_would_let_the_outbox_bloat(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Either way round: this box's server runs without autovacuum, another may not.
    async with open_postgres_store(pg_url, min_size=1, max_size=1) as store:

        async def autovacuum(conn: Any) -> str:
            return str(await conn.fetchval("SELECT current_setting('autovacuum')"))

        setting = await store._tx("probe", autovacuum, alone=True)
    warned = [r for r in caplog.records if "autovacuum is off" in r.getMessage()]
    assert [r.levelname for r in warned] == (["WARNING"] if setting == "off" else [])
    assert all(r.name == "osago.store" for r in warned)
