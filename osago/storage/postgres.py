"""The Store on PostgreSQL: asyncpg on an asyncio loop that trio-asyncio runs inside Trio.

Each Store method is ONE bridge crossing: the whole transaction is an asyncio coroutine
handed to the loop at once (a crossing costs ~1 ms of CPU; see shared/reference/services.md).
asyncpg errors are translated to :class:`StoreError` here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import trio

from osago.errors import ConflictError, StoreError
from osago.lifecycle import CalcState, ExchangeState
from osago.models import (
    CalculationView,
    Exchange,
    Job,
    NewCalculation,
    OutboxMessage,
    OutboxTrace,
    Outcome,
    OutcomeKind,
    Push,
    RawJSON,
    Step,
    Trail,
)
from osago.storage import _pg_lifecycle as _lifecycle
from osago.storage import _pg_ops as _ops
from osago.storage._bridge import DRIVER_ERRORS, run_abandonable
from osago.storage._known import KnownStates
from osago.storage._loop import open_batching_loop
from osago.storage._migrate import migrate
from osago.storage._pg_lifecycle import OUTBOX_COLUMNS, messages
from osago.storage._pg_listen import keep_listening
from osago.storage._pg_server import SETTINGS_READ, server_warnings
from osago.storage._pg_session import SESSION_SETTINGS, init_connection, keep_session
from osago.storage._pg_settle import settle_answers
from osago.storage._port import CALCULATIONS_CHANNEL, OUTBOX_CHANNEL
from osago.storage._results import KnownExchange, Settled
from osago.storage._wakeup import Flag

__all__ = ["PostgresStore", "open_postgres_store"]

log = logging.getLogger("osago.store")

T = TypeVar("T")

Conn = Any  # asyncpg.Connection (untyped library)


class PostgresStore:
    """Store on a PostgreSQL pool. Create with :func:`open_postgres_store`."""

    def __init__(
        self,
        loop: Any,
        pool: Any,
        url: str,
        cleanup_timeout: float = 3.0,
        operation_timeout: float = 5.0,
    ) -> None:
        self._loop = loop
        self._cleanup_timeout = cleanup_timeout
        self._operation_timeout = operation_timeout
        self._pool = pool
        self._url = url
        # What this process last wrote or read of each calculation: settles plan on it.
        self._known = KnownStates()

    async def _tx(
        self, operation: str, body: Callable[[Conn], Awaitable[T]], *, alone: bool = False
    ) -> T:
        """Run ``body`` in one transaction, in one crossing of the asyncio bridge.

        ``alone``: each statement of ``body`` is a transaction of its own (one statement, or
        several that need no common transaction, as an optimistic settle's). Why no BEGIN
        and COMMIT around them: each is a round trip to the server (a socket write that
        wakes a backend), and they tripled the cost of a one-statement read or write, the
        most common kind here.
        """

        async def run() -> T:
            async with self._pool.acquire() as conn:
                if alone:
                    return await body(conn)
                async with conn.transaction():
                    return await body(conn)

        # Why a bound here, on every transaction (the pool's wait for a connection included):
        # a server that hangs rather than refuses held every caller, and after pool-size of
        # them every request. The task is abandoned, not awaited (see run_abandonable), and
        # asyncpg drops a connection cancelled mid-query instead of handing it out again.
        try:
            with trio.fail_after(self._operation_timeout):
                result: T = await run_abandonable(self._loop, run())
        except trio.TooSlowError as exc:
            raise StoreError(operation, f"no answer within {self._operation_timeout:g}s") from exc
        except DRIVER_ERRORS as exc:
            raise StoreError(operation, f"{type(exc).__name__}: {exc}") from exc
        return result

    async def create_calculation(
        self, calc: NewCalculation, *, queue: str, lease: float = 0.0
    ) -> list[OutboxMessage] | None:
        # Delivered at COMMIT, and only if it commits: the relay never wakes for a rollback.
        # Leased jobs are the caller's to publish: no relay needs waking for them.
        channels = [CALCULATIONS_CHANNEL] if lease else [CALCULATIONS_CHANNEL, OUTBOX_CHANNEL]

        jobs = [Job(x.correlation_id, calc.id, x.insurer) for x in calc.exchanges]

        async def body(conn: Conn) -> list[OutboxMessage] | None:
            # Why one statement: it is a transaction of its own, one round trip where BEGIN,
            # four statements and COMMIT were six. Each insert below the first reads the
            # calculation it made (none on a conflict); `nt` always yields one row.
            rows = await conn.fetch(
                "WITH calc AS (INSERT INTO calculations (id, user_id, request, stub, created_at,"
                " deadline_at, request_hash, closes_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (id) DO NOTHING RETURNING id, xmin::text AS version),"
                " ex AS (INSERT INTO exchanges (correlation_id, calculation_id, insurer,"
                " insurer_name) SELECT x.c, calc.id, x.i, x.n FROM calc,"
                " unnest($9::uuid[], $10::text[], $11::text[]) AS x (c, i, n)),"
                " job AS (INSERT INTO outbox (destination, body, headers, calculation_id,"
                " created_at, leased_until) SELECT $12, j.b, j.h, calc.id, $5, $13 FROM calc,"
                f" unnest($14::bytea[], $15::jsonb[]) AS j (b, h) RETURNING {OUTBOX_COLUMNS}),"
                " nt AS (SELECT count(pg_notify(ch, '')) AS n FROM calc, unnest($16::text[]) ch)"
                f" SELECT calc.id IS NOT NULL AS created, calc.version, job.* FROM nt"
                " LEFT JOIN calc ON true LEFT JOIN job ON true",
                calc.id,
                calc.user_id,
                calc.request,
                calc.stub,
                calc.created_at,
                calc.deadline_at,
                calc.request_hash,
                calc.closing,
                [x.correlation_id for x in calc.exchanges],
                [x.insurer for x in calc.exchanges],
                [x.insurer_name for x in calc.exchanges],
                queue,
                calc.created_at + lease if lease else None,
                [job.encode() for job in jobs],
                [job.headers() for job in jobs],
                channels,
            )
            if rows[0]["created"]:
                self._known.put(_created(calc), rows[0]["version"])
                return messages([r for r in rows if r["id"] is not None])
            existing = await conn.fetchval(
                "SELECT request_hash FROM calculations WHERE id = $1", calc.id
            )
            if existing != calc.request_hash:
                raise ConflictError(str(calc.id))
            return None

        return await self._tx("create_calculation", body, alone=True)

    async def get_calculation(self, calculation_id: UUID) -> CalculationView | None:
        return await self._tx("get_calculation", partial(_ops.get_calculation, calculation_id))

    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxMessage]:
        body = partial(_ops.claim_outbox, now, lease, limit)
        return await self._tx("claim_outbox", body, alone=True)

    async def mark_sent(self, ids: Sequence[int], *, now: float) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute("UPDATE outbox SET sent_at = $2 WHERE id = ANY($1)", list(ids), now)

        await self._tx("mark_sent", body, alone=True)

    async def load_exchanges(self, correlation_ids: Sequence[UUID]) -> dict[UUID, Exchange]:
        async def body(conn: Conn) -> dict[UUID, Exchange]:
            rows = await conn.fetch(
                "SELECT e.*, c.user_id, c.request::text AS request, c.created_at, c.deadline_at,"
                " c.closes_at,"
                " c.closed_at"
                " FROM exchanges e JOIN calculations c ON c.id = e.calculation_id"
                " WHERE e.correlation_id = ANY($1::uuid[])",
                list(correlation_ids),
            )
            # One request per calculation in the batch: a calculation's jobs come together,
            # and ten copies of its request were most of what an exchange held. As text: it
            # goes to the insurer as it is (RawJSON), never decoded here.
            requests: dict[UUID, RawJSON] = {}
            return {
                r["correlation_id"]: Exchange(
                    r["correlation_id"],
                    r["calculation_id"],
                    r["insurer"],
                    r["user_id"],
                    requests.setdefault(r["calculation_id"], RawJSON(r["request"])),
                    r["created_at"],
                    r["deadline_at"],
                    r["closes_at"],
                    r["remote_id"],
                    OutcomeKind(r["outcome"]) if r["outcome"] else None,
                    r["closed_at"] is not None,
                )
                for r in rows
            }

        return await self._tx("load_exchanges", body, alone=True)

    def known_exchange(self, correlation_id: UUID) -> KnownExchange | None:
        hit = self._known.of_exchange(correlation_id)
        if hit is None:
            return None
        state = hit[0]  # an open calculation: a closed one is forgotten
        x = state.exchange(correlation_id)
        return KnownExchange(state.id, x.insurer, x.outcome is not None)

    async def settled_among(self, correlation_ids: Sequence[UUID]) -> dict[UUID, bool]:
        return await self._tx(
            "settled_among", partial(_ops.settled_among, list(correlation_ids)), alone=True
        )

    async def record_submissions(self, submissions: Sequence[tuple[UUID, str]]) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                "UPDATE exchanges AS e SET remote_id = s.remote_id"
                " FROM unnest($1::uuid[], $2::text[]) AS s (correlation_id, remote_id)"
                " WHERE e.correlation_id = s.correlation_id",
                [c for c, _ in submissions],
                [r for _, r in submissions],
            )

        await self._tx("record_submissions", body, alone=True)

    async def settle_exchange(
        self, correlation_id: UUID, outcome: Outcome, *, topic: str, now: float, lease: float
    ) -> list[OutboxMessage]:
        events = await self.settle_exchanges(
            [(correlation_id, outcome)], topic=topic, now=now, lease=lease
        )
        if correlation_id not in events:
            raise StoreError("settle_exchange", f"unknown correlation id {correlation_id}")
        return events[correlation_id].events

    async def settle_exchanges(
        self,
        answers: Sequence[tuple[UUID, Outcome]],
        *,
        topic: str,
        now: float,
        lease: float,
        steps: Mapping[UUID, Sequence[Step]] | None = None,
    ) -> dict[UUID, Settled]:
        if not answers:
            return {}
        # Optimistic (see _pg_lifecycle): each statement commits alone.
        body = partial(settle_answers, answers, topic, now, lease, steps or {}, self._known)
        return await self._tx("settle_exchanges", body, alone=True)

    async def complete_due(
        self, *, topic: str, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        body = partial(_lifecycle.complete_due, topic, now, lease, limit)
        return await self._tx("complete_due", body)

    async def outbox_of(self, calculation_id: UUID) -> list[OutboxTrace]:
        return await self._tx("outbox_of", partial(_ops.outbox_of, calculation_id), alone=True)

    async def record_steps(self, steps: Sequence[tuple[UUID, Sequence[Step]]]) -> None:
        await self._tx("record_steps", partial(_ops.record_steps, steps), alone=True)

    async def record_pushes(self, pushes: Sequence[Push]) -> None:
        await self._tx("record_pushes", partial(_ops.record_pushes, pushes), alone=True)

    async def trail_of(self, calculation_id: UUID) -> Trail:
        return await self._tx("trail_of", partial(_ops.trail_of, calculation_id))

    async def outbox_backlog(self) -> tuple[int, float | None]:
        return await self._tx("outbox_backlog", _ops.outbox_backlog, alone=True)

    async def record_failure(self, message_id: str, reason: str, *, now: float) -> None:
        await self._tx(
            "record_failure", partial(_ops.record_failure, message_id, reason, now), alone=True
        )

    async def failures(self, message_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        return await self._tx("failures", partial(_ops.failures, list(message_ids)), alone=True)

    async def purge_closed(self, *, before: float, limit: int) -> int:
        return await self._tx("purge_closed", partial(_ops.purge_closed, before, limit))

    async def next_deadline(self) -> float | None:
        return await self._tx("next_deadline", _ops.next_deadline, alone=True)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Flag]:
        """LISTEN on a dedicated connection, kept up: re-established after the database
        restarts (the flag fires then too, so the caller looks for what it missed)."""
        flag = Flag()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    keep_listening,
                    self._loop,
                    self._url,
                    channel,
                    flag,
                    operation_timeout=self._operation_timeout,
                    cleanup_timeout=self._cleanup_timeout,
                )
            )
            try:
                yield flag
            finally:
                nursery.cancel_scope.cancel()


def _created(calc: NewCalculation) -> CalcState:
    """A calculation's state as just created: what a read of it would return."""
    exchanges = (ExchangeState(x.correlation_id, x.insurer, x.insurer_name) for x in calc.exchanges)
    return CalcState(
        calc.id,
        calc.user_id,
        calc.stub,
        calc.deadline_at,
        calc.closing,
        None,
        None,
        0,
        tuple(exchanges),
    )


@asynccontextmanager
async def open_postgres_store(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    cleanup_timeout: float = 3.0,
    operation_timeout: float = 5.0,
) -> AsyncIterator[PostgresStore]:
    """Open a pool on ``url``, apply pending migrations, and yield the store.

    ``cleanup_timeout`` bounds each shielded close (a LISTEN connection, the pool);
    ``operation_timeout`` each transaction, which then fails with StoreError.
    """
    async with open_batching_loop() as loop:
        try:
            pool = await loop.run_aio_coroutine(
                asyncpg.create_pool(
                    url,
                    min_size=min_size,
                    max_size=max_size,
                    init=init_connection,
                    reset=keep_session,
                    server_settings=SESSION_SETTINGS,
                    # Why 0 (idle connections stay open, up to max_size): each release armed
                    # a 300 s timer, which trio-asyncio keeps in its heap until due, cancelled
                    # or not: ~60 000 at 200 transactions/s, and every loop pass had a deadline.
                    max_inactive_connection_lifetime=0,
                )
            )
            await loop.run_aio_coroutine(migrate(pool))
            rows = await loop.run_aio_coroutine(pool.fetch(SETTINGS_READ))
        except DRIVER_ERRORS as exc:
            raise StoreError("open", f"{type(exc).__name__}: {exc}") from exc
        for warning in server_warnings({r["name"]: r["setting"] for r in rows}):
            log.warning("store: %s", warning)
        try:
            yield PostgresStore(loop, pool, url, cleanup_timeout, operation_timeout)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(cleanup_timeout):
                await loop.run_aio_coroutine(pool.close())
