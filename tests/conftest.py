"""Shared fixtures: the real services (PostgreSQL, ActiveMQ) and their memory twins."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from osago.broker import Broker, open_memory_broker, open_stomp_broker
from osago.storage import MemoryStore, Store
from osago.storage.postgres import open_postgres_store

PG_ADMIN_URL = os.environ.get("OSAGO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STOMP_URL = os.environ.get("OSAGO_TEST_STOMP_URL", "stomp://127.0.0.1:61613")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stomp" in item.name or "postgres" in item.name:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for queue and database names."""
    return uuid.uuid4().hex[:10]


async def _fresh_database(name: str) -> str:
    import trio_asyncio

    async with trio_asyncio.open_loop() as loop:
        conn = await loop.run_aio_coroutine(asyncpg.connect(PG_ADMIN_URL))
        try:
            await loop.run_aio_coroutine(conn.execute(f'CREATE DATABASE "{name}"'))
        finally:
            await loop.run_aio_coroutine(conn.close())
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def _drop_database(name: str) -> None:
    import trio_asyncio

    async with trio_asyncio.open_loop() as loop:
        conn = await loop.run_aio_coroutine(asyncpg.connect(PG_ADMIN_URL))
        try:
            await loop.run_aio_coroutine(
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        finally:
            await loop.run_aio_coroutine(conn.close())


@pytest.fixture
async def pg_url(unique: str) -> AsyncIterator[str]:
    """A fresh, empty database on the real PostgreSQL, dropped afterwards."""
    name = f"osago_test_{unique}"
    url = await _fresh_database(name)
    try:
        yield url
    finally:
        await _drop_database(name)


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, unique: str) -> AsyncIterator[Store]:
    """Each Store twin in turn: the contract tests run against both."""
    if request.param == "memory":
        yield MemoryStore()
        return
    name = f"osago_test_{unique}"
    url = await _fresh_database(name)
    try:
        async with open_postgres_store(url) as pg:
            yield pg
    finally:
        await _drop_database(name)


@pytest.fixture(params=["memory", "stomp"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """Each Broker twin in turn; the memory twin uses ActiveMQ's redelivery settings."""
    if request.param == "memory":
        async with open_memory_broker(
            max_redeliveries=2, initial_redelivery_delay=1.1, redelivery_delay=1.1
        ) as memory:
            yield memory
    else:
        async with open_stomp_broker(STOMP_URL) as stomp:
            yield stomp
