"""The deadline keeper: completes calculations at their deadline (the user gets `completed`,
with the stub when no offer came) and closes them when their late window ends.

Deadlines live in the database, so a keeper in any process completes any calculation: if the
process that ran its exchanges was killed, another keeper still fires on time. Several keepers
race harmlessly -- completion is ``UPDATE ... WHERE completed_at IS NULL`` under SKIP LOCKED.
The keeper sleeps until the earliest deadline (drift-free ``sleep_until``), woken early by
NOTIFY when a new calculation arrives, with a slow safety tick.
"""

from __future__ import annotations

import logging

import trio

from osago._aio import wait_any
from osago.errors import BrokerError, StoreError
from osago.outbox import publish
from osago.roles._deps import WorkerDeps
from osago.storage import CALCULATIONS_CHANNEL

__all__ = ["run"]

log = logging.getLogger("osago.deadline")

_BUSY = 0.005  # seconds before looking again at a due calculation someone else holds


async def run(
    deps: WorkerDeps, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Complete due calculations until ``deps.stop``."""
    s, store, clock = deps.settings, deps.store, deps.clock
    async with store.listen(CALCULATIONS_CHANNEL) as wake:
        task_status.started()
        while not deps.stop.is_set():
            wake_at = trio.current_time() + s.relay_tick
            try:
                events = await store.complete_due(
                    topic=s.results_topic, now=clock.now(), lease=s.outbox_lease, limit=100
                )
                if events:
                    done = [m for m in events if m.headers.get("event-type") == "completed"]
                    log.info("deadline: completed %d calculations", len(done))
                    await publish(deps.broker, store, clock, events)
                    continue
                nxt = await store.next_deadline()
                if nxt is not None:
                    # Already due yet not done: another keeper (or a settling worker) holds
                    # its row. Look again shortly rather than spin on it.
                    due_in = nxt - clock.now()
                    wake_at = min(wake_at, trio.current_time() + (due_in if due_in > 0 else _BUSY))
            except (StoreError, BrokerError) as exc:
                log.warning("deadline: %s; retrying at the next tick", exc)
            with trio.move_on_at(wake_at):
                await wait_any(wake.wait, deps.stop.wait)
