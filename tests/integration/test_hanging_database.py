"""A database that hangs (rather than refuses) is bounded: every store call fails with
StoreError within OSAGO_STORE_TIMEOUT, the api answers 503 in that time, and both work again
as soon as the database does, with no restart (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from osago.config import Settings
from osago.errors import StoreError
from osago.storage.postgres import open_postgres_store
from tests.factories import MINIMAL_BODY, api_app
from tests.freezer import open_freezer

pytestmark = pytest.mark.integration

BOUND = 1.0


async def test_a_hanging_database_gets_a_bounded_503_and_recovers_without_a_restart(
    pg_url: str,
) -> None:
    async with open_freezer(("127.0.0.1", 5432)) as freezer:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{freezer.port}")
        async with open_postgres_store(url, max_size=4, operation_timeout=BOUND) as store:
            settings = Settings(insurer_codes=("aurora",), store_timeout=BOUND)
            async with api_app(settings, store) as app:
                client = app.test_client()
                body = MINIMAL_BODY
                assert (await client.post("/api/v1/calculations", json=body)).status_code == 202

                freezer.freeze()
                # More callers than the pool has connections: each is bounded, none waits
                # behind the others for ever.
                statuses: list[int] = []
                errors: list[StoreError] = []

                async def post() -> None:
                    r = await client.post("/api/v1/calculations", json=body)
                    statuses.append(r.status_code)

                async def read() -> None:
                    try:
                        await store.next_deadline()
                    except StoreError as exc:
                        errors.append(exc)

                started = trio.current_time()
                async with trio.open_nursery() as n:
                    for _ in range(6):
                        n.start_soon(post)
                        n.start_soon(read)
                assert trio.current_time() - started < BOUND + 0.5
                assert statuses == [503] * 6
                assert len(errors) == 6
                assert "no answer within" in str(errors[0])

                freezer.thaw()
                for _ in range(50):  # within 5 s: connections cut mid-query are replaced
                    r = await client.post("/api/v1/calculations", json=body)
                    if r.status_code == 202:
                        break
                    await trio.sleep(0.1)
                else:
                    pytest.fail("the api did not recover once the database answered again")


async def test_listen_is_re_established_after_its_connection_is_lost(pg_url: str) -> None:
    """Issue 11: after a database restart the LISTEN connection was never re-established and
    wake-ups fell back to the safety tick. Its backend is terminated here, as a restart does."""
    channel = "osago_test_listen"

    async def sql(query: str) -> Any:
        return await store._tx("test", lambda conn: conn.fetch(query))

    async def listener_pids() -> list[int]:
        rows = await sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            f" AND query LIKE 'LISTEN %{channel}%'"
        )
        return [r["pid"] for r in rows]

    async with open_postgres_store(pg_url) as store, store.listen(channel) as flag:
        (first,) = await listener_pids()
        await sql(f"SELECT pg_terminate_backend({first})")
        with trio.fail_after(5):
            await flag.wait()  # the loss wakes the loop at once: it may have missed something
            for _ in range(100):
                if (pids := await listener_pids()) and pids != [first]:
                    break
                await trio.sleep(0.05)
            await flag.wait()  # and once listening again
        await sql(f"NOTIFY {channel}")
        with trio.fail_after(5):
            await flag.wait()
