"""Retention: calculations closed longer ago than ``Settings.retention`` are deleted, with their
exchanges and sent events, so that tables and indexes stay the size of the recent past.

Every worker sweeps (several race harmlessly: SKIP LOCKED), at a drift-free interval, in
batches so that no transaction holds many rows.
"""

from __future__ import annotations

import logging

import trio

from osago.errors import StoreError
from osago.loops._deps import LoopDeps

__all__ = ["run"]

log = logging.getLogger("osago.retention")

BATCH = 1000


async def run(
    deps: LoopDeps, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Sweep every ``retention_sweep`` seconds until ``deps.stop``."""
    s = deps.settings
    task_status.started()
    next_at = trio.current_time()
    while not deps.stop.is_set():
        before = deps.clock.now() - s.retention
        total = 0
        try:
            while not deps.stop.is_set():
                gone = await deps.store.purge_closed(before=before, limit=BATCH)
                total += gone
                if gone < BATCH:
                    break
        except StoreError as exc:
            log.warning("retention: %s; again at the next sweep", exc)
        if total:
            log.info(
                "retention: deleted %d calculations closed %.0f s ago or more", total, s.retention
            )
        next_at = max(next_at + s.retention_sweep, trio.current_time())
        with trio.move_on_at(next_at):
            await deps.stop.wait()
