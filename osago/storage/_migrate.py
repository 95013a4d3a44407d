"""Versioned SQL migrations (``migrations/NNNN_name.sql``), applied once, in order, at start.

Runs on the asyncio side of the bridge, in one transaction under an advisory lock so that
several processes starting together apply each migration exactly once.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["migrate", "migrations"]

_LOCK_KEY = 0x05A60  # arbitrary, constant: "osago migrations"


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, by version."""
    found = []
    for entry in resources.files("osago.storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(pool: Any) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied_now.append(version)
    return applied_now
