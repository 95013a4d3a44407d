"""What a capacity step reads back from PostgreSQL: the offers stored, and where each job's
time went before its insurer had it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import trio
import trio_asyncio

__all__ = ["db_after_answer", "db_exchanges_of", "db_offers", "db_stages", "until_offers_came"]


async def _fetch(url: str, query: str, ids: list[str]) -> list[Any]:
    """The rows of ``query`` over these ids (``$1``, uuids), on a connection of its own."""
    async with trio_asyncio.open_loop() as loop:
        conn = await loop.run_aio_coroutine(asyncpg.connect(url))
        try:
            rows: list[Any] = await loop.run_aio_coroutine(
                conn.fetch(query, [uuid.UUID(i) for i in ids])
            )
            return rows
        finally:
            await loop.run_aio_coroutine(conn.close())


async def _fetchrow(url: str, query: str, ids: list[str]) -> Any:
    """The one row of ``query`` over these ids."""
    return (await _fetch(url, query, ids))[0]


async def db_offers(url: str, ids: list[str]) -> tuple[int, int]:
    """(offers stored, exchanges) of these calculations."""
    row = await _fetchrow(
        url,
        "SELECT count(*) FILTER (WHERE outcome = 'offer') AS offers, count(*) AS n"
        " FROM exchanges WHERE calculation_id = ANY($1::uuid[])",
        ids,
    )
    return int(row["offers"]), int(row["n"])


async def db_exchanges_of(url: str, correlation_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(calculation id, insurer) of the exchanges with these correlation ids, by id."""
    rows = await _fetch(
        url,
        "SELECT correlation_id::text AS x, calculation_id::text AS c, insurer FROM exchanges"
        " WHERE correlation_id = ANY($1::uuid[])",
        correlation_ids,
    )
    return {r["x"]: (r["c"], r["insurer"]) for r in rows}


async def until_offers_came(
    url: str, ids: list[str], delivered: Callable[[], int], seconds: int
) -> None:
    """Wait, up to ``seconds``, until ``delivered()`` counts every offer the database holds
    for these calculations (a late one arrives after `completed`)."""
    for _ in range(seconds):
        stored, _ = await db_offers(url, ids)
        if delivered() >= stored:
            return
        await trio.sleep(1.0)


# Where a job's time goes before the insurer has it, per exchange (seconds): the api's
# publishing, the broker and the worker's receipt and load (commit -> picked up), and the
# worker's own start (-> first submitted), from the trail each exchange keeps. (The outbox's
# `sent_at` is no measure: it is written in a later batch, up to `write_linger` late.)
_STAGES = """
WITH x AS (
  SELECT c.created_at AS created,
    (SELECT min((s->>0)::float8) FROM jsonb_array_elements(e.steps) s
       WHERE s->>1 LIKE 'picked up%') AS picked,
    (SELECT min((s->>0)::float8) FROM jsonb_array_elements(e.steps) s
       WHERE s->>1 LIKE 'submitted%') AS submitted
  FROM exchanges e JOIN calculations c ON c.id = e.calculation_id
  WHERE c.id = ANY($1::uuid[]))
SELECT array_agg(picked - created) FILTER (WHERE picked IS NOT NULL) AS pickup,
       array_agg(submitted - picked) FILTER (WHERE submitted IS NOT NULL) AS submit
FROM x
"""


async def db_stages(url: str, ids: list[str]) -> dict[str, list[float]]:
    """Per exchange, seconds spent in each stage before the insurer had the job."""
    row = await _fetchrow(url, _STAGES, ids)
    return {k: list(row[k] or []) for k in ("pickup", "submit")}


Event = tuple[str, int]  # (calculation id, seq): an event's identity


async def db_after_answer(
    url: str, ids: list[str]
) -> tuple[dict[Event, float], dict[Event, float]]:
    """When each event of these calculations began to be settled (its outbox row's
    ``created_at``: the settle's clock, after its linger and queue), and when a notifier
    first pushed it (its trail's ``pushes``). An answer's way to the user, in stages."""
    rows = await _fetch(
        url,
        "SELECT body, created_at FROM outbox"
        " WHERE calculation_id = ANY($1::uuid[]) AND destination LIKE '/topic/%'",
        ids,
    )
    settled: dict[Event, float] = {}
    for r in rows:
        for line in bytes(r["body"]).splitlines():  # a message packs events one per line
            event = json.loads(line)
            if "seq" in event:
                settled[(event["calculation_id"], event["seq"])] = r["created_at"]
    pushes = await _fetch(
        url,
        "SELECT calculation_id::text AS c, seq, min(at) AS at FROM pushes"
        " WHERE calculation_id = ANY($1::uuid[]) GROUP BY 1, 2",
        ids,
    )
    return settled, {(r["c"], r["seq"]): r["at"] for r in pushes}
