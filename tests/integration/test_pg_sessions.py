"""How the store's pooled sessions are set up on the real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from osago.storage.postgres import open_postgres_store

pytestmark = pytest.mark.integration


async def test_pooled_sessions_plan_each_statement_for_its_arguments(pg_url: str) -> None:
    # A generic plan cached while the tables were empty kept sequential scans as they grew
    # (bench/capacity.py: most of PostgreSQL's CPU); every session must plan per call.
    async def probe(conn: Any) -> Any:
        return await conn.fetchrow(
            "SELECT current_setting('plan_cache_mode') AS plans, current_setting('jit') AS jit"
        )

    async with open_postgres_store(pg_url, min_size=2, max_size=2) as store:
        rows = [await store._tx("probe", probe, alone=True) for _ in range(3)]
    assert {(r["plans"], r["jit"]) for r in rows} == {("force_custom_plan", "off")}
