"""The outbox relay: publishes what a crash left in the outbox.

The api publishes the jobs it commits, and a worker the events it stores, themselves, each
row leased to its publisher. The relay runs in the api and in every worker for the rest:
rows whose lease ran out because their publisher died or the broker was away. They go out
as long as any api or worker is alive.

It wakes on a slow drift-free safety tick, and optionally on NOTIFY (sub-millisecond after
the COMMIT) for rows nobody leased. Claims with SKIP LOCKED under a lease, so any number of
relays run side by side without publishing a row twice (short of a crash).
"""

from __future__ import annotations

import logging
import math

import trio

from osago.loops._deps import LoopDeps
from osago.loops._woken import run_woken
from osago.outbox import publish
from osago.storage import OUTBOX_CHANNEL

__all__ = ["run"]

log = logging.getLogger("osago.relay")


async def run(
    deps: LoopDeps,
    *,
    listen: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Relay until ``deps.stop``; rows not yet published stay for the next relay.

    ``listen=False``: the safety tick only, as the api and the workers run it: every row they
    write they publish themselves, so a wake-up per COMMIT would only be an empty claim.
    ``listen=True`` also wakes on NOTIFY, for rows written unleased (tests).
    """
    s = deps.settings

    async def step(woken: bool) -> float:
        while batch := await deps.store.claim_outbox(
            now=deps.clock.now(), lease=s.outbox_lease, limit=s.relay_batch
        ):
            if not await publish(deps.broker, deps.store, deps.clock, batch):
                break  # the broker is away: the rows wait out their lease
            log.debug("relay: published %d messages", len(batch))
        return math.inf

    await run_woken(
        deps.store,
        OUTBOX_CHANNEL if listen else None,
        deps.stop,
        step,
        tick=s.relay_tick,
        log=log,
        task_status=task_status,
    )
