"""The outbox relay: publishes what the api stored, and anything orphaned by a crash.

It runs in the api and in every worker: events a crashed worker left in the outbox go out
when their lease ends as long as any api or worker is alive.

Wakes on NOTIFY (sub-millisecond after the COMMIT) and on a slow drift-free safety tick that
catches leases run out and lost notifications. Claims with SKIP LOCKED under a lease, so any
number of relays run side by side without publishing a row twice (short of a crash).
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

    ``listen=False``: the safety tick only. Workers relay that way: new jobs are the api's
    (its relay wakes on their NOTIFY), a worker's own events it publishes itself, so a
    worker's relay is there for orphans whose lease ran out, and a wake-up per POST in every
    worker would only be an empty claim.
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
