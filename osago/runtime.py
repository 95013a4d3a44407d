"""Opening the real resources a role needs, from settings, and running roles by name."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from urllib.parse import urlsplit

import trio

from osago import simulator
from osago.admission import Backlog
from osago.broker import Broker, open_broker
from osago.clock import Clock, SystemClock
from osago.config import DEV_SECRET, MIN_SECRET_BYTES, Bind, Settings
from osago.dlq import dlq_name
from osago.errors import ConfigError, StoreError
from osago.insurers import HttpInsurerClient, InsurerConfig, insurers_for
from osago.insurers.http11 import Http11Pool
from osago.metrics import (
    Check,
    GcPauses,
    MeteredClient,
    Metrics,
    refresh_backlog,
    serve_metrics,
    watch_loop_lag,
)
from osago.roles import api, notifier, worker
from osago.roles._deps import ApiDeps, NotifierDeps, WorkerDeps
from osago.storage import Store
from osago.storage.embedded import start_embedded_postgres
from osago.storage.postgres import open_postgres_store

__all__ = ["ROLES", "check_role", "open_http", "open_store", "run_role"]

log = logging.getLogger("osago")

ROLES = ("api", "worker", "notifier", "insurers", "all")


def _weak(secret: str) -> bool:
    return secret == DEV_SECRET or len(secret.encode()) < MIN_SECRET_BYTES


def check_role(role: str, settings: Settings) -> None:
    """Raise ConfigError when ``role`` cannot work with ``settings``."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role in ("api", "worker", "notifier") and settings.in_process_broker:
        raise ConfigError(
            f"--role {role} needs a broker shared between processes: set "
            "OSAGO_BROKER_URL=stomp://127.0.0.1:61613 (memory:// exists only inside "
            "`osago --role all`)"
        )
    demo = role == "all" and settings.dev_endpoints is not False
    if role in ("api", "notifier", "all") and not demo and _weak(settings.ws_secret):
        raise ConfigError(
            f"--role {role} needs OSAGO_WS_SECRET: the secret shared with the core "
            f"application that signs users' WebSocket tokens, at least {MIN_SECRET_BYTES} "
            "bytes (the built-in one is public: only the local demo may use it)"
        )
    callbacks = any(c.mode == "callback" for c in insurers_for(settings))
    if role in ("api", "all") and not demo and callbacks and _weak(settings.callback_secret):
        raise ConfigError(
            f"--role {role} accepts insurers' callbacks: set OSAGO_CALLBACK_SECRET, at "
            f"least {MIN_SECRET_BYTES} bytes (each insurer's secret derives from it; the "
            "built-in one is public: only the local demo may use it)"
        )


async def _broker_ready(broker: Broker) -> str | None:
    return None if broker.connected else "not connected"


async def _database_ready(store: Store) -> str | None:
    try:
        await store.next_deadline()
    except StoreError as exc:
        return str(exc)
    return None


