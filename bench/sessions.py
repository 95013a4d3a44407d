"""Sessions one notifier process holds, memory per session, and time to push one event to all.

    scripts/activemq.sh up && .venv/bin/python bench/sessions.py [--sessions 10000]

Starts `osago --role notifier` as its own process on the real ActiveMQ, opens N WebSocket
sessions of one user from this process, and reports the notifier's RSS growth per session,
then publishes events to the topic and measures, per event, the time until the frame reached
the first, median and last session. Client and server share the machine's 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import trio
from trio_websocket import open_websocket_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osago.broker import Outgoing, open_stomp_broker
from osago.tokens import mint_token

STOMP = "stomp://127.0.0.1:61613"
SECRET = "bench-secret-at-least-32-bytes-long-0123"


async def start_notifier(topic: str) -> tuple[trio.Process, int]:
    env = {
        **os.environ,
        "OSAGO_BROKER_URL": STOMP,
        "OSAGO_RESULTS_TOPIC": topic,
        "OSAGO_NOTIFIER_BIND": "127.0.0.1:0",
        "OSAGO_WS_SECRET": SECRET,
        "OSAGO_WS_SESSIONS_PER_USER": "1000000",
        "OSAGO_WS_PING_INTERVAL": "600",
        "OSAGO_LOG_LEVEL": "WARNING",
    }
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "osago", "--role", "notifier"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    buf = b""
    async for chunk in proc.stderr:
        buf += chunk
        if b"ready:" in buf:
            break
    port = int(buf.split(b"notifier=ws://127.0.0.1:")[1].split(b"/")[0])
    return proc, port


async def main(n: int, events: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    topic = f"/topic/osago.bench.{uuid.uuid4().hex[:8]}"
    proc, port = await start_notifier(topic)
    server = psutil.Process(proc.pid)
    await trio.sleep(1)
    rss0 = server.memory_info().rss
    token = mint_token(SECRET, "bench-user", expires_at=time.time() + 3600)
    url = f"ws://127.0.0.1:{port}/ws?token={token}"
    arrivals: dict[int, list[float]] = {i: [] for i in range(events)}
    everyone: dict[int, trio.Event] = {i: trio.Event() for i in range(events)}
    connected = 0
    all_connected = trio.Event()
    handshakes = trio.Semaphore(200)  # concurrent handshakes, not sessions

    async def session() -> None:
        nonlocal connected
        await handshakes.acquire()
        async with open_websocket_url(url) as ws:
            await ws.get_message()  # hello
            handshakes.release()
            connected += 1
            if connected == n:
                all_connected.set()
            while True:
                seq = json.loads(await ws.get_message())["seq"] - 1
                arrivals[seq].append(time.perf_counter())
                if len(arrivals[seq]) == n:
                    everyone[seq].set()

    async with trio.open_nursery() as nursery, open_stomp_broker(STOMP) as broker:
        t0 = time.perf_counter()
        for _ in range(n):
            nursery.start_soon(session)
        await all_connected.wait()
        took = time.perf_counter() - t0
        await trio.sleep(2)
        rss1 = server.memory_info().rss
        print(
            f"{n} sessions held by one notifier process (connected in {took:.1f} s); "
            f"notifier RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB, "
            f"{(rss1 - rss0) / n / 1024:.1f} KiB per session"
        )
        calc = str(uuid.uuid4())
        for i in range(events):
            body = json.dumps(
                {
                    "type": "offer",
                    "user_id": "bench-user",
                    "calculation_id": calc,
                    "seq": i + 1,
                    "premium": 5000.0,
                }
            ).encode()
            sent = time.perf_counter()
            await broker.send([Outgoing(topic, body)])
            with trio.fail_after(120):
                await everyone[i].wait()
            times = sorted(t - sent for t in arrivals[i])
            print(
                f"event {i + 1}: first {times[0] * 1000:.0f} ms, median "
                f"{statistics.median(times) * 1000:.0f} ms, all {n} in {times[-1] * 1000:.0f} ms"
            )
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    proc.terminate()
    await proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=3)
    a = parser.parse_args()
    trio.run(main, a.sessions, a.events)
