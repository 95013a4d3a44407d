"""The calculations one PostgreSQL store last read or wrote, each at its version.

Why: settling an answer was two statements, a read of its calculation's state and a write
conditional on the version read (see :mod:`osago.storage._pg_lifecycle`): about 20 of the
30 statements a calculation cost. A store that wrote the calculation last already knows
its state (the plan it carried out, applied) and its new version (returned by the write),
so it can plan on that and write at once. When another process wrote meanwhile, the
version no longer holds: the write changes nothing and returns the current state, which
is what the read would have returned. A wrong guess therefore costs what every settle
cost before, and the version check keeps it safe: a plan is carried out only on the row
version it was made on, whoever read it.

An entry is a hint, never the truth: it may be stale, and losing it (evicted, forgotten)
costs one read. Entries go when the calculation closes (nothing more settles on it) and,
past ``limit``, the least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from osago.lifecycle import CalcState

__all__ = ["KnownStates"]


class KnownStates:
    """Calculation states by id, each with the version (the row's ``xmin``) it was at."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._states: OrderedDict[UUID, tuple[CalcState, str]] = OrderedDict()
        self._calc_of: dict[UUID, UUID] = {}  # correlation id -> calculation id

    def __len__(self) -> int:
        return len(self._states)

    def of_exchange(self, correlation_id: UUID) -> tuple[CalcState, str] | None:
        """The known state (and version) of the calculation this exchange belongs to."""
        calc_id = self._calc_of.get(correlation_id)
        return None if calc_id is None else self._states.get(calc_id)

    def put(self, state: CalcState, version: str) -> None:
        """Remember ``state`` at ``version``; a closed calculation is forgotten instead."""
        if state.closed_at is not None:
            self.forget(state.id)
            return
        if state.id not in self._states:
            for x in state.exchanges:
                self._calc_of[x.correlation_id] = state.id
        self._states[state.id] = (state, version)
        self._states.move_to_end(state.id)
        while len(self._states) > self._limit:
            self._drop(*self._states.popitem(last=False))

    def forget(self, calculation_id: UUID) -> None:
        """Drop what is known of this calculation, if anything."""
        entry = self._states.pop(calculation_id, None)
        if entry is not None:
            self._drop(calculation_id, entry)

    def _drop(self, calculation_id: UUID, entry: tuple[CalcState, str]) -> None:
        for x in entry[0].exchanges:
            if self._calc_of.get(x.correlation_id) == calculation_id:
                del self._calc_of[x.correlation_id]
