"""Capacity: a ramp of calculation rates through the whole system, as users load it.

Every role runs as its own process (the simulator, the api with its relay, WORKERS workers,
one notifier) on the real ActiveMQ (scripts/activemq.sh up) and PostgreSQL (127.0.0.1:5432),
in a fresh database, with 10 insurers and the real 60 s deadline:

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/capacity.py [--rates 5,10,20,50] [--seconds 30] [--workers 2]
        [--profile calm|realistic] [--warmup 15] [--png docs/capacity.png]

``calm``: each insurer answers after a fixed delay of 1-8 s and always offers, so every stub,
late offer or missing offer is caused by load. ``realistic``: the simulator's log-normal
delays, refusals, errors, hangs (some stubs and failures are the profile's own).

After a warm-up (the JVM's JIT, connection pools, the insurers' learned poll schedules),
for each rate it posts for SECONDS, waits until every calculation has completed (or its
deadline plus a margin), and up to LATE_WAIT seconds more until every offer the database
holds has come (a late one arrives after `completed`), then prints one line per step:

- offers delivered / expected (expected: the offers PostgreSQL holds for the step), frames
  repeated (the same calculation and seq twice);
- overhead p50/p99: frame arrival - ``received_at`` (the worker had the answer -> the user);
- wait p50/p99: frame arrival - ``ready_at`` (the insurer had it -> the user; adds polling);
  by the insurer's mode, and by mode over the exchanges that met no insurer fault (no 503,
  stall or bad body on a poll, no lost callback: the simulator's ``/_control/faulted``):
  what our schedule and path alone add; a callback's no-fault wait in two: the simulator's
  send lag (ready -> its POST left, ``/_control/callbacks``) and ours (-> the frame);
- with ``calm``, added p50/p99: frame arrival - the calculation's creation - the insurer's
  fixed delay: all the user waits for us, a job queued behind a backlog included;
- before the insurer has the job, p50/p99 per exchange: the api's publishing, the broker
  and the worker's receipt (commit -> picked up), the worker's start (-> first submitted);
- refused: POSTs answered 503 ``overloaded`` (too many jobs waiting for a worker, the
  api's publishing of jobs behind, or a worker starting jobs late), with the api's reasons;
- stubs and late offers (with ``calm`` every one of them is caused by load; with
  ``realistic``, those whose answer the insurer had ready only past the deadline, and those
  whose exchange met one of its faults, are its own);
- CPU ms per calculation of each process, from /proc (utime + stime over the step): api,
  workers, notifier, simulator, ActiveMQ (its JVM) and PostgreSQL (every backend); and the
  cores all of them kept busy over the step (posting and drain): near the box's core count,
  the step is CPU-bound and a longer one would fall behind;
- the garbage collector's pauses per calculation of each role (``osago_gc_pause_seconds``
  from its metrics port, which every role opens here): their share of the role's CPU, and
  per generation how many and how long on average;
- how late each role's loop woke its timers (``osago_loop_lag_seconds``), p50/p99: a role
  short of CPU shows there first;
- polls per exchange (simulator's count of status GETs / exchanges);
- no_offer by outcome: ``refused`` is the insurer's own answer; ``unavailable``, ``failed``
  and ``timed_out`` are offers the user did not get.

``--stall S`` freezes the simulator (SIGSTOP) for S seconds halfway through each step: every
insurer stalls at once, as a network blip looks from the workers. ``--out CODE``: that
insurer is out through each measured step (not the warm-up): ``--out-how down`` (503 to
everything) or ``hang`` (every status GET hangs).

A progress line per second goes to stderr. With --png, a chart of latency and CPU per
calculation against rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity_chart import chart
from bench.capacity_cpu import Groups, cpu_delta, reference_ms
from bench.capacity_db import (
    db_after_answer,
    db_exchanges_of,
    db_offers,
    db_stages,
    until_offers_came,
)
from bench.capacity_faults import OUTS, insurer_out, stall_insurers
from bench.capacity_gc import gc_delta, gc_reading
from bench.capacity_lag import lag_delta, lag_quantiles, lag_reading
from bench.capacity_load import Frames, delivered_offers, listen, post_at_rate
from bench.capacity_offers import after_answer, late_offers, ts
from bench.capacity_report import line
from bench.capacity_sim import (
    callback_split,
    simulator_callbacks,
    simulator_faulted,
    simulator_polls,
)
from osago.collector import settle_collector
from osago.insurers import load_insurers
from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL, _drop_database, _fresh_database

INSURERS = "aurora,borealis,cedar,delta,ember,fjord,granite,harbor,iris,juniper"
CALM_DELAYS = ",".join(f"{c}={1 + 7 * i / 9:.2f}" for i, c in enumerate(INSURERS.split(",")))
DELAY_OF = {c: float(d) for c, d in (x.split("=") for x in CALM_DELAYS.split(","))}
DEADLINE = 60.0
LATE_WAIT = 20  # seconds a step waits, after every calculation completed, for late offers
# How each insurer is asked (the bundled insurers file): callback, long-poll or poll.
MODES = {c.code: c.mode for c in load_insurers(None, default_base="")}


async def run_step(
    cluster: Cluster,
    db_url: str,
    frames: Frames,
    rate: float,
    seconds: float,
    users: list[str],
    *,
    calm: bool,
    stall: float = 0.0,
    out: tuple[str, str] = ("", "down"),
) -> dict[str, Any]:
    groups = Groups(cluster)
    api, sim = cluster.url("api", "api"), cluster.url("insurers", "insurers")
    frames.items.clear()
    # The host's speed before and after the step: it moved by 2x within seconds on a quiet
    # box (2026-12-06), so CPU figures compare only beside it.
    host = [reference_ms()]
    async with httpx.AsyncClient(timeout=30) as http:
        polls0 = await simulator_polls(http, sim)
        before = groups.snapshot()
        gc_before = await gc_reading(http, cluster)
        lag_before = await lag_reading(http, cluster)
        t0 = time.time()
        async with insurer_out(http, sim, *out), trio.open_nursery() as nursery:

            async def progress() -> None:
                while True:
                    await trio.sleep(1)
                    n_offers = sum(1 for _, e in frames.items if e["type"] == "offer")
                    print(
                        f"  rate {rate:g}/s  t={time.time() - t0:5.1f}s  offer frames {n_offers}",
                        file=sys.stderr,
                    )

            nursery.start_soon(progress)
            if stall > 0:
                nursery.start_soon(stall_insurers, cluster, seconds / 2, stall)
            answers = await post_at_rate(api, rate, seconds, users)
            accepted = [a for a in answers if a is not None]
            ids = {a["calculation_id"] for a in accepted}
            deadline = max((ts(a["deadline_at"]) for a in accepted), default=time.time()) + 3
            while time.time() < deadline:
                done = {e["calculation_id"] for _, e in frames.items if e["type"] == "completed"}
                if ids <= done:
                    break
                await trio.sleep(0.5)
            await trio.sleep(1.0)  # stragglers and repeats
            # A late offer (within the late window, after `completed`) may still be on its
            # way: wait for every offer the database holds, a while, before counting.
            await until_offers_came(
                db_url,
                sorted(ids),
                lambda: delivered_offers(frames, ids),
                LATE_WAIT,
            )
            nursery.cancel_scope.cancel()
        after = groups.snapshot()
        gc_paused = gc_delta(gc_before, await gc_reading(http, cluster))
        lag = lag_delta(lag_before, await lag_reading(http, cluster))
        elapsed = time.time() - t0
        polls = await simulator_polls(http, sim) - polls0
        faulted = set((await db_exchanges_of(db_url, await simulator_faulted(http, sim))).values())
        called_back = await simulator_callbacks(http, sim)
        callback_keys = await db_exchanges_of(db_url, list(called_back))
    host.append(reference_ms())
    cpu = cpu_delta(before, after)
    # The offers stored first, then the frames: a late offer stored while this step was
    # being counted had no time to arrive and showed as lost (12 508 of 12 509, realistic
    # 30/s). Each stored offer gets a few seconds for its frame.
    stored, exchanges = await db_offers(db_url, sorted(ids))
    for _ in range(25):
        if delivered_offers(frames, ids) >= stored:
            break
        await trio.sleep(0.2)
    mine = [(t, e) for t, e in frames.items if e.get("calculation_id") in ids]
    seen: set[tuple[str, int]] = set()
    repeats = 0
    for _, e in mine:
        key = (e["calculation_id"], e["seq"])
        repeats += key in seen
        seen.add(key)
    offers = {(e["calculation_id"], e["insurer"]): (t, e) for t, e in mine if e["type"] == "offer"}
    deadline_of = {a["calculation_id"]: ts(a["deadline_at"]) for a in accepted}
    created = {k: d - DEADLINE for k, d in deadline_of.items()}
    late, late_insurer, late_faulted = late_offers(offers, deadline_of, faulted)
    stages = await db_stages(db_url, sorted(ids))
    settled, pushed = await db_after_answer(db_url, sorted(ids))
    completed = [e for _, e in mine if e["type"] == "completed"]
    n = max(len(ids), 1)
    return {
        "rate": rate,
        "calculations": len(ids),
        "refused": len(answers) - len(accepted),
        "offers": len(offers),
        # calm: every insurer offers, so every exchange should end in an offer
        "expected": exchanges if calm else stored,
        "no_offer": sum(1 for _, e in mine if e["type"] == "no_offer"),
        # refused is the insurer's own answer; unavailable, failed, timed_out are ours to fix
        "no_offer_by": dict(
            sorted(Counter(e["outcome"] for _, e in mine if e["type"] == "no_offer").items())
        ),
        "exchanges": exchanges,
        "repeats": repeats,
        "overhead": [t - ts(e["received_at"]) for t, e in offers.values()],
        # calm: the user's whole wait (the POST's 202 -> the frame) less the insurer's own
        # fixed time: everything we add, the queue and the submit included
        "added": [
            t - created[e["calculation_id"]] - DELAY_OF[e["insurer"]] for t, e in offers.values()
        ]
        if calm
        else [],
        "wait": [t - ts(e["ready_at"]) for t, e in offers.values() if e.get("ready_at")],
        # by mode, and (what our schedule and path alone add) over exchanges the insurer
        # answered cleanly: no 503 on a poll (its Retry-After: 1 we honour), no lost callback
        "wait_by_mode": {
            label: [
                t - ts(e["ready_at"])
                for k, (t, e) in offers.items()
                if e.get("ready_at") and MODES.get(e["insurer"]) == mode and k not in skip
            ]
            for mode in sorted(set(MODES.values()))
            for label, skip in ((mode, frozenset()), (f"{mode}, no fault", faulted))
        },
        # A callback's wait in two: the simulator's lag, and ours.
        "callback_split": callback_split(called_back, callback_keys, offers, faulted),
        "stages": stages,
        "after_answer": after_answer(offers.values(), settled, pushed),
        "stubs": sum(1 for e in completed if e["stub"]),
        "completed": len({e["calculation_id"] for e in completed}),
        # and of them: the insurer had it ready only past the deadline; its exchange met a fault
        "late": late,
        "late_insurer": late_insurer,
        "late_faulted": late_faulted,
        "cpu_ms": {g: 1000 * s / n for g, s in cpu.items()},
        # group -> generation -> (ms paused per calculation, collections, those of 25 ms+,
        # CPU ms per calculation)
        "gc": {
            g: {
                gen: (1000 * sec / n, k, long, 1000 * cpu / n)
                for gen, (sec, k, long, cpu) in gens.items()
            }
            for g, gens in gc_paused.items()
        },
        # group -> how late its loop woke (p50, p99 as bucket bounds, seconds)
        "lag": {g: q for g, b in lag.items() if (q := lag_quantiles(b, (0.5, 0.99)))},
        # Every process's CPU over the step's wall time (posting, then the drain): how
        # many of the box's cores the step kept busy, the simulator's included.
        "cores": sum(cpu.values()) / max(elapsed, 1e-9),
        "elapsed": elapsed,
        "reference_ms": tuple(host),
        "polls_per_exchange": polls / max(exchanges, 1),
        "offer_frames": list(offers.values()),
    }


async def main(a: argparse.Namespace) -> None:
    # The bench's own collector, as every role's (osago/collector.py): with CPython's
    # defaults it walked each step's frames in full about every 7 s, 50-86 ms each
    # (gc.callbacks, realistic 30/s), and a frame read after such a pause showed as overhead.
    # The bench runs no full collection: it holds every frame to the end anyway.
    settle_collector()
    db = f"osago_bench_{uuid.uuid4().hex[:8]}"
    url = await _fresh_database(db)
    rates = [float(x) for x in a.rates.split(",")]
    extra = {"OSAGO_LOG_LEVEL": a.log_level, "OSAGO_SIMULATOR_PROFILE": a.profile}
    extra["OSAGO_METRICS_BIND"] = "127.0.0.1:0"  # the collector's pauses (bench/capacity_gc.py)
    extra |= dict(item.split("=", 1) for item in a.env)
    title = (
        f"{a.profile} profile, 10 insurers, {a.workers} workers, "
        f"every role its own process, ActiveMQ + PostgreSQL, {os.cpu_count()} cores"
    )
    print(title)
    results = []
    try:
        async with (
            start_cluster(
                database_url=url,
                broker_url=STOMP_URL,
                suffix=db,
                deadline=DEADLINE,
                insurers=INSURERS,
                delays=CALM_DELAYS if a.profile == "calm" else "",
                workers=a.workers,
                notifiers=1,
                extra_env=extra,
            ) as cluster,
            trio.open_nursery() as nursery,
        ):
            users = [f"cap-{i}" for i in range(a.users)]
            frames = Frames()
            for user in users:
                await nursery.start(listen, cluster, user, frames)
            if a.warmup > 0:  # the JVM's JIT, pools, the insurers' learned schedules
                print(f"warm-up: {a.warmup:g} s at {rates[0]:g}/s (not reported)", flush=True)
                await run_step(
                    cluster, url, frames, rates[0], a.warmup, users, calm=a.profile == "calm"
                )
            for rate in rates:
                r = await run_step(
                    cluster,
                    url,
                    frames,
                    rate,
                    a.seconds,
                    users,
                    calm=a.profile == "calm",
                    stall=a.stall,
                    out=(a.out, a.out_how),
                )
                results.append(r)
                print(line(r), flush=True)
                warnings = Counter(
                    re.sub(
                        r"[0-9a-f-]{36}|\d+(\.\d+)?|\b(" + INSURERS.replace(",", "|") + r")\b",
                        "#",
                        line.split(" ", 2)[-1],
                    )
                    for p in cluster.procs.values()
                    for line in p.lines
                    if " WARNING " in line or " ERROR " in line
                )
                for text, count in warnings.most_common(a.warnings):
                    print(f"      {count} x {text[:160]}")
                if a.frames:  # each offer frame with its arrival: stages against role logs
                    with open(a.frames, "a") as f:  # noqa: ASYNC230 (a bench, between steps)
                        f.writelines(
                            json.dumps({"arrival": t, **e}) + "\n" for t, e in r["offer_frames"]
                        )
                if a.log:
                    with open(a.log, "a") as f:  # noqa: ASYNC230 (a bench, between steps)
                        for p in cluster.procs.values():
                            f.writelines(f"{p.name} {line}\n" for line in p.lines)
                for p in cluster.procs.values():
                    p.lines.clear()
                if r["offers"] < 0.9 * r["expected"] and not a.keep_going:
                    print(f"saturated at {rate:g}/s (under 90 % of offers delivered); stopping")
                    break
            nursery.cancel_scope.cancel()
    finally:
        await _drop_database(db)
    if a.png and results:
        chart(results, Path(a.png), title)


if __name__ == "__main__":
    random.seed(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="5,10,20,50", help="calculations/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="posting time per step")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--stall",
        type=float,
        default=0.0,
        help="freeze the insurers this many seconds halfway through each step",
    )
    parser.add_argument("--out", default="", help="this insurer out through every step")
    parser.add_argument("--out-how", choices=sorted(OUTS), default="down", help="how it is out")
    parser.add_argument("--users", type=int, default=50, help="WebSocket users")
    parser.add_argument("--profile", choices=("calm", "realistic"), default="calm")
    parser.add_argument("--png", default=None, help="write the chart here")
    parser.add_argument("--warnings", type=int, default=3, help="commonest warnings shown")
    parser.add_argument("--log", default=None, help="append every process's log lines here")
    parser.add_argument(
        "--log-level", default="INFO", help="of every role (INFO: the roles' own default)"
    )
    parser.add_argument("--frames", default=None, help="append every offer frame here (JSON)")
    parser.add_argument("--keep-going", action="store_true", help="go on past saturation")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="OSAGO_X=VALUE",
        help="a setting for every role (repeatable), e.g. OSAGO_SETTLE_LINGER=0.02",
    )
    trio.run(main, parser.parse_args())
