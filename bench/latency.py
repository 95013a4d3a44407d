"""Latency of the real flow: insurer answer -> WebSocket frame, and the stub's lateness.

Every role runs as its own process (simulator, api+relay, 2 workers, 2 notifiers) on the real
ActiveMQ (scripts/activemq.sh up) and PostgreSQL (127.0.0.1:5432), in a fresh database.

    .venv/bin/python bench/latency.py [--calculations 300] [--rate 25] [--stubs 50]

Phase 1 posts N calculations at RATE/s to 3 insurers answering in 0.3-0.8 s, for 20 users
connected to both notifiers, and measures for every offer frame:
  delivery = frame arrival - received_at  (worker got the answer -> user's socket)
  wait     = frame arrival - ready_at     (insurer had it ready -> user's socket; adds polling)
Phase 2 makes every insurer slower than the deadline and measures, for STUBS calculations,
  lateness = `completed` frame arrival - deadline_at.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL, _drop_database, _fresh_database
from tests.factories import MINIMAL_BODY

DEADLINE = 5.0


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:<10} n={len(ms):<5} p50={pct(ms, 50):7.1f} ms  p90={pct(ms, 90):7.1f} ms  "
        f"p99={pct(ms, 99):7.1f} ms  max={max(ms):7.1f} ms  mean={statistics.mean(ms):7.1f} ms"
    )


async def collect(
    cluster: Cluster,
    notifier: str,
    user: str,
    frames: list[tuple[float, dict]],
    task_status: trio.TaskStatus[None],
) -> None:
    async with cluster.websocket(notifier, user) as ws:
        task_status.started()
        while True:
            text = await ws.get_message()
            frames.append((time.time(), json.loads(text)))


async def post_many(cluster: Cluster, n: int, rate: float, users: list[str]) -> list[dict]:
    accepted = []
    start = trio.current_time()
    for i in range(n):
        await trio.sleep_until(start + i / rate)
        accepted.append(await cluster.post({**MINIMAL_BODY, "user_id": users[i % len(users)]}))
    return accepted


async def main(n: int, rate: float, stubs: int) -> None:
    db = f"osago_bench_{uuid.uuid4().hex[:8]}"
    url = await _fresh_database(db)
    try:
        async with (
            start_cluster(
                database_url=url,
                broker_url=STOMP_URL,
                suffix=db,
                deadline=DEADLINE,
                insurers="aurora,borealis,cedar",
                delays="aurora=0.3,borealis=0.5,cedar=0.8",
                extra_env={"OSAGO_LOG_LEVEL": "WARNING"},
            ) as cluster,
            trio.open_nursery() as nursery,
        ):
            users = [f"bench-{i}" for i in range(20)]
            frames: list[tuple[float, dict]] = []
            for i, user in enumerate(users):
                await nursery.start(collect, cluster, f"notifier{1 + i % 2}", user, frames)

            t0 = time.time()
            await post_many(cluster, n, rate, users)
            await trio.sleep(DEADLINE + 2)
            offers = [(t, e) for t, e in frames if e["type"] == "offer"]
            print(
                f"phase 1: {n} calculations x 3 insurers in {time.time() - t0:.1f}s, "
                f"{len(offers)} offer frames (expected {3 * n})"
            )
            report("delivery", [t - ts(e["received_at"]) for t, e in offers])
            report("wait", [t - ts(e["ready_at"]) for t, e in offers])

            for code in ("aurora", "borealis", "cedar"):
                await cluster.control(code, delay=DEADLINE + 30)
            frames.clear()
            accepted = await post_many(cluster, stubs, rate, users)
            await trio.sleep(DEADLINE + 2)
            deadline_of = {a["calculation_id"]: ts(a["deadline_at"]) for a in accepted}
            done = [(t, e) for t, e in frames if e["type"] == "completed"]
            print(
                f"phase 2: {stubs} calculations, nobody answers in {DEADLINE:g}s: "
                f"{len(done)} completed frames, {sum(1 for _, e in done if e['stub'])} stubs"
            )
            report("lateness", [t - deadline_of[e["calculation_id"]] for t, e in done])
            nursery.cancel_scope.cancel()
    finally:
        await _drop_database(db)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calculations", type=int, default=300)
    parser.add_argument("--rate", type=float, default=25.0, help="POSTs per second")
    parser.add_argument("--stubs", type=int, default=50)
    a = parser.parse_args()
    trio.run(main, a.calculations, a.rate, a.stubs)
