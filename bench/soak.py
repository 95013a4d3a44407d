"""Soak: a long run at a steady rate with faults injected on a schedule (issue 11).

Every role its own process (simulator, api, 2 workers, 2 notifiers) on ActiveMQ and a private
PostgreSQL (so that it can be restarted), 10 insurers at the realistic profile's answer
times, a 60 s deadline, users whose tabs behave like the demo page (they keep their socket,
reconnect, resume, fall back to GET). Every ``--fault-every`` seconds the next fault of
``--faults`` is injected (the chaos suite's: kill -9 of a role, ActiveMQ restarted or killed,
PostgreSQL restarted, a worker paused, a backlog without workers).

Prints a progress line per fault, then: calculations accepted and refused, lost (never
`completed` at the tab), duplicated offers (an insurer's offer under two seqs), late
`completed` (over 2 s past the deadline), and each process's memory (PSS) at the start, at
its peak and at the end; ``--png`` draws memory over time with the faults marked.

    python bench/soak.py                      # an hour
    python bench/soak.py --minutes 10 --png docs/soak.png
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.faults import FAULTS
from tests.chaos.harness import Load, chaos_cluster, clients
from tests.chaos.postgres import PrivatePostgres, private_postgres
from tests.cluster import Cluster

ACTIVEMQ_PID = Path("/var/tmp/osago-activemq/activemq.pid")
DEADLINE = 60.0


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (PostgreSQL's buffers) counted once in all."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(parent: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def memory(cluster: Cluster, pg: PrivatePostgres) -> dict[str, float]:
    """PSS in MB of every role process, ActiveMQ and PostgreSQL (postmaster + backends)."""
    out = {name: pss_mb(p.process.pid) for name, p in cluster.procs.items()}
    try:
        out["activemq"] = pss_mb(int(ACTIVEMQ_PID.read_text()))
    except (OSError, ValueError):
        out["activemq"] = 0.0
    try:
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        out["postgres"] = pss_mb(postmaster) + sum(pss_mb(c) for c in children(postmaster))
    except (OSError, ValueError, IndexError):
        out["postgres"] = 0.0
    return out


async def main(a: argparse.Namespace) -> None:
    seconds = a.minutes * 60
    names = [f.strip() for f in a.faults.split(",") if f.strip()]
    samples: list[tuple[float, dict[str, float]]] = []
    injected: list[tuple[float, str]] = []
    async with (
        private_postgres() as pg,
        chaos_cluster(
            pg.url,
            f"soak.{uuid.uuid4().hex[:8]}",
            deadline=DEADLINE,
            OSAGO_SIMULATOR_PROFILE=a.profile,
            OSAGO_LOG_LEVEL="WARNING",
        ) as cluster,
        clients(cluster, a.users) as tabs,
    ):
        load = Load(cluster, tabs)
        t0 = time.time()

        async def sample() -> None:
            while True:
                samples.append((time.time() - t0, memory(cluster, pg)))
                await trio.sleep(a.sample_every)

        async def inject() -> None:
            for i in itertools.count(1):
                await trio.sleep_until(trio.current_time() + a.fault_every)
                name = names[(i - 1) % len(names)]
                at = time.time() - t0
                await FAULTS[name](cluster, pg)
                injected.append((at, name))
                done = sum(c.completed for tab in tabs for c in tab.calcs.values())
                print(
                    f"{at / 60:6.1f} min  {name:24s} accepted {len(load.accepted):6d}"
                    f"  completed {done:6d}  refused {dict(load.refused)}",
                    flush=True,
                )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            nursery.start_soon(inject)
            await load.run(a.rate, seconds)
            nursery.cancel_scope.cancel()
        await trio.sleep(DEADLINE + 10)  # the last calculations complete
        samples.append((time.time() - t0, memory(cluster, pg)))
    report(load, samples, injected)
    if a.png:
        chart(samples, injected, Path(a.png), a)


def report(
    load: Load, samples: list[tuple[float, dict[str, float]]], injected: list[tuple[float, str]]
) -> None:
    lost = dup = late = 0
    for calc_id, tab in load.accepted:
        calc = tab.calcs[calc_id]
        lost += not calc.completed
        dup += sum(1 for seqs in calc.offers.values() if len(seqs - {0}) > 1)
        if calc.completed_at is not None and calc.completed_at > tab.deadlines[calc_id] + 2.0:
            late += 1
    print(f"\nfaults injected: {len(injected)} ({', '.join(n for _, n in injected)})")
    print(f"accepted {len(load.accepted)}, refused {dict(load.refused)} (status 0: no answer)")
    print(f"lost {lost}   duplicated offers {dup}   late `completed` (> deadline + 2 s) {late}")
    repeats = sum(tab.repeats for tab in {id(t): t for _, t in load.accepted}.values())
    print(f"repeated frames (dropped by the tab, as the page does) {repeats}")
    print(f"\n{'process':12s} {'start MB':>9s} {'peak MB':>9s} {'end MB':>9s}")
    series: dict[str, list[float]] = defaultdict(list)
    for _, mem in samples:
        for name, mb in mem.items():
            series[name].append(mb)
    for name, values in sorted(series.items()):
        print(f"{name:12s} {values[0]:9.1f} {max(values):9.1f} {values[-1]:9.1f}")


def chart(
    samples: list[tuple[float, dict[str, float]]],
    injected: list[tuple[float, str]],
    path: Path,
    a: argparse.Namespace,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name in sorted({n for _, mem in samples for n in mem}):
        ax.plot(
            [t / 60 for t, _ in samples], [mem.get(name, 0.0) for _, mem in samples], label=name
        )
    for at, name in injected:
        ax.axvline(at / 60, color="grey", alpha=0.3)
        ax.text(at / 60, ax.get_ylim()[1] * 0.98, name, rotation=90, fontsize=6, va="top")
    ax.set(
        xlabel="minutes",
        ylabel="PSS (MB)",
        title=f"soak: {a.rate}/s, faults every {a.fault_every:.0f} s",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=5.0, help="calculations per second")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--fault-every", type=float, default=120.0, help="seconds between faults")
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in rotation")
    p.add_argument("--profile", default="realistic", choices=["realistic", "calm"])
    p.add_argument("--sample-every", type=float, default=10.0, help="memory sample, seconds")
    p.add_argument("--png", default="", help="write the memory chart here")
    trio.run(main, p.parse_args())
