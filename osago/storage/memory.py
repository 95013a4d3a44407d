"""In-process twin of the PostgreSQL store: same contract, no durability.

Used by fast unit tests. It passes the same contract tests as :mod:`osago.storage.postgres`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

from osago.errors import ConflictError, StoreError
from osago.lifecycle import CalcState, ExchangeState, Plan, on_answer, on_due
from osago.models import (
    CalculationView,
    Exchange,
    ExchangeView,
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
from osago.storage._port import CALCULATIONS_CHANNEL, OUTBOX_CHANNEL
from osago.storage._results import KnownExchange, Settled
from osago.storage._settling import plan_answers
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
    steps: tuple[Step, ...] = ()


@dataclass
class _Row:
    id: int
    destination: str
    body: bytes
    headers: dict[str, str]
    calculation_id: UUID
    created_at: float
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
    job_failures: dict[str, tuple[str, float]] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
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
        now: float,
    ) -> _Row:
        row = _Row(next(self._ids), destination, body, headers, calc, now, leased_until=lease)
        self.outbox[row.id] = row
        return row

    async def create_calculation(
        self, calc: NewCalculation, *, queue: str, lease: float = 0.0
    ) -> list[OutboxMessage] | None:
        existing = self.calcs.get(calc.id)
        if existing is not None:
            if existing.new.request_hash != calc.request_hash:
                raise ConflictError(str(calc.id))
            return None
        if len({x.insurer for x in calc.exchanges}) != len(calc.exchanges):
            raise StoreError("create_calculation", "one exchange per insurer")
        jobs = [Job(x.correlation_id, calc.id, x.insurer) for x in calc.exchanges]
        rows = [(queue, job.encode(), job.headers()) for job in jobs]
        self._check("create_calculation")  # fails before anything is visible: atomic
        self.calcs[calc.id] = _Calc(calc)
        for x in calc.exchanges:
            self.exchanges[x.correlation_id] = _Exchange(
                x.correlation_id, calc.id, x.insurer, x.insurer_name
            )
        leased = calc.created_at + lease if lease else None
        added = [self._add_row(d, b, h, calc.id, leased, calc.created_at) for d, b, h in rows]
        if not lease:
            self._notify(OUTBOX_CHANNEL)
        self._notify(CALCULATIONS_CHANNEL)
        return [r.message() for r in added]

    async def get_calculation(self, calculation_id: UUID) -> CalculationView | None:
        calc = self.calcs.get(calculation_id)
        if calc is None:
            return None
        views = [ExchangeView(ex.insurer, ex.insurer_name, ex.outcome) for ex in self._of(calc)]
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

    async def load_exchanges(self, correlation_ids: Sequence[UUID]) -> dict[UUID, Exchange]:
        self._check("load_exchanges")
        return {c: x for c in correlation_ids if (x := self._exchange(c)) is not None}

    def known_exchange(self, correlation_id: UUID) -> KnownExchange | None:
        ex = self.exchanges.get(correlation_id)
        if ex is None:
            return None
        closed = self.calcs[ex.calculation_id].closed_at is not None
        return KnownExchange(ex.calculation_id, ex.insurer, ex.outcome is not None or closed)

    async def settled_among(self, correlation_ids: Sequence[UUID]) -> dict[UUID, bool]:
        self._check("settled_among")
        return {c: x.settled for c in correlation_ids if (x := self._exchange(c)) is not None}

    def _exchange(self, correlation_id: UUID) -> Exchange | None:
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
            RawJSON(json.dumps(n.request)),
            n.created_at,
            n.deadline_at,
            n.closing,
            ex.remote_id,
            ex.outcome.kind if ex.outcome else None,
            calc.closed_at is not None,
        )

    async def record_submissions(self, submissions: Sequence[tuple[UUID, str]]) -> None:
        self._check("record_submissions")
        for correlation_id, remote_id in submissions:
            if (ex := self.exchanges.get(correlation_id)) is not None:
                ex.remote_id = remote_id

    def _state(self, calc: _Calc) -> CalcState:
        n = calc.new
        return CalcState(
            n.id,
            n.user_id,
            n.stub,
            n.deadline_at,
            n.closing,
            calc.completed_at,
            calc.closed_at,
            calc.seq,
            tuple(
                ExchangeState(
                    ex.correlation_id,
                    ex.insurer,
                    ex.insurer_name,
                    ex.outcome.kind if ex.outcome else None,
                )
                for ex in self._of(calc)
            ),
        )

    def _of(self, calc: _Calc) -> list[_Exchange]:
        """The calculation's exchanges, in the order it asked its insurers."""
        return [self.exchanges[x.correlation_id] for x in calc.new.exchanges]

    def _carry_out(
        self,
        calc: _Calc,
        plan: Plan,
        *,
        topic: str,
        now: float,
        lease: float,
    ) -> list[OutboxMessage]:
        """Apply ``plan`` (see :class:`osago.lifecycle.Plan`); the events to publish."""
        if plan.settle is not None and plan.settled is not None:
            self.exchanges[plan.settled].outcome = plan.settle
        for cid in plan.timed_out:
            self.exchanges[cid].outcome = Outcome(OutcomeKind.TIMED_OUT, received_at=now)
        calc.seq = plan.seq
        if plan.complete:
            calc.completed_at = now
        if plan.close:
            calc.closed_at = now
        rows = [
            self._add_row(topic, e.body, dict(e.headers), calc.new.id, now + lease, now)
            for e in plan.events
        ]
        if plan.flush:
            rows = [
                r
                for r in self.outbox.values()
                if r.calculation_id == calc.new.id and r.sent_at is None and r.destination == topic
            ]
            for r in rows:
                r.leased_until = now + lease
        return [r.message() for r in rows]

    async def settle_exchange(
        self, correlation_id: UUID, outcome: Outcome, *, topic: str, now: float, lease: float
    ) -> list[OutboxMessage]:
        self._check("settle_exchange")
        ex = self.exchanges.get(correlation_id)
        if ex is None:
            raise StoreError("settle_exchange", f"unknown correlation id {correlation_id}")
        calc = self.calcs[ex.calculation_id]
        plan = on_answer(self._state(calc), correlation_id, outcome, now)
        return self._carry_out(calc, plan, topic=topic, now=now, lease=lease)

    async def settle_exchanges(
        self,
        answers: Sequence[tuple[UUID, Outcome]],
        *,
        topic: str,
        now: float,
        lease: float,
        steps: Mapping[UUID, Sequence[Step]] | None = None,
    ) -> dict[UUID, Settled]:
        self._check("settle_exchanges")
        self._keep_steps((steps or {}).items())
        calcs = {
            ex.calculation_id: self.calcs[ex.calculation_id]
            for cid, _ in answers
            if (ex := self.exchanges.get(cid)) is not None
        }
        settling = plan_answers([self._state(c) for c in calcs.values()], answers, now)
        done = [
            (state.id, self._carry_out(calcs[state.id], plan, topic=topic, now=now, lease=lease))
            for state, plan in settling.plans
        ]
        return settling.hand_out(done)

    async def complete_due(
        self, *, topic: str, now: float, lease: float, limit: int
    ) -> list[OutboxMessage]:
        self._check("complete_due")
        states = [(c, self._state(c)) for c in self.calcs.values()]
        due = [(c, st) for c, st in states if (t := st.next_due) is not None and t <= now]
        out: list[OutboxMessage] = []
        for calc, state in sorted(due, key=lambda d: d[1].deadline_at)[:limit]:
            plan = on_due(state, now)
            out += self._carry_out(calc, plan, topic=topic, now=now, lease=lease)
        return out

    async def outbox_of(self, calculation_id: UUID) -> list[OutboxTrace]:
        return [
            OutboxTrace(r.destination, r.body, dict(r.headers), r.created_at, r.sent_at)
            for r in sorted(self.outbox.values(), key=lambda r: r.id)
            if r.calculation_id == calculation_id
        ]

    async def record_steps(self, steps: Sequence[tuple[UUID, Sequence[Step]]]) -> None:
        self._check("record_steps")
        self._keep_steps(steps)

    def _keep_steps(self, steps: Iterable[tuple[UUID, Sequence[Step]]]) -> None:
        for correlation_id, done in steps:
            if (ex := self.exchanges.get(correlation_id)) is not None:
                ex.steps = tuple(done)

    async def record_pushes(self, pushes: Sequence[Push]) -> None:
        self._check("record_pushes")
        self.pushes.extend(pushes)

    async def trail_of(self, calculation_id: UUID) -> Trail:
        self._check("trail_of")
        mine = [x for x in self.exchanges.values() if x.calculation_id == calculation_id]
        return Trail(
            {x.insurer: list(x.steps) for x in mine if x.steps},
            sorted(
                (p for p in self.pushes if p.calculation_id == calculation_id),
                key=lambda p: (p.at, p.seq),
            ),
        )

    async def outbox_backlog(self) -> tuple[int, float | None]:
        self._check("outbox_backlog")
        unsent = [r for r in self.outbox.values() if r.sent_at is None]
        return len(unsent), min((r.created_at for r in unsent), default=None)

    async def record_failure(self, message_id: str, reason: str, *, now: float) -> None:
        self._check("record_failure")
        self.job_failures[message_id] = (reason, now)

    async def failures(self, message_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        return {m: self.job_failures[m] for m in message_ids if m in self.job_failures}

    async def purge_closed(self, *, before: float, limit: int) -> int:
        self._check("purge_closed")
        for old in [m for m, (_, at) in self.job_failures.items() if at < before]:
            del self.job_failures[old]
        gone = sorted(
            (c.closed_at, calc_id)
            for calc_id, c in self.calcs.items()
            if c.closed_at is not None and c.closed_at < before
        )[:limit]
        ids = {calc_id for _, calc_id in gone}
        for calc_id in ids:
            del self.calcs[calc_id]
        for cid in [k for k, x in self.exchanges.items() if x.calculation_id in ids]:
            del self.exchanges[cid]
        for row in [
            k for k, r in self.outbox.items() if r.calculation_id in ids and r.sent_at is not None
        ]:
            del self.outbox[row]
        self.pushes = [p for p in self.pushes if p.calculation_id not in ids]
        return len(ids)

    async def next_deadline(self) -> float | None:
        times = [t for c in self.calcs.values() if (t := self._state(c).next_due) is not None]
        return min(times, default=None)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Flag]:
        flag = Flag()
        self._listeners.setdefault(channel, set()).add(flag)
        try:
            yield flag
        finally:
            self._listeners[channel].discard(flag)