async def _metrics_until(
    metrics: Metrics,
    bind: Bind,
    checks: dict[str, Check],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[int],
) -> None:
    """/metrics, /healthz, /readyz until ``stop``: served while the roles drain."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, metrics, bind.host, bind.port, checks)
        task_status.started(port)
        await stop.wait()
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """PostgreSQL at OSAGO_DATABASE_URL, or the embedded one."""
    url = settings.database_url or await start_embedded_postgres(settings.data_dir)
    async with open_postgres_store(
        url, cleanup_timeout=settings.cleanup_timeout, operation_timeout=settings.store_timeout
    ) as store:
        yield store


@asynccontextmanager
async def open_http(
    insurers: Sequence[InsurerConfig], drains: trio.Nursery | None = None
) -> AsyncIterator[HttpInsurerClient]:
    """A keep-alive pool per insurer: its bulkhead bounds the calls in flight, hedges
    included. With ``drains``, a cancelled call's connection is saved where it can be, by a
    task there, at most as many at once as the bulkhead's bound (osago/insurers/http11.py).
    Timeouts are our cancel scopes. Idle connections are closed at the end (and any a drain
    saves later)."""
    pools = {}
    for c in insurers:
        parts = urlsplit(c.base_url)
        pools[c.code] = Http11Pool(
            f"{parts.scheme}://{parts.netloc}", max_idle=c.bulkhead.max_concurrent, drains=drains
        )
    try:
        yield HttpInsurerClient(pools)
    finally:
        for pool in pools.values():
            await pool.aclose()


async def run_role(
    role: str,
    settings: Settings,
    stop: trio.Event,
    *,
    clock: Clock | None = None,
    task_status: trio.TaskStatus[dict[str, str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open what ``role`` needs and run it until ``stop``; started() gives its addresses.

    Resources are opened outside the roles' nursery, so they close only after every role
    has drained.
    """
    check_role(role, settings)
    clock = clock or SystemClock()
    urls: dict[str, str] = {}
    async with AsyncExitStack() as stack:
        if role != "insurers":
            # A notifier's results subscription is durable, kept under this process's own
            # client id: unique, so two notifiers never share (or steal) each other's events.
            client_id = (
                f"osago-{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                if role in ("notifier", "all")
                else None
            )
            broker: Broker = await stack.enter_async_context(
                open_broker(
                    settings.broker_url,
                    cleanup_timeout=settings.cleanup_timeout,
                    client_id=client_id,
                )
            )
        notes: Store | None = None  # where the notifier notes pushes
        if role in ("api", "worker", "all"):
            store = notes = await stack.enter_async_context(open_store(settings))
        elif role == "notifier" and settings.database_url is not None:
            # A notifier notes its pushes for timelines where a database is configured (it
            # never starts an embedded one for that), and serves without it if it is away.
            try:
                notes = await stack.enter_async_context(open_store(settings))
            except StoreError as exc:
                log.warning("notifier: pushes will not be noted for timelines: %s", exc)
        metrics = Metrics()
        # The garbage collector's pauses stand this role's loop still: counted while it runs.
        metrics.registry.register(stack.enter_context(GcPauses().installed()))
        # What outlives the roles: the loop-lag watcher (on /metrics where it is served, and
        # on the operations page), and where the insurers' pools drain cancelled calls'
        # connections. Opened before the roles' nursery and stopped (by the callback, first)
        # after it, as the stack unwinds.
        background = await stack.enter_async_context(trio.open_nursery())
        stack.callback(background.cancel_scope.cancel)
        await background.start(watch_loop_lag, metrics.loop_lag.observe)
        async with trio.open_nursery() as nursery:
            if settings.metrics_bind is not None:
                checks: dict[str, Check] = {}
                if role != "insurers":
                    checks["broker"] = partial(_broker_ready, broker)
                if role in ("api", "worker", "all"):
                    checks["database"] = partial(_database_ready, store)
                port = await nursery.start(
                    _metrics_until, metrics, settings.metrics_bind, checks, stop
                )
                urls["metrics"] = f"http://{settings.metrics_bind.host}:{port}/metrics"
            # Read by the api's admission.
            backlog = Backlog(
                settings.max_waiting_jobs,
                max_unpublished=settings.max_unpublished_wait,
                max_pickup=settings.max_pickup_wait,
            )
            if role in ("api", "worker", "all"):
                queues = (settings.requests_queue, dlq_name(settings.requests_queue))
                await nursery.start(
                    partial(
                        refresh_backlog,
                        metrics,
                        store,
                        broker,
                        queues,
                        clock,
                        stop,
                        backlog=backlog,
                        # The api sheds on this reading: each second, so a surge overshoots
                        # the limit by about a second's excess (every 5 s it was five).
                        every=1.0 if role in ("api", "all") else 5.0,
                    )
                )
            if role in ("insurers", "all"):
                sim = simulator.default_simulator(settings, clock)
                urls["insurers"] = await nursery.start(
                    simulator.run, simulator.SimulatorDeps(settings, stop, sim)
                )
                if settings.insurers_url is None:
                    settings = settings.with_overrides(insurers_url=urls["insurers"])
            # Loaded once, when the simulator's address is known; api and worker share it.
            catalog = insurers_for(settings) if role in ("api", "worker", "all") else ()
            if role in ("worker", "all"):  # closed by the stack, after every role drained
                client = await stack.enter_async_context(open_http(catalog, background))
            if role in ("notifier", "all"):
                port = await nursery.start(
                    notifier.run,
                    NotifierDeps(
                        settings,
                        stop,
                        clock,
                        broker=broker,
                        metrics=metrics,
                        store=notes,
                    ),
                )
                urls["notifier"] = f"ws://{settings.notifier_bind.host}:{port}/ws"
            if role in ("api", "all"):
                if role == "all" and settings.dev_endpoints is None:
                    # The demo page and its stand-in for the core application, unless
                    # OSAGO_DEV_ENDPOINTS=0 said otherwise.
                    settings = settings.with_overrides(dev_endpoints=True)
                served = await nursery.start(
                    api.run,
                    ApiDeps(
                        settings,
                        stop,
                        clock,
                        store=store,
                        broker=broker,
                        insurers=catalog,
                        ws_url=urls.get("notifier"),
                        metrics=metrics,
                        backlog=backlog,
                    ),
                )
                urls["api"] = served.api
                if served.callbacks is not None:
                    urls["callbacks"] = served.callbacks
            if role == "all" and settings.callback_url is None:
                # Insurers in callback mode call this process's own api back.
                settings = settings.with_overrides(callback_url=urls.get("callbacks", urls["api"]))
                catalog = insurers_for(settings)
            if role in ("worker", "all"):
                for c in catalog:
                    if c.mode == "callback" and not c.callback:
                        log.warning(
                            "insurer %s is in callback mode but OSAGO_CALLBACK_URL is not set:"
                            " it is polled instead",
                            c.code,
                        )
                await nursery.start(
                    worker.run,
                    WorkerDeps(
                        settings,
                        stop,
                        clock,
                        store=store,
                        broker=broker,
                        insurers=catalog,
                        client=MeteredClient(client, metrics),
                        metrics=metrics,
                    ),
                )
            task_status.started(urls)
