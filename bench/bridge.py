"""CPU per crossing of the asyncio bridge: one-statement transactions through the store.

Every PostgreSQL call of a role is one crossing into trio-asyncio (``PostgresStore._tx``).
This runs ``--warm`` of them (so the loop is as a long-running role's is: its timer heap
included), then measures ``--measured`` more, and as many statements inside single
crossings, by this process's CPU time. ``SELECT 1``: what is left is the bridge, asyncpg
and the pool, not the server's work.

    .venv/bin/python bench/bridge.py [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osago.storage.postgres import open_postgres_store


async def main(url: str, warm: int, measured: int) -> None:
    async with open_postgres_store(url, min_size=2, max_size=4) as store:

        async def one(conn: Any) -> Any:
            return await conn.fetchval("SELECT 1")

        async def ten(conn: Any) -> None:
            for _ in range(10):
                await conn.fetchval("SELECT 1")

        for _ in range(warm):
            await store._tx("bench", one, alone=True)
        start = time.process_time()
        for _ in range(measured):
            await store._tx("bench", one, alone=True)
        crossing = (time.process_time() - start) / measured
        start = time.process_time()
        for _ in range(measured // 10):
            await store._tx("bench", ten, alone=True)
        statement = (time.process_time() - start) / (measured // 10 * 10)
        timers = len(store._loop._timers)  # trio-asyncio's heap: what every pass sees
    print(
        f"CPU per one-statement crossing {crossing * 1e6:.0f} us, per statement inside one"
        f" crossing {statement * 1e6:.0f} us; {timers} timers in the bridge loop's heap"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--warm", type=int, default=15000)
    p.add_argument("--measured", type=int, default=5000)
    a = p.parse_args()
    trio.run(main, a.url, a.warm, a.measured)
