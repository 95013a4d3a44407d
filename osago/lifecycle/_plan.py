"""What the lifecycle is given (a calculation's state) and what it returns (a plan)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from osago.models import Outcome, OutcomeKind

__all__ = ["CalcState", "ExchangeState", "NewEvent", "Plan"]


@dataclass(frozen=True, slots=True)
class ExchangeState:
    """One insurer's exchange as far as the lifecycle cares: who, and whether it ended."""

    correlation_id: UUID
    insurer: str
    insurer_name: str
    outcome: OutcomeKind | None = None


@dataclass(frozen=True, slots=True)
class CalcState:
    """A calculation as stored, read under its row lock by the store that asks for a plan.

    ``closes_at`` is the effective end of the late window (never before the deadline).
    """

    id: UUID
    user_id: str
    stub: Mapping[str, Any]
    deadline_at: float
    closes_at: float
    completed_at: float | None
    closed_at: float | None
    seq: int
    exchanges: tuple[ExchangeState, ...]

    def exchange(self, correlation_id: UUID) -> ExchangeState:
        """The exchange with this correlation id; KeyError when it is not this calculation's."""
        for x in self.exchanges:
            if x.correlation_id == correlation_id:
                return x
        raise KeyError(correlation_id)

    @property
    def offers(self) -> int:
        """Offers stored so far."""
        return sum(1 for x in self.exchanges if x.outcome is OutcomeKind.OFFER)

    @property
    def next_due(self) -> float | None:
        """When the keeper next has something to do: complete, then close; None when closed."""
        if self.completed_at is None:
            return self.deadline_at
        if self.closed_at is None:
            return self.closes_at
        return None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event for the user, encoded: stores append it to the outbox as it is."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a store carries out, all of it in the transaction that read the state.

    In this order: store ``settle`` on exchange ``settled``; mark ``timed_out``
    exchanges timed out; set ``completed_at`` (``complete``) and ``closed_at`` (``close``) to
    now and ``event_seq`` to ``seq``; append ``events`` to the outbox, leased to the caller.
    The caller then publishes: every unsent event of the calculation, in order, when
    ``flush`` (a completion), else just the appended ``events``.
    """

    seq: int
    settled: UUID | None = None  # the exchange whose outcome ``settle`` is
    settle: Outcome | None = None
    timed_out: tuple[UUID, ...] = ()
    complete: bool = False
    close: bool = False
    events: tuple[NewEvent, ...] = ()
    flush: bool = False

    @property
    def empty(self) -> bool:
        """Nothing to store: a duplicate answer, or one for a closed calculation."""
        return not (self.settle or self.timed_out or self.complete or self.close or self.events)
