"""Settling on what a PostgreSQL store already knows of a calculation, on the real database.

A store that created or last wrote a calculation plans the next answer on that state and
writes at once; when another store (another process) wrote meanwhile, the write changes
nothing and returns the calculation as it is, and the answer is planned again on that.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from osago.models import Outcome, OutcomeKind
from osago.storage import KnownExchange
from osago.storage.postgres import PostgresStore, open_postgres_store
from tests.factories import new_calculation

pytestmark = pytest.mark.integration

Q, T = "/queue/jobs", "/topic/results"


def offer(at: float, premium: float = 5000.0) -> Outcome:
    return Outcome(OutcomeKind.OFFER, received_at=at, premium=premium, ready_at=at - 0.1)


@asynccontextmanager
async def spied_store(url: str) -> AsyncIterator[tuple[PostgresStore, list[str]]]:
    """A store on one connection, and the statements it runs: 'read' or 'write' per settle
    statement (a state read, a carry-out)."""
    seen: list[str] = []

    def log(query: Any) -> None:
        text = query.query
        if text.startswith("WITH lk"):
            seen.append("write")
        elif "array_agg(e.correlation_id" in text:
            seen.append("read")

    async def spy(conn: Any) -> None:
        conn.add_query_logger(log)

    async with open_postgres_store(url, min_size=1, max_size=1) as store:
        await store._tx("spy", spy, alone=True)
        yield store, seen


async def test_a_settle_on_a_calculation_this_store_wrote_reads_nothing(pg_url: str) -> None:
    calc = new_calculation(insurers=("aurora", "borealis", "cedar"))
    a, b, c = (x.correlation_id for x in calc.exchanges)
    async with spied_store(pg_url) as (store, seen):
        await store.create_calculation(calc, queue=Q)
        first = await store.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
        second = await store.settle_exchange(b, offer(1011.0), topic=T, now=1011.0, lease=30.0)
        assert seen == ["write", "write"]
        await store.mark_sent([e.id for e in (*first, *second)], now=1011.5)
        last = await store.settle_exchange(c, offer(1012.0), topic=T, now=1012.0, lease=30.0)
    bodies = [json.loads(e.body) for e in (*first, *second, *last)]
    assert [(e["type"], e["seq"]) for e in bodies] == [
        ("offer", 1),
        ("offer", 2),
        ("offer", 3),
        ("completed", 4),
    ]
    assert bodies[-1]["offers"] == 3


async def test_a_calculation_another_store_wrote_is_planned_again_as_it_now_is(
    pg_url: str,
) -> None:
    calc = new_calculation(insurers=("aurora", "borealis", "cedar"))
    a, b, c = (x.correlation_id for x in calc.exchanges)
    async with spied_store(pg_url) as (mine, seen), spied_store(pg_url) as (other, _):
        await mine.create_calculation(calc, queue=Q)
        # Another process settles a: what `mine` knows (nothing settled, seq 0) is stale.
        sent = await other.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
        events = await mine.settle_exchange(b, offer(1011.0), topic=T, now=1011.0, lease=30.0)
        # The first write found the calculation changed and brought it back: no read.
        assert seen == ["write", "write"]
        assert [json.loads(e.body)["seq"] for e in events] == [2]
        # Another answer of that calculation: the state kept from the rewrite is current.
        seen.clear()
        await mine.mark_sent([e.id for e in (*sent, *events)], now=1011.5)
        events = await mine.settle_exchange(c, offer(1012.0), topic=T, now=1012.0, lease=30.0)
        assert seen == ["write"]
    bodies = [json.loads(e.body) for e in events]
    assert [(e["type"], e["seq"]) for e in bodies] == [("offer", 3), ("completed", 4)]
    assert bodies[-1]["offers"] == 3


async def test_a_known_calculation_gone_from_the_database_settles_nothing(pg_url: str) -> None:
    calc = new_calculation(insurers=("aurora", "borealis"))
    a, b = (x.correlation_id for x in calc.exchanges)
    async with spied_store(pg_url) as (mine, _), spied_store(pg_url) as (other, _):
        await mine.create_calculation(calc, queue=Q)
        for cid in (a, b):  # closed elsewhere, then purged
            await other.settle_exchange(cid, offer(1010.0), topic=T, now=1010.0, lease=30.0)
        assert await other.purge_closed(before=2000.0, limit=10) == 1
        assert (
            await mine.settle_exchanges([(a, offer(1011.0))], topic=T, now=1011.0, lease=30.0) == {}
        )


async def test_what_a_store_knows_of_an_exchange_may_lag_and_its_settle_tells(pg_url: str) -> None:
    """The api's callback path: the creating store knows the exchange without a read; after
    another store settled it, that knowledge lags, and the settle reports a repeat."""
    calc = new_calculation(insurers=("aurora", "borealis"))
    a, _ = (x.correlation_id for x in calc.exchanges)
    async with spied_store(pg_url) as (mine, _), spied_store(pg_url) as (other, _):
        await mine.create_calculation(calc, queue=Q)
        assert other.known_exchange(a) is None  # it created nothing: a read is needed
        await other.settle_exchange(a, offer(1010.0), topic=T, now=1010.0, lease=30.0)
        assert mine.known_exchange(a) == KnownExchange(calc.id, "aurora", False)  # lags

        again = await mine.settle_exchanges(
            [(a, offer(1011.0, 1.0))], topic=T, now=1011.0, lease=30.0
        )

        assert again[a].stored is False
        assert mine.known_exchange(a) == KnownExchange(calc.id, "aurora", True)  # caught up
