"""Issue 12: the timeline shows what the worker did in each exchange (picked up, submitted,
each poll) and each frame pushed to the user; noted late, in batches, for support only."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from osago.models import Push, Trail
from osago.timeline import timeline
from tests.unit.test_flow import EPOCH, SETTINGS, harness


async def test_each_exchange_notes_its_submit_and_polls_and_where_it_ended(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 1.0, "borealis": 500.0}) as h:
        calc = await h.submit(late_window=5.0)
        await trio.sleep(15.0)
        trail = await h.store.trail_of(calc.id)
    aurora = [(round(t - EPOCH, 2), what) for t, what in trail.steps["aurora"]]
    assert aurora[0] == (0.0, "picked up")
    assert aurora[1][1].startswith("submitted as ")
    # Polled every 0.25 s (the harness's schedule) until the answer ready at 1.0.
    assert aurora[2:] == [
        (0.25, "polled: pending"),
        (0.5, "polled: pending"),
        (0.75, "polled: pending"),
        (1.0, "polled: answered"),
    ]
    borealis = trail.steps["borealis"]
    assert borealis[-1] == (EPOCH + 10.0, "stopped: the late window ended")
    assert sum(what == "polled: pending" for _, what in borealis) > 10


async def test_the_timeline_folds_pending_polls_and_shows_pushes(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 1.0, "borealis": 2.0}) as h:
        calc = await h.submit()
        await trio.sleep(5.0)
        trail = await h.store.trail_of(calc.id)
        view = await h.store.get_calculation(calc.id)
        traces = await h.store.outbox_of(calc.id)
    assert view is not None
    pushed = Trail(trail.steps, [Push(calc.id, 1, "offer", EPOCH + 1.2)])
    entries = timeline(view, traces, pushed, queue=SETTINGS.requests_queue)
    mine = [(e["what"], e.get("polls")) for e in entries if e["insurer"] == "aurora"]
    assert ("polled: pending (3 polls)", 3) in mine
    assert ("polled: answered", None) in mine
    push = next(e for e in entries if e["what"] == "offer pushed to a tab")
    assert push["insurer"] == "aurora"  # the event #1 is aurora's offer
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
