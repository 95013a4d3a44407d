"""Builders for test data."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import trio
from quart_trio import QuartTrio

from osago.admission import Backlog
from osago.broker import Broker, open_memory_broker
from osago.clock import SystemClock
from osago.config import Settings
from osago.domain.dates import moscow_today
from osago.domain.request import validate_request
from osago.insurers import insurers_for
from osago.models import NewCalculation, NewExchange
from osago.roles._deps import ApiDeps
from osago.roles.api import create_app
from osago.storage import MemoryStore, Store

# Relative to today: a fixed start date would fall out of the 60-day window.
START = (moscow_today(time.time()) + timedelta(days=7)).isoformat()

MINIMAL_BODY: dict[str, Any] = {
    "user_id": "user-42",
    "policy": {"start_date": START, "period_months": 12},
    "vehicle": {"category": "B", "engine_power_hp": 150},
    "owner": {"region_kladr": "7700000000000"},
    "drivers": [{"birth_date": "1985-04-12", "experience_start_date": "2005-06-01"}],
}


def validated(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the api stores it after validation."""
    return validate_request(body, today=moscow_today(time.time()))


def new_calculation(
    *,
    insurers: tuple[str, ...] = ("aurora", "borealis"),
    created_at: float = 1000.0,
    deadline: float = 60.0,
    user_id: str = "user-42",
) -> NewCalculation:
    return NewCalculation(
        id=uuid.uuid4(),
        user_id=user_id,
        request=validated({**MINIMAL_BODY, "user_id": user_id}),
        created_at=created_at,
        deadline_at=created_at + deadline,
        exchanges=tuple(NewExchange(uuid.uuid4(), code, code.title()) for code in insurers),
        stub={"message": "no insurer answered in time"},
    )


def api_deps(
    settings: Settings,
    broker: Broker,
    *,
    store: Store | None = None,
    backlog: Backlog | None = None,
) -> ApiDeps:
    """The api's dependencies on ``broker``, ``store`` (a fresh MemoryStore by default) and
    ``backlog`` (admission; none refusing by default), with the system clock."""
    return ApiDeps(
        settings,
        trio.Event(),
        SystemClock(),
        store=store if store is not None else MemoryStore(),
        broker=broker,
        insurers=insurers_for(settings),
        backlog=backlog if backlog is not None else Backlog(),
    )


@asynccontextmanager
async def api_app(settings: Settings, store: Store | None = None) -> AsyncIterator[QuartTrio]:
    """The api's app on a memory broker and ``store`` (a fresh MemoryStore by default)."""
    async with open_memory_broker() as broker:
        yield create_app(api_deps(settings, broker, store=store))
