"""A failure inside the request transaction leaves nothing behind, and sends nothing."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import trio
import trio_asyncio

from osago.broker import open_stomp_broker
from osago.config import Bind, Settings
from osago.insurers import insurers_for
from osago.roles import api
from osago.roles._deps import ApiDeps
from osago.storage.postgres import open_postgres_store
from tests.conftest import STOMP_URL
from tests.factories import MINIMAL_BODY

pytestmark = pytest.mark.integration


async def count_rows(url: str) -> tuple[int, int, int]:
    async with trio_asyncio.open_loop() as loop:
        conn = await loop.run_aio_coroutine(asyncpg.connect(url))
        try:
            return tuple(  # type: ignore[return-value]
                [
                    await loop.run_aio_coroutine(conn.fetchval(f"SELECT count(*) FROM {t}"))
                    for t in ("calculations", "exchanges", "outbox")
                ]
            )
        finally:
            await loop.run_aio_coroutine(conn.close())


async def test_failed_request_transaction_leaves_no_rows_and_no_message(
    pg_url: str, unique: str
) -> None:
    queue = f"/queue/osago.atomic.{unique}"
    # The same insurer twice violates UNIQUE(calculation_id, insurer) on the second
    # exchange row: after the calculation row was inserted, inside the one transaction.
    settings = Settings(
        insurer_codes=("aurora", "aurora"),
        api_bind=Bind("127.0.0.1", 0),
        requests_queue=queue,
        relay_tick=0.1,
    )
    stop = trio.Event()
    async with (
        open_postgres_store(pg_url) as store,
        open_stomp_broker(STOMP_URL) as broker,
        trio.open_nursery() as nursery,
    ):
        served = await nursery.start(
            api.run,
            ApiDeps(settings, stop, store=store, broker=broker, insurers=insurers_for(settings)),
        )
        base = served.api
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{base}/api/v1/calculations", json=MINIMAL_BODY)
        assert r.status_code == 503
        assert r.json()["error"] == "unavailable"
        assert await count_rows(pg_url) == (0, 0, 0)
        async with broker.subscribe(queue) as sub:
            with trio.move_on_after(1.0) as quiet:
                await sub.__aiter__().__anext__()
        assert quiet.cancelled_caught, "a message reached the broker"
        stop.set()
