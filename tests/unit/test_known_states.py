"""What a PostgreSQL store keeps of the calculations it wrote: bounded, and never a closed one."""

from __future__ import annotations

import uuid
from dataclasses import replace

from osago.lifecycle import CalcState, ExchangeState
from osago.storage._known import KnownStates


def state(insurers: int = 2) -> CalcState:
    exchanges = tuple(ExchangeState(uuid.uuid4(), f"i{n}", f"I{n}") for n in range(insurers))
    return CalcState(uuid.uuid4(), "u", {}, 1060.0, 1120.0, None, None, 0, exchanges)


def test_a_state_is_found_by_any_of_its_exchanges_at_its_last_version() -> None:
    known = KnownStates()
    s = state()
    known.put(s, "100")
    later = replace(s, seq=1)
    known.put(later, "101")
    for x in s.exchanges:
        assert known.of_exchange(x.correlation_id) == (later, "101")
    assert known.of_exchange(uuid.uuid4()) is None


def test_a_closed_calculation_is_forgotten_and_the_least_recently_kept_go_first() -> None:
    known = KnownStates(limit=2)
    one, two, three = state(), state(), state()
    known.put(one, "1")
    known.put(two, "2")
    known.put(one, "3")  # kept again: now the most recent
    known.put(three, "4")
    assert len(known) == 2
    assert known.of_exchange(two.exchanges[0].correlation_id) is None
    assert known.of_exchange(one.exchanges[1].correlation_id) == (one, "3")
    known.put(replace(three, closed_at=1100.0), "5")
    assert known.of_exchange(three.exchanges[0].correlation_id) is None
    assert len(known) == 1
    known.forget(one.id)
    assert len(known) == 0
    assert known.of_exchange(one.exchanges[0].correlation_id) is None
