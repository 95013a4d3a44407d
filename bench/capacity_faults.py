"""Faults a capacity step can carry: a blip of every insurer, or one insurer out throughout.

``stall_insurers``: SIGSTOP the simulator for a few seconds (a network blip, seen from the
workers). ``insurer_out``: one insurer is out for the whole step, as a maintenance window or
a dead partner looks; the question is whether the other insurers' users notice. ``down``:
it answers 503 to everything (no end announced, so no Retry-After); ``hang``: it takes
submits but every status GET hangs for 30 s (our attempt timeouts fire instead).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from tests.cluster import Cluster

__all__ = ["OUTS", "insurer_out", "stall_insurers"]

# How an insurer is out: the simulator's control fields that make it so.
OUTS: dict[str, dict[str, object]] = {
    "down": {"fail": True},
    "hang": {"stall_rate": 1.0, "stall_seconds": 30.0},
}
# The behaviour field a control shorthand changes (the others are fields themselves).
_FIELD = {"fail": "outages"}


async def stall_insurers(cluster: Cluster, after: float, seconds: float) -> None:
    """Freeze the insurers' simulator (SIGSTOP) for ``seconds``, ``after`` seconds into the
    step: every insurer stalls at once, as a network blip would look from the workers."""
    process = cluster.procs["insurers"].process
    await trio.sleep(after)
    print(f"  stalling the insurers for {seconds:g} s", file=sys.stderr)
    process.send_signal(signal.SIGSTOP)
    try:
        await trio.sleep(seconds)
    finally:
        process.send_signal(signal.SIGCONT)


@asynccontextmanager
async def insurer_out(
    http: httpx.AsyncClient, sim: str, code: str, how: str = "down"
) -> AsyncIterator[None]:
    """Insurer ``code`` out (``how``: a key of :data:`OUTS`) inside the block, as it was
    after. No ``code``: nothing changes."""
    if not code:
        yield
        return
    fault = OUTS[how]
    r = await http.put(f"{sim}/_control/{code}", json={})  # reads it, changing nothing
    r.raise_for_status()
    current = r.json()
    restore = {f: current[f] for f in (_FIELD.get(k, k) for k in fault)}  # as it was
    (await http.put(f"{sim}/_control/{code}", json=fault)).raise_for_status()
    print(f"  {code} is out ({how}) for the step", file=sys.stderr)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await http.put(f"{sim}/_control/{code}", json=restore)
