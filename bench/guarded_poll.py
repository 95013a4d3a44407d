"""CPU per guarded poll without I/O: the whole resilience stack around a no-op client.

``GuardedInsurer.poll`` of the bundled insurers file's first polled insurer, as a worker
composes it (retry, breaker, bulkhead, attempt timeout, hedge), around a client whose poll
is one checkpoint; then the same with the hedge off. Best of 5 runs of 20 000 polls each.

    .venv/bin/python bench/guarded_poll.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osago.insurers import InsurerConfig, Pending, Quote
from osago.insurers.catalog import load_insurers
from osago.insurers.resilient import GuardedInsurer
from osago.models import RawJSON

POLLS = 20_000


class _Noop:
    """An insurer client that answers every poll "pending" at once."""

    async def submit(self, insurer: InsurerConfig, correlation_id: UUID, request: RawJSON) -> str:
        await trio.lowlevel.checkpoint()
        return "r"

    async def poll(self, insurer: InsurerConfig, remote_id: str) -> Quote | Pending:
        await trio.lowlevel.checkpoint()
        return Pending()


async def per_poll(config: InsurerConfig) -> float:
    best = float("inf")
    for _ in range(5):
        guard = GuardedInsurer(config, _Noop(), ())
        start = time.process_time()
        for _ in range(POLLS):
            await guard.poll("r")
        best = min(best, (time.process_time() - start) / POLLS)
    return best


async def main() -> None:
    config = next(c for c in load_insurers(None, default_base="http://x") if not c.long_poll)
    bare = _Noop()
    start = time.process_time()
    for _ in range(POLLS):
        await bare.poll(config, "r")
    bare_us = (time.process_time() - start) / POLLS * 1e6
    hedged_us = await per_poll(config) * 1e6
    plain_us = await per_poll(replace(config, hedge_delay=None)) * 1e6
    print(f"bare call          {bare_us:5.1f} us per poll")
    print(f"guarded, hedged    {hedged_us:5.1f} us per poll")
    print(f"guarded, no hedge  {plain_us:5.1f} us per poll")


if __name__ == "__main__":
    trio.run(main)
