"""In-process twin of the PostgreSQL store: same contract, no durability.

Used by fast unit tests. It passes the same contract tests as :mod:`osago.storage.postgres`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from osago.errors import ConflictError, StoreError
from osago.events import completed_event, encode_event, event_headers, insurer_event
from osago.models import (
    CalculationView,
    Exchange,
    ExchangeView,
    Job,
    NewCalculation,
    OutboxMessage,
    Outcome,
    OutcomeKind,
)
from osago.storage._port import CALCULATIONS_CHANNEL, OUTBOX_CHANNEL
from osago.storage._wakeup import Flag

__all__ = ["MemoryStore"]


@dataclass
class _Calc:
    new: NewCalculation
    completed_at: float | None = None
    closed_at: float | None = None
    seq: int = 0


@dataclass
class _Exchange:
    correlation_id: UUID
    calculation_id: UUID
    insurer: str
    insurer_name: str
    remote_id: str | None = None
    outcome: Outcome | None = None


@dataclass
class _Row:
    id: int
    destination: str
    body: bytes
    headers: dict[str, str]
    calculation_id: UUID
    leased_until: float | None = None
    sent_at: float | None = None

    def message(self) -> OutboxMessage:
        return OutboxMessage(self.id, self.destination, self.body, self.headers)


@dataclass
class MemoryStore:
    """Dictionaries behind the Store contract. ``fail_next`` injects one failure (tests)."""

    calcs: dict[UUID, _Calc] = field(default_factory=dict)
    exchanges: dict[UUID, _Exchange] = field(default_factory=dict)
    outbox: dict[int, _Row] = field(default_factory=dict)
    fail_next: str | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _listeners: dict[str, set[Flag]] = field(default_factory=dict)

    def _check(self, operation: str) -> None:
        if self.fail_next == operation:
            self.fail_next = None
            raise StoreError(operation, "injected failure")

    def _notify(self, channel: str) -> None:
        for flag in self._listeners.get(channel, ()):
            flag.fire()

    def _add_row(
        self,
        destination: str,
        body: bytes,
        headers: dict[str, str],
        calc: UUID,
        lease: float | None,
    ) -> _Row:
        row = _Row(next(self._ids), destination, body, headers, calc, leased_until=lease)
        self.outbox[row.id] = row
        return row

    async def create_calculation(self, calc: NewCalculation, *, queue: str) -> bool:
        existing = self.calcs.get(calc.id)
        if existing is not None:
            if existing.new.request_hash != calc.request_hash:
                raise ConflictError(str(calc.id))
            return False
        if len({x.insurer for x in calc.exchanges}) != len(calc.exchanges):
            raise StoreError("create_calculation", "one exchange per insurer")
        rows = [
            (queue, Job(x.correlation_id, calc.id, x.insurer).encode(), {"insurer": x.insurer})
            for x in calc.exchanges
        ]
        self._check("create_calculation")  # fails before anything is visible: atomic
        self.calcs[calc.id] = _Calc(calc)
        for x in calc.exchanges:
            self.exchanges[x.correlation_id] = _Exchange(
                x.correlation_id, calc.id, x.insurer, x.insurer_name
            )
        for dest, body, headers in rows:
            self._add_row(dest, body, headers, calc.id, None)
        self._notify(OUTBOX_CHANNEL)
        self._notify(CALCULATIONS_CHANNEL)
        return True

    async def get_calculation(self, calculation_id: UUID) -> CalculationView | None:
        calc = self.calcs.get(calculation_id)
        if calc is None:
            return None
        views = []
        for x in calc.new.exchanges:
            ex = self.exchanges[x.correlation_id]
            o = ex.outcome
            views.append(
                ExchangeView(
                    ex.insurer,
                    ex.insurer_name,
                    o.kind.value if o else "pending",
                    o.premium if o else None,
                    o.message if o else None,
                    o.ready_at if o else None,
                    o.received_at if o else None,
                    o.detail if o else {},
                )
            )
        n = calc.new
        return CalculationView(
            n.id,
            n.user_id,
            n.request,
            n.created_at,
            n.deadline_at,
            calc.completed_at,
            n.stub,
            tuple(sorted(views, key=lambda v: v.insurer)),
            n.closing,
            calc.closed_at,
            calc.seq,
        )

    async def claim_outbox(self, *, now: float, lease: float, limit: int) -> list[OutboxMessage]:
        self._check("claim_outbox")
        out: list[OutboxMessage] = []
        for row in self.outbox.values():
            if len(out) >= limit:
                break
            if row.sent_at is None and (row.leased_until is None or row.leased_until < now):
                row.leased_until = now + lease
                out.append(row.message())
        return out

    async def mark_sent(self, ids: Sequence[int], *, now: float) -> None:
        self._check("mark_sent")
        for i in ids:
            self.outbox[i].sent_at = now

    async def load_exchange(self, correlation_id: UUID) -> Exchange | None:
        self._check("load_exchange")
        ex = self.exchanges.get(correlation_id)
        if ex is None:
            return None
        calc = self.calcs[ex.calculation_id]
        n = calc.new
        return Exchange(
            ex.correlation_id,
            ex.calculation_id,
            ex.insurer,
            n.user_id,
            n.request,
            n.created_at,
            n.deadline_at,
            n.closing,
            ex.remote_id,
            ex.outcome.kind if ex.outcome else None,
            calc.closed_at is not None,
        )

    async def record_submission(self, correlation_id: UUID, remote_id: str) -> None:
        self._check("record_submission")
        ex = self.exchanges.get(correlation_id)
        if ex is not None:
            ex.remote_id = remote_id

    def _event_row(self, calc: _Calc, event: dict[str, Any], topic: str, lease: float) -> _Row:
        return self._add_row(topic, encode_event(event), event_headers(event), calc.new.id, lease)

    def _complete(self, calc: _Calc, *, topic: str, now: float, lease: float) -> list[_Row]:
        """Complete ``calc``; its unsent events in order, ``completed`` last (see postgres)."""
        calc.completed_at = now
        offers = sum(
            1
            for x in calc.new.exchanges
            if (o := self.exchanges[x.correlation_id].outcome) and o.kind == OutcomeKind.OFFER
        )
        calc.seq += 1
        event = completed_event(
            calc.new.id,
            calc.new.user_id,
            calc.seq,
            offers=offers,
            stub=calc.new.stub,
            completed_at=now,
        )
        self._event_row(calc, event, topic, now + lease)
        rows = [
            r
            for r in self.outbox.values()
            if r.calculation_id == calc.new.id and r.sent_at is None and r.destination == topic
        ]
        for r in rows:
            r.leased_until = now + lease
        return rows

    def _close(self, calc: _Calc, now: float) -> None:
        """The late window is over: pending exchanges time out, polling stops."""
        calc.closed_at = now
        for x in calc.new.exchanges:
            ex = self.exchanges[x.correlation_id]
            if ex.outcome is None:
                ex.outcome = Outcome(OutcomeKind.TIMED_OUT, received_at=now)

    async def settle_exchange(
        self, correlation_id: UUID, outcome: Outcome, *, topic: str, now: float, lease: float
    ) -> list[OutboxMessage]:
        self._check("settle_exchange")
        ex = self.exchanges.get(correlation_id)
        if ex is None:
            raise StoreError("settle_exchange", f"unknown correlation id {correlation_id}")
        calc = self.calcs[ex.calculation_id]
        if ex.outcome is not None or calc.closed_at is not None:
            return []
        rows: list[_Row] = []
        if calc.completed_at is None and now >= calc.new.deadline_at:
            rows = self._complete(calc, topic=topic, now=now, lease=lease)  # `completed` first
        late = calc.completed_at is not None
        if late:
            outcome = replace(outcome, detail={**outcome.detail, "late": True})
        ex.outcome = outcome
        if outcome.kind != OutcomeKind.TIMED_OUT:
            calc.seq += 1
            n = calc.new
            event = insurer_event(n.id, n.user_id, calc.seq, ex.insurer, ex.insurer_name, outcome)
            rows.append(self._event_row(calc, event, topic, now + lease))
        if all(self.exchanges[x.correlation_id].outcome for x in calc.new.exchanges):
            if not late:
                rows = self._complete(calc, topic=topic, now=now, lease=lease)
            self._close(calc, now)
        return [r.message() for r in rows]

    async def complete_due(
        self, *, topic: str, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        self._check("complete_due")
        due = [
            c
            for c in self.calcs.values()
            if (c.completed_at is None and c.new.deadline_at <= now)
            or (c.closed_at is None and c.new.closing <= now)
        ]
        rows = []
        for calc in sorted(due, key=lambda c: c.new.deadline_at)[:limit]:
            if calc.completed_at is None:
                rows += self._complete(calc, topic=topic, now=now, lease=lease)
            if calc.new.closing <= now:
                self._close(calc, now)
        return [r.message() for r in rows]

    async def next_deadline(self) -> float | None:
        times = [c.new.deadline_at for c in self.calcs.values() if c.completed_at is None]
        times += [c.new.closing for c in self.calcs.values() if c.closed_at is None]
        return min(times, default=None)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Flag]:
        flag = Flag()
        self._listeners.setdefault(channel, set()).add(flag)
        try:
            yield flag
        finally:
            self._listeners[channel].discard(flag)
