"""Alarms: many sleepers on one timer wake at their own times, in order; cancel still works;
calls run at their times."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from osago.alarms import Alarms, shared_alarms


async def test_sleepers_wake_at_their_times_even_one_earlier_than_the_timer_was_set_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarms = Alarms()
    woke: list[tuple[str, float]] = []
    t0 = trio.current_time()

    async def sleeper(name: str, at: float) -> None:
        await alarms.sleep_until(t0 + at)
        woke.append((name, trio.current_time() - t0))

    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        nursery.start_soon(sleeper, "late", 5.0)
        nursery.start_soon(sleeper, "tie-first", 3.0)
        nursery.start_soon(sleeper, "tie-second", 3.0)
        await trio.sleep(1.0)  # the timer now sleeps until 3.0; an earlier one comes in
        nursery.start_soon(sleeper, "early", 2.0)
        nursery.start_soon(sleeper, "past", -1.0)  # due already: at once
        await trio.sleep(10.0)
        nursery.cancel_scope.cancel()

    # Sleepers due together are woken together (Trio runs them in its own order).
    assert woke[:2] == [("past", 1.0), ("early", 2.0)]
    assert sorted(woke[2:4]) == [("tie-first", 3.0), ("tie-second", 3.0)]
    assert woke[4:] == [("late", 5.0)]
    assert len(alarms) == 0


async def test_a_cancelled_sleeper_leaves_at_its_scope_and_the_others_are_untouched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarms = Alarms()
    t0 = trio.current_time()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, at: float, give_up: float) -> None:
        with trio.move_on_after(give_up):
            await alarms.sleep_until(t0 + at)
            woke.append((name, trio.current_time() - t0))
            return
        woke.append((f"{name} gave up", trio.current_time() - t0))

    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        nursery.start_soon(sleeper, "patient", 4.0, 100.0)
        nursery.start_soon(sleeper, "hasty", 2.0, 1.0)
        await trio.sleep(10.0)
        nursery.cancel_scope.cancel()

    assert woke == [("hasty gave up", 1.0), ("patient", 4.0)]
    assert len(alarms) == 0  # the blanked entry went at its time


async def test_calls_run_at_their_times_unless_forgotten_and_a_failing_one_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    alarms = Alarms()
    t0 = trio.current_time()
    ran: list[tuple[str, float]] = []

    def note(name: str) -> Callable[[], None]:
        return lambda: ran.append((name, trio.current_time() - t0))

    def boom() -> None:
        raise RuntimeError("boom")

    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        alarms.call_at(t0 + 2.0, note("second"))
        forget = alarms.call_at(t0 + 1.5, note("forgotten"))
        alarms.call_at(t0 + 1.0, boom)
        alarms.call_at(t0 + 1.0, note("first"))
        await trio.sleep(0.5)
        forget()
        await trio.sleep(10.0)
        nursery.cancel_scope.cancel()

    assert ran == [("first", 1.0), ("second", 2.0)]
    assert "alarm call" in caplog.text
    assert "boom" in caplog.text


async def test_the_shared_alarms_are_one_per_run_and_need_no_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarms = shared_alarms()
    assert shared_alarms() is alarms
    t0 = trio.current_time()
    woke = trio.Event()
    alarms.call_at(t0 + 3.0, woke.set)
    await woke.wait()
    assert trio.current_time() - t0 == 3.0


class _Steps(trio.abc.Instrument):
    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += task is self.task


async def test_forgotten_calls_do_not_wake_the_timer_one_by_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Most hedges are forgotten (their poll answered first): the timer must not take a turn
    for each of them when its time comes."""
    alarms = Alarms()
    t0 = trio.current_time()
    ran: list[float] = []
    async with trio.open_nursery() as nursery:
        timer = await nursery.start(_run_as_task, alarms)
        steps = _Steps(timer)
        trio.lowlevel.add_instrument(steps)
        try:
            for i in range(100):
                alarms.call_at(t0 + 1.0 + i / 100, lambda: None)()  # forgotten at once
            alarms.call_at(t0 + 5.0, lambda: ran.append(trio.current_time() - t0))
            await trio.sleep(10.0)
        finally:
            trio.lowlevel.remove_instrument(steps)
        nursery.cancel_scope.cancel()
    assert ran == [5.0]
    assert steps.steps <= 3  # at the first blank's time (dropping them all), and at 5.0
    assert len(alarms) == 0


async def _run_as_task(
    alarms: Alarms, *, task_status: trio.TaskStatus[trio.lowlevel.Task] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started(trio.lowlevel.current_task())
    await alarms.run()
