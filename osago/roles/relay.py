"""The outbox relay: publishes what the api stored, and anything orphaned by a crash.

It runs in the api and in every worker: events a crashed worker left in the outbox go out
when their lease ends as long as any api or worker is alive.

Wakes on NOTIFY (sub-millisecond after the COMMIT) and on a slow drift-free safety tick that
catches leases run out and lost notifications. Claims with SKIP LOCKED under a lease, so any
number of relays run side by side without publishing a row twice (short of a crash).
"""

from __future__ import annotations

import logging

import trio

from osago._aio import wait_any
from osago.errors import BrokerError, StoreError
from osago.outbox import publish
from osago.roles._deps import RelayDeps
from osago.storage import OUTBOX_CHANNEL

__all__ = ["run"]

log = logging.getLogger("osago.relay")


async def run(
    deps: RelayDeps, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Relay until ``deps.stop``; rows not yet published stay for the next relay."""
    s = deps.settings
    async with deps.store.listen(OUTBOX_CHANNEL) as wake:
        task_status.started()
        next_tick = trio.current_time()
        while not deps.stop.is_set():
            try:
                while batch := await deps.store.claim_outbox(
                    now=deps.clock.now(), lease=s.outbox_lease, limit=s.relay_batch
                ):
                    if await publish(deps.broker, deps.store, deps.clock, batch):
                        log.debug("relay: published %d messages", len(batch))
                    else:
                        break
            except (StoreError, BrokerError) as exc:
                log.warning("relay: %s; retrying at the next tick", exc)
            next_tick = max(next_tick + s.relay_tick, trio.current_time())
            with trio.move_on_at(next_tick):
                await wait_any(wake.wait, deps.stop.wait)
