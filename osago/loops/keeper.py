"""The deadline keeper: completes calculations at their deadline (the user gets `completed`,
with the stub when no offer came) and closes them when their late window ends.

Deadlines live in the database, so a keeper in any process completes any calculation: if the
process that ran its exchanges was killed, another keeper still fires on time. Several keepers
race harmlessly -- completion happens under the calculation's row lock, taken with SKIP LOCKED.
The keeper sleeps until the earliest deadline (drift-free ``sleep_until``), and looks at
least every ``keeper_tick`` (a drift-free safety tick). It LISTENs for new calculations only
where one can fall due before that tick (``deadline_seconds`` shorter than it).
"""

from __future__ import annotations

import logging
import math

import trio

from osago.loops._deps import LoopDeps
from osago.loops._woken import run_woken
from osago.metrics import observe_completed
from osago.outbox import publish
from osago.storage import CALCULATIONS_CHANNEL

__all__ = ["run"]

log = logging.getLogger("osago.deadline")


async def run(
    deps: LoopDeps, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Complete and close due calculations until ``deps.stop``."""
    s, store, clock = deps.settings, deps.store, deps.clock
    planned = -math.inf  # the Trio time this keeper means to look next

    async def step(woken: bool) -> float:
        nonlocal planned
        if woken and planned <= trio.current_time() + s.deadline_seconds:
            # A new calculation is due `deadline_seconds` from now: not before what we
            # already wait for, so no query (a NOTIFY per POST would cost two per keeper).
            return planned
        planned = await look()
        return planned

    async def look() -> float:
        events = await store.complete_due(
            topic=s.results_topic, now=clock.now(), lease=s.outbox_lease, limit=100
        )
        if events:
            done = sum(1 for m in events if m.headers.get("event-type") == "completed")
            log.info("deadline: completed %d calculations", done)
            await publish(deps.broker, store, clock, events)
            observe_completed(deps.metrics, events, clock.now())
            return trio.current_time()  # there may be more due: look again at once
        nxt = await store.next_deadline()
        if nxt is None:
            return trio.current_time() + s.keeper_tick
        # Already due yet not done: another keeper (or a settling worker) holds its row.
        # Look again shortly rather than spin on it.
        return trio.current_time() + max(nxt - clock.now(), s.keeper_busy_retry)

    # Why not always LISTEN: a new calculation falls due `deadline_seconds` after its POST
    # (60 s), and the keeper looks every `keeper_tick` (2 s) anyway, so a NOTIFY per POST
    # woke every worker's keeper for no query (about 2 % of a worker's CPU at calm 40/s,
    # py-spy). Only a deadline shorter than the tick needs the wake to be on time.
    listen = s.deadline_seconds < s.keeper_tick
    await run_woken(
        store,
        CALCULATIONS_CHANNEL if listen else None,
        deps.stop,
        step,
        tick=s.keeper_tick,
        log=log,
        task_status=task_status,
    )
