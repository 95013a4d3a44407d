"""The Store port: what the roles need from the database, one method per transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from osago.models import (
    CalculationView,
    Exchange,
    NewCalculation,
    OutboxMessage,
    OutboxTrace,
    Outcome,
    Push,
    Step,
    Trail,
)
from osago.storage._results import KnownExchange, Settled

__all__ = ["CALCULATIONS_CHANNEL", "OUTBOX_CHANNEL", "Store", "Wakeup"]

OUTBOX_CHANNEL = "osago_outbox"
CALCULATIONS_CHANNEL = "osago_calculations"


class Wakeup(Protocol):
    """Coalescing notifications on one channel: ``wait`` returns once per burst."""

    async def wait(self) -> None:
        """Return when a notification arrived since the last return."""
        ...


class Store(Protocol):
    """Durable state of calculations, exchanges and the outbox.

    Each method is one transaction. Methods that create events lease them to the caller
    (``lease`` seconds): the caller publishes them at once; if it dies, the relay publishes
    them when the lease runs out.
    """

    async def create_calculation(
        self, calc: NewCalculation, *, queue: str, lease: float = 0.0
    ) -> list[OutboxMessage] | None:
        """Store the request and one outbox job per insurer atomically; return the jobs.

        With ``lease`` the jobs are leased to the caller (until ``created_at + lease``), who
        publishes them at once; without, a relay is notified to publish them. None when a
        calculation with this id and the same ``request_hash`` exists already (an
        idempotent replay: nothing is written); ConflictError for another hash.
        """
        ...

    async def get_calculation(self, calculation_id: UUID) -> CalculationView | None:
        """The calculation with its exchanges, or None."""
        ...

    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxMessage]:
        """Lease up to ``limit`` unsent messages whose lease is free, oldest first."""
        ...

    async def mark_sent(self, ids: Sequence[int], *, now: float) -> None:
        """Record that these outbox messages reached the broker."""
        ...

    async def load_exchanges(self, correlation_ids: Sequence[UUID]) -> dict[UUID, Exchange]:
        """The exchanges jobs name, with their requests and deadlines; unknown ids left out.

        Batched (see :mod:`osago.batching`): a calculation's jobs arrive together.
        """
        ...

    def known_exchange(self, correlation_id: UUID) -> KnownExchange | None:
        """What this store knows of the exchange without a read (its calculation, its
        insurer, whether it is settled), or None: then read it (:meth:`load_exchanges`).

        Why: a callback needs only these to be checked before its settle, and the store that
        created a calculation (the api) holds its state already; a read per callback was
        a crossing into asyncio and a statement. ``settled`` may lag, never lead: the settle
        itself tells a repeat (:attr:`osago.storage.Settled.stored`)."""
        ...

    async def settled_among(self, correlation_ids: Sequence[UUID]) -> dict[UUID, bool]:
        """Whether each of these exchanges is settled (has its outcome, or its calculation
        closed); an unknown one is absent. A light read for callback mode's safety checks:
        no request, no row beyond the two flags."""
        ...

    async def record_submissions(self, submissions: Sequence[tuple[UUID, str]]) -> None:
        """Remember the insurers' ids for our requests (correlation id, remote id): a
        redelivery polls the existing calculation, never resubmits."""
        ...

    async def settle_exchange(
        self, correlation_id: UUID, outcome: Outcome, *, topic: str, now: float, lease: float
    ) -> list[OutboxMessage]:
        """Store an outcome once; return the leased events to publish.

        Only the first outcome counts, and only while the calculation is open. An offer
        yields an offer event; when it settles the last exchange, the calculation completes
        in the same transaction and a ``completed`` event follows.
        """
        ...

    async def settle_exchanges(
        self,
        answers: Sequence[tuple[UUID, Outcome]],
        *,
        topic: str,
        now: float,
        lease: float,
        steps: Mapping[UUID, Sequence[Step]] | None = None,
    ) -> dict[UUID, Settled]:
        """:meth:`settle_exchange` for many answers (correlation id, outcome) in one
        transaction; for each, whether its outcome was stored (False: a repeat, or its
        calculation closed) and its leased events to publish. An unknown correlation id gets
        no entry. Every event of one calculation goes to its last answer here, in order
        (``osago.storage._settling``), so each is published by one caller.

        ``steps`` (by correlation id) are kept as :meth:`record_steps` keeps them, whether
        or not the answer settles: the worker's steps to its answer, written with it.
        """
        ...

    async def complete_due(
        self, *, topic: str, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        """Complete calculations whose deadline passed; return their unsent events, in order."""
        ...

    async def next_deadline(self) -> float | None:
        """The earliest deadline of an open calculation."""
        ...

    async def outbox_of(self, calculation_id: UUID) -> list[OutboxTrace]:
        """Every outbox row of a calculation (jobs and events), oldest first."""
        ...

    async def record_steps(self, steps: Sequence[tuple[UUID, Sequence[Step]]]) -> None:
        """Keep each exchange's steps (by correlation id) for its timeline; written late and
        best effort, like submissions."""
        ...

    async def record_pushes(self, pushes: Sequence[Push]) -> None:
        """Keep the frames pushed to users' browsers for the timelines."""
        ...

    async def trail_of(self, calculation_id: UUID) -> Trail:
        """The steps and pushes recorded for a calculation."""
        ...

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """(rows not yet sent, the oldest one's created_at or None)."""
        ...

    async def record_failure(self, message_id: str, reason: str, *, now: float) -> None:
        """Remember why job message ``message_id`` failed (the latest reason wins)."""
        ...

    async def failures(self, message_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """(reason, when) of each of ``message_ids`` that failed here."""
        ...

    async def purge_closed(self, *, before: float, limit: int) -> int:
        """Delete up to ``limit`` calculations closed before ``before``, with their exchanges,
        sent events and pushes; return how many calculations went."""
        ...

    def listen(self, channel: str) -> AbstractAsyncContextManager[Wakeup]:
        """Notifications on ``channel`` while the context is open."""
        ...
