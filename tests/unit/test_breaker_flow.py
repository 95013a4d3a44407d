"""The breaker in the worker's path (MockClock): a blip shorter than the user's deadline
is waited out, an insurer down for longer is reported unavailable before the deadline (at
once when its breaker's next trial is past it), and it comes back through half-open."""

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
from tests.unit.test_flow import harness

INSURERS = """
[defaults]
outage_patience = 30.0
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


def _settings(
    tmp_path: Path, monkeypatch: object, deadline: float, outage_patience: float = 30.0
) -> None:
    path = tmp_path / "insurers.toml"
    path.write_text(
        INSURERS.replace("outage_patience = 30.0", f"outage_patience = {outage_patience}")
    )
    settings = dataclasses.replace(
        test_flow.SETTINGS, insurers_file=path, deadline_seconds=deadline
    )
    monkeypatch.setattr(test_flow, "SETTINGS", settings)  # type: ignore[attr-defined]


def _no_offers(h: Any) -> list[tuple[float, str, str]]:
    return [
        (round(t, 3), e["calculation_id"], e["outcome"])
        for t, e in h.events
        if e["type"] == "no_offer"
    ]


async def test_a_blip_shorter_than_the_deadline_costs_no_offer(
    autojump_clock: MockClock, tmp_path: Path, monkeypatch: object
) -> None:
    """The insurer is down for 8 s: the breaker opens, the calculations in flight wait for
    it instead of ending as failed or unavailable, and every one gets its offer."""
    _settings(tmp_path, monkeypatch, deadline=30.0)
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        h.insurers.down.add("borealis")
        calcs = []
        for _ in range(3):
            calcs.append(await h.submit())
            await trio.sleep(2)
        await trio.sleep(2)
        h.insurers.down.clear()  # t = 8; the breaker's 10 s open wait ends after 10
        await trio.sleep(40)
    assert _no_offers(h) == []
    offers = {(e["calculation_id"], e["insurer"]) for _, e in h.events if e["type"] == "offer"}
    assert offers == {(str(c.id), i) for c in calcs for i in ("aurora", "borealis")}
    late = [t for t, e in h.events if e["type"] == "offer" and e["insurer"] == "borealis"]
    assert len(late) == 3
    assert all(10 <= t < 13 for t in late)  # at the breaker's trial, long before the deadline


async def test_an_insurer_down_past_the_deadline_is_unavailable_before_it_and_then_at_once(
    autojump_clock: MockClock, tmp_path: Path, monkeypatch: object
) -> None:
    _settings(tmp_path, monkeypatch, deadline=30.0)
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        h.insurers.down.add("borealis")
        first = await h.submit()  # its failures open the breaker (10 s), its trial fails
        await trio.sleep(15)
        second = await h.submit()  # waits for the next trial (20 s after it): fails too
        await trio.sleep(25)
        t_third = trio.current_time()
        third = await h.submit()  # the next trial (40 s) is past its deadline: at once
        await trio.sleep(1)
        h.insurers.down.clear()
        await trio.sleep(60)  # the breaker recovers: later calculations get offers
        fourth = await h.submit()
        await trio.sleep(31)
    no_offers = _no_offers(h)
    assert [(c, o) for _, c, o in no_offers] == [
        (str(first.id), "unavailable"),
        (str(second.id), "unavailable"),
        (str(third.id), "unavailable"),
    ]
    t1, t2, t3 = (t for t, _, _ in no_offers)
    assert 10 < t1 < 12  # at its failed trial, well before its deadline (30)
    assert 30 < t2 < 33  # at the next trial, 20 s later
    assert t3 == round(t_third, 3)  # not waited for
    fourth_events = [e["type"] for _, e in h.events if e["calculation_id"] == str(fourth.id)]
    assert sorted(fourth_events) == ["completed", "offer", "offer"]


async def test_an_outage_is_not_waited_for_so_it_holds_no_job(
    autojump_clock: MockClock, tmp_path: Path, monkeypatch: object
) -> None:
    """Patience is for a blip: once the breaker has been open for ``outage_patience`` (15 s),
    a new calculation's exchange with that insurer is unavailable at once, though the
    breaker's next trial falls within its deadline (before, it was held, its job unacked,
    for most of a minute); the calculation in flight when the outage began gives up at the
    first reopening past 15 s, not at its deadline."""
    _settings(tmp_path, monkeypatch, deadline=60.0, outage_patience=15.0)
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        h.insurers.down.add("borealis")
        first = await h.submit()  # its failures open the breaker (10 s, then 20 s)
        await trio.sleep(20)
        t_second = trio.current_time()
        second = await h.submit()  # open ~19 s, its next trial ~10 s away: not waited for
        await trio.sleep(70)
    no_offers = _no_offers(h)
    assert sorted((c, o) for _, c, o in no_offers) == sorted(
        [(str(first.id), "unavailable"), (str(second.id), "unavailable")]
    )
    at = {c: t for t, c, _ in no_offers}
    assert at[str(second.id)] == round(t_second, 3)
    assert at[str(first.id)] < 35  # the trial ~30 s after opening, 25 s before its deadline
    offers = {(e["calculation_id"], e["insurer"]) for _, e in h.events if e["type"] == "offer"}
    assert offers == {(str(first.id), "aurora"), (str(second.id), "aurora")}


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
