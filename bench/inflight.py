"""Exchanges in flight: what one worker holds while insurers take longer than the user waits.

Every role its own process on the real ActiveMQ and PostgreSQL (as bench/capacity.py), ONE
worker with a prefetch large enough to hold them all, 10 insurers that all answer after
DELAY seconds (90 by default: past the 60 s deadline, inside the late window), in MODE
(callback by default: the worker waits with a safety check every 10 s; poll: it polls):

    .venv/bin/python bench/inflight.py [--exchanges 10000] [--rate 50] [--delay 90]
        [--mode callback|poll|long-poll] [--gc-interval SECONDS]

It posts EXCHANGES / 10 calculations at RATE per second, waits until the worker reports them
all in flight (``osago_exchanges_in_flight`` on its /metrics), and prints:

- the worker's RSS before the load and with every exchange in flight, and per exchange;
- the worker's CPU per second while it holds them (safety checks, or polls);
- whether it keeps serving the others: with the load in flight, one insurer is set to
  answer after 1 s and a probe calculation is posted; the time from its POST to that
  insurer's offer on the user's socket.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity import INSURERS
from bench.capacity_cpu import cpu_seconds
from bench.capacity_gc import gc_delta, gc_reading
from bench.capacity_load import post_at_rate
from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL, _drop_database, _fresh_database
from tests.factories import MINIMAL_BODY


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def insurers_file(mode: str, safety: float) -> Path:
    """The bundled insurers file with every insurer in ``mode``."""
    bundled = Path(__file__).resolve().parents[1] / "osago" / "insurers" / "insurers.toml"
    data = tomllib.loads(bundled.read_text())
    defaults = {k: v for k, v in data["defaults"].items() if not isinstance(v, dict)}
    defaults.update(mode=mode, safety_poll_interval=safety)
    lines = ["[defaults]", *(f"{k} = {json.dumps(v)}" for k, v in defaults.items())]
    for key, section in data["defaults"].items():
        if isinstance(section, dict):
            if key == "breaker" and mode == "long-poll":  # a held poll is slow by design
                section = {**section, "slow_call_duration": 30.0}
            lines += [f"[defaults.{key}]", *(f"{k} = {json.dumps(v)}" for k, v in section.items())]
    for raw in data["insurers"]:
        lines += ["[[insurers]]", f'code = "{raw["code"]}"', f'name = "{raw["name"]}"']
    path = Path(tempfile.mkdtemp()) / "insurers.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def in_flight(http: httpx.AsyncClient, metrics_url: str) -> int:
    for attempt in range(5):  # a worker busy starting thousands of exchanges may drop one
        try:
            text = (await http.get(metrics_url)).text
            break
        except httpx.HTTPError:
            if attempt == 4:
                raise
            await trio.sleep(1)
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("osago_exchanges_in_flight{")
        )
    )


async def main(args: argparse.Namespace) -> None:
    name = f"osago_bench_{uuid.uuid4().hex[:8]}"
    db = await _fresh_database(name)
    delays = ",".join(f"{c}={args.delay}" for c in INSURERS.split(","))
    env = {
        "OSAGO_INSURERS_FILE": str(insurers_file(args.mode, args.safety)),
        "OSAGO_WORKER_PREFETCH": str(args.exchanges * 2),
        "OSAGO_METRICS_BIND": "127.0.0.1:0",
        "OSAGO_LOG_LEVEL": "WARNING",
        "OSAGO_SIMULATOR_PROFILE": "calm",
    }
    if args.gc_interval is not None:
        env["OSAGO_GC_INTERVAL"] = str(args.gc_interval)
    try:
        async with start_cluster(
            database_url=db,
            broker_url=STOMP_URL,
            suffix=uuid.uuid4().hex[:8],
            deadline=60.0,
            insurers=INSURERS,
            delays=delays,
            workers=1,
            notifiers=1,
            extra_env=env,
        ) as cluster:
            try:
                await measure(cluster, args)
            except BaseException:
                for name, proc in cluster.procs.items():
                    print(f"--- {name} (exit {proc.process.returncode})", file=sys.stderr)
                    print("\n".join(proc.lines[-15:]), file=sys.stderr)
                raise
    finally:
        await _drop_database(name)


async def measure(cluster: Cluster, args: argparse.Namespace) -> None:
    worker = cluster.procs["worker1"].process.pid
    metrics = cluster.url("worker1", "metrics")
    api = cluster.url("api", "api")
    calcs = args.exchanges // 10
    async with httpx.AsyncClient(timeout=60) as http:
        await post_at_rate(api, 5, 1, ["warm"])  # pools, schedules, code paths
        await trio.sleep(3)
        rss0 = rss_kib(worker)
        t0 = time.time()
        await post_at_rate(api, args.rate, calcs / args.rate, [f"u{i}" for i in range(50)])
        print(f"posted {calcs} calculations in {time.time() - t0:.0f} s", file=sys.stderr)
        # Until every exchange is in flight, or the count stops growing (a submit that
        # failed under the burst ends its exchange: reported, and RSS is per held exchange).
        best, still = 0, 0
        with trio.move_on_after(args.delay - 10):
            while (n := await in_flight(http, metrics)) < args.exchanges and still < 4:
                best, still = (n, 0) if n > best else (best, still + 1)
                print(f"  in flight {n}", file=sys.stderr)
                await trio.sleep(2)
        held = await in_flight(http, metrics)
        rss1 = rss_kib(worker)
        cpu0, w0, gc0 = cpu_seconds(worker), time.time(), await gc_reading(http, cluster)
        await trio.sleep(10)
        cpu_per_s = (cpu_seconds(worker) - cpu0) / (time.time() - w0)
        paused = gc_delta(gc0, await gc_reading(http, cluster)).get("workers", {})
        probe = await serves_others(cluster, http, api)
        n = await in_flight(http, metrics)
    per = (rss1 - rss0) * 1024 / max(held, 1)
    print(
        f"mode {args.mode}: {held} of {args.exchanges} exchanges in flight ({n} at the end)"
        " in one worker;"
        f" RSS {rss0 / 1024:.0f} MiB -> {rss1 / 1024:.0f} MiB: {per / 1024:.1f} KiB per exchange;"
        f" worker CPU {cpu_per_s * 1000:.0f} ms/s while holding them;"
        f" a fresh offer from a 1 s insurer reached its user {probe:.2f} s after the POST"
    )
    # Each collection stands the worker still: the young ones walk what is new, a full one
    # (OSAGO_GC_INTERVAL, --gc-interval) every exchange held.
    pauses = ", ".join(
        f"gen {gen}: {n} x {1000 * sec / n:.1f} ms ({1000 * cpu / n:.1f} ms CPU)"
        for gen, (sec, n, _, cpu) in sorted(paused.items())
        if n
    )
    print(f"worker's collector while holding them (10 s): {pauses or 'no collection'}")


async def serves_others(cluster: Cluster, http: httpx.AsyncClient, api: str) -> float:
    """Seconds from a probe's POST to the fast insurer's offer on the user's socket."""
    await cluster.control("delta", delay=1.0)
    async with cluster.websocket("notifier1", "probe") as ws:
        t0 = time.time()
        r = await http.post(f"{api}/api/v1/calculations", json={**MINIMAL_BODY, "user_id": "probe"})
        calc = r.json()["calculation_id"]
        with trio.fail_after(30):
            while True:
                event: dict[str, Any] = json.loads(await ws.get_message())
                if event.get("calculation_id") == calc and event.get("insurer") == "delta":
                    return time.time() - t0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="calculations posted per second")
    parser.add_argument("--delay", type=float, default=90.0, help="every insurer's answer time")
    parser.add_argument("--mode", choices=("callback", "poll", "long-poll"), default="callback")
    parser.add_argument("--safety", type=float, default=10.0, help="safety_poll_interval")
    parser.add_argument(
        "--gc-interval", type=float, help="OSAGO_GC_INTERVAL: full collections this often"
    )
    trio.run(main, parser.parse_args())
