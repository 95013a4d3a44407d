"""The breaker in the worker's path: an insurer that is down is reported at once as
unavailable, never waited for, and comes back through half-open (MockClock, exact times)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from uuid import UUID

import trio
from trio.testing import MockClock

from osago.insurers import InsurerConfig, Pending, Quote
from osago.insurers.resilient import GuardedInsurer
from osago.resilience import BulkheadPolicy
from tests.unit import test_flow
from tests.unit.test_flow import harness, kinds

INSURERS = """
[defaults]
[defaults.schedule]
min_interval = 0.25
max_interval = 0.25
[defaults.retry]
attempts = 2
initial = 0.0
max_delay = 0.0
[defaults.breaker]
window_size = 4
minimum_calls = 4
failure_rate = 0.5
open_wait = 10.0
half_open_calls = 1
[[insurers]]
code = "aurora"
[[insurers]]
code = "borealis"
"""


async def test_down_insurer_is_unavailable_at_once_then_recovers(
    autojump_clock: MockClock, tmp_path: Path, monkeypatch: object
) -> None:
    path = tmp_path / "insurers.toml"
    path.write_text(INSURERS)
    settings = dataclasses.replace(test_flow.SETTINGS, insurers_file=path)
    monkeypatch.setattr(test_flow, "SETTINGS", settings)  # type: ignore[attr-defined]
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        h.insurers.down.add("borealis")
        for _ in range(2):  # 2 calculations x 2 attempts = 4 failures: open at t=6
            await h.submit()
            await trio.sleep(6)
        t_third = trio.current_time()  # 12: open until 16
        third = await h.submit()  # rejected at once: unavailable, not waited for
        await trio.sleep(1)
        h.insurers.down.clear()
        await trio.sleep(5)  # t=18: open_wait has passed
        await h.submit()  # the half-open trial succeeds: closed again
        await trio.sleep(6)
    outcomes = [
        (round(t, 3), e["type"], e.get("insurer"), e.get("outcome"))
        for t, e in h.events
        if e["type"] == "no_offer"
    ]
    assert [o[3] for o in outcomes] == ["failed", "failed", "unavailable"]
    assert outcomes[2][0] == round(t_third, 3)  # the same instant it was submitted
    third_events = [e for _, e in h.events if e["calculation_id"] == str(third.id)]
    assert sorted(e["type"] for e in third_events) == ["completed", "no_offer", "offer"]
    last = [k for _, k, _ in kinds(h)][-3:]
    assert last == ["offer", "offer", "completed"]


async def test_a_hedged_poll_holds_a_bulkhead_slot_per_call_in_flight(
    autojump_clock: MockClock,
) -> None:
    in_flight: list[int] = []

    class Slow:
        async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: Any) -> str:
            raise NotImplementedError

        async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
            in_flight.append(guard.bulkhead.in_use)
            await trio.sleep(1.0)
            return Pending()

    config = InsurerConfig(
        code="x",
        name="X",
        base_url="http://x.test",
        hedge_delay=0.3,
        poll_timeout=5.0,
        bulkhead=BulkheadPolicy(max_concurrent=5, max_wait=0.1),
    )
    guard = GuardedInsurer(config, Slow(), ())
    assert await guard.poll("r1") == Pending()
    assert in_flight == [1, 2]  # the first poll, then its hedge in a slot of its own
    assert guard.bulkhead.in_use == 0
