"""The polled insurers' wait, modelled: the real schedule against the realistic profile.

A Monte Carlo of one exchange after another per polled insurer of the bundled insurers
file: answer times drawn from the simulator's realistic profile (log-normal), each poll
drawing its faults there (503 with ``Retry-After: 1``, a stall past the attempt timeout, a
malformed body), retried with the insurer's policy, hedged after ``hedge_delay``, and
spaced by ``osago.insurers.schedule.AnswerTimes`` trained on the same distribution. No
network, no CPU: what the schedule and the faults alone cost, so a parameter can be tried in
a second before ``bench/capacity.py --profile realistic`` measures it for minutes.

    .venv/bin/python bench/poll_model.py [--max-intervals 2,1.5,1.25,1] [--exchanges 20000]

It prints, per ``max_interval``: wait (ready -> our poll sees it) p50/p99 and polls per
exchange, with every fault, with none, and without the hedge.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osago.clock import TrioWallClock
from osago.config import Settings
from osago.insurers import InsurerConfig, load_insurers
from osago.insurers.schedule import AnswerTimes
from osago.resilience.retry import backoff
from osago.simulator.app import Behaviour
from osago.simulator.profiles import default_simulator

RTT = 0.01  # one status GET on loopback, with our processing around it


def _poll(c: InsurerConfig, b: Behaviour, rng: random.Random, now: float) -> tuple[float, int]:
    """One guarded poll from ``now``: when its last request saw the insurer, and requests."""
    requests = 0
    for attempt in range(1, c.retry.attempts + 1):
        requests += 1
        r = rng.random()
        if r < b.error_rate:  # 503, Retry-After: 1
            now += RTT + max(1.0, backoff(c.retry, attempt, rng))
        elif r < b.error_rate + b.stall_rate:  # the answer takes stall_seconds
            hedge = c.poll_hedge
            if hedge is not None and hedge < c.poll_timeout:
                return now + hedge + RTT, requests + 1  # the hedge answers
            now += c.poll_timeout + backoff(c.retry, attempt, rng)
        elif r < b.error_rate + b.stall_rate + b.malformed_rate:
            now += RTT + backoff(c.retry, attempt, rng)
        else:
            return now + RTT / 2, requests
    return now, requests


def model(
    configs: list[InsurerConfig], behaviours: dict[str, Behaviour], exchanges: int, seed: int
) -> tuple[float, float, float]:
    """(wait p50, wait p99, requests per exchange) over ``exchanges`` answered exchanges."""
    rng = random.Random(seed)
    waits: list[float] = []
    requests = 0
    for c in configs:
        b = behaviours[c.code]

        def draw(b: Behaviour = b) -> float:
            return b.median_delay * math.exp(b.delay_sigma * rng.gauss(0.0, 1.0))

        times = AnswerTimes(c.schedule)
        for _ in range(c.schedule.window):
            times.record(draw())
        for _ in range(exchanges // len(configs)):
            ready = draw()
            if ready > 60.0:  # past the user's deadline: not in the wait figures
                continue
            due = times.next_poll(None)
            while True:
                seen, n = _poll(c, b, rng, due)
                requests += n
                if seen >= ready:
                    waits.append(seen - ready)
                    break
                due = times.next_poll(seen)
    waits.sort()
    return waits[len(waits) // 2], waits[int(0.99 * (len(waits) - 1))], requests / len(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-intervals", default="2,1.5,1.25,1")
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()
    sim = default_simulator(Settings(simulator_profile="realistic"), TrioWallClock(0.0))
    polled = [c for c in load_insurers(None, default_base="") if c.mode == "poll"]
    calm = {
        k: replace(b, error_rate=0.0, stall_rate=0.0, malformed_rate=0.0)
        for k, b in sim.behaviours.items()
    }
    print(f"{len(polled)} polled insurers, realistic profile; wait p50/p99 s, requests/exchange")
    for mi in (float(x) for x in a.max_intervals.split(",")):
        configs = [replace(c, schedule=replace(c.schedule, max_interval=mi)) for c in polled]
        bare = [replace(c, hedge_delay=None) for c in configs]
        cols = [
            ("faults", model(configs, sim.behaviours, a.exchanges, a.seed)),
            ("no hedge", model(bare, sim.behaviours, a.exchanges, a.seed)),
            ("no faults", model(configs, calm, a.exchanges, a.seed)),
        ]
        print(
            f"max_interval {mi:4.2f}  "
            + "  ".join(f"{name} {p50:.2f}/{p99:.2f} {n:.2f}" for name, (p50, p99, n) in cols)
        )


if __name__ == "__main__":
    main()
