"""CPU per batch of persistent sends to ActiveMQ: a receipt on every frame, or on the COMMIT.

A batch is what the outbox relay sends for one POST: BEGIN, ten persistent SENDs, COMMIT, in
one write. ``every``: each frame asks for a receipt (as before); ``commit``: only the COMMIT
does (``StompConnection.send_messages``). Eight batches are out at a time; a subscriber on
the same connection takes the messages (auto ack), so the queue does not grow. Prints
ActiveMQ's CPU (from /proc) and this process's, per batch. Needs the broker up
(``scripts/activemq.sh up``); the modes alternate, ``--rounds`` times.

    .venv/bin/python bench/stomp_batches.py [--batches 1500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity_cpu import cpu_seconds, pids_of
from osago.broker import Outgoing
from osago.broker._connection import open_stomp_connection
from osago.broker._framing import Frame

SIZE = 10  # messages per batch: one POST's jobs
BODY = b"x" * 600  # about a job's size
IN_FLIGHT = 8


async def one_run(mode: str, batches: int) -> tuple[float, float, float]:
    """(ActiveMQ ms/batch, ours ms/batch, seconds) for ``batches`` batches in ``mode``."""
    q = f"/queue/bench.batches.{uuid.uuid4().hex[:8]}"
    expected = batches * SIZE
    got = 0
    done = trio.Event()

    def on_message(_: Frame, __: int) -> None:
        nonlocal got
        got += 1
        if got == expected:
            done.set()

    broker = pids_of("activemq.jar")
    async with open_stomp_connection("127.0.0.1", 61613, on_message=on_message) as conn:
        await conn.request([("SUBSCRIBE", {"id": "s", "destination": q, "ack": "auto"}, b"")])
        messages = [Outgoing(q, BODY, {}) for _ in range(SIZE)]

        async def batch(i: int) -> None:
            if mode == "commit":
                await conn.send_messages(messages)
                return
            tx = {"transaction": f"b{i}"}
            sends = [("SEND", {"destination": q, "persistent": "true", **tx}, BODY)] * SIZE
            await conn.request([("BEGIN", tx, b""), *sends, ("COMMIT", tx, b"")])

        a0, o0, t0 = sum(map(cpu_seconds, broker)), time.process_time(), time.monotonic()
        limit = trio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with limit:
                await batch(i)

        async with trio.open_nursery() as nursery:
            for i in range(batches):
                async with limit:  # wait for room before starting the next
                    pass
                nursery.start_soon(one, i)
        with trio.fail_after(60):
            await done.wait()
        a1, o1, t1 = sum(map(cpu_seconds, broker)), time.process_time(), time.monotonic()
    return 1e3 * (a1 - a0) / batches, 1e3 * (o1 - o0) / batches, t1 - t0


async def main(batches: int, rounds: int) -> None:
    print(f"batches of {SIZE} persistent SENDs, {IN_FLIGHT} in flight, {batches} per run")
    for _ in range(rounds):
        for mode in ("every", "commit"):
            broker, ours, seconds = await one_run(mode, batches)
            print(
                f"  receipt on {mode:6}  ActiveMQ {broker:.2f} ms/batch  ours {ours:.2f} ms/batch"
                f"  ({seconds:.1f} s)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trio.run(main, args.batches, args.rounds)
