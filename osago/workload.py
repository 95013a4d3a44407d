"""How long jobs wait to be picked up by a worker: each worker reports it, the api sheds on it.

Why: past what the workers' CPU can do, with a prefetch large enough for slow insurers, a
surge does not queue in the broker (the workers hold every job it has) and the api may still
publish at once: the jobs wait inside the workers, behind each other for the loop and the
database. On the realistic profile at 50/s (``bench/capacity.py``) they waited 1.1 s (p50;
p99 3.8 s) from the api's commit to a worker picking them up, overhead p99 was 3.3 s, and
neither the queue's size nor the api's publishing saw it. At 40/s, which the box carries,
the same wait was 0.13 s.

So every worker measures that wait for each job it starts (the api's commit to the worker
having loaded the exchange: the broker's queue, the api's publishing and the worker's own
backlog all count) and, every second, sends the median of the last second's to a topic
(``OSAGO_LOAD_TOPIC``). Every api subscribes, keeps each worker's latest report, and
refuses a share of new calculations that grows from none at half of
``OSAGO_MAX_PICKUP_WAIT`` to all at it, by the highest fresh report (:mod:`osago.admission`).
Why a topic and not the database: a reading is worthless after a few seconds, nobody needs
it after a restart, and every api must hear every worker. A report that does not come (a
worker gone, the broker away) goes stale and counts for nothing: then the queue's size and
the api's publishing are what admission sees.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
from contextlib import suppress
from dataclasses import dataclass

import trio

from osago.broker import Broker, Outgoing
from osago.errors import BrokerError

__all__ = ["LoadReport", "PickupWaits", "WorkerLoads", "report_load", "watch_workers"]

log = logging.getLogger("osago.workload")

# A report older than this (seconds, on the api's clock) counts for nothing.
STALE_AFTER = 3.0


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One worker's reading: the median wait (seconds, commit to picked up) of the ``jobs``
    it picked up over the last interval; 0.0 when it picked up none."""

    worker: str
    pickup_wait: float
    jobs: int

    def encode(self) -> bytes:
        """The report as a message body (JSON)."""
        return json.dumps(
            {"worker": self.worker, "pickup_wait": self.pickup_wait, "jobs": self.jobs}
        ).encode()

    @classmethod
    def decode(cls, body: bytes) -> LoadReport | None:
        """The report in ``body``; None when it is not one (ignored, never fatal)."""
        try:
            d = json.loads(body)
            report = cls(str(d["worker"]), float(d["pickup_wait"]), int(d["jobs"]))
        except (ValueError, KeyError, TypeError):
            return None
        return report if report.pickup_wait >= 0.0 and report.jobs >= 0 else None


class PickupWaits:
    """A worker's pickup waits since the last report."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: list[float] = []

    def observe(self, seconds: float) -> None:
        """One job picked up ``seconds`` after the api committed it."""
        self._seen.append(seconds)

    def take(self) -> tuple[float, int]:
        """(median, count) of the waits since the last call, and forget them."""
        seen, self._seen = self._seen, []
        return (statistics.median(seen) if seen else 0.0), len(seen)


def _worker_name() -> str:
    """This process, as reports name it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def report_load(
    broker: Broker,
    topic: str,
    waits: PickupWaits,
    *,
    every: float = 1.0,
    name: str | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send ``waits``' median to ``topic`` every ``every`` seconds (drift-free), until
    cancelled. A send that fails or takes longer than ``every`` is dropped: the next
    reading replaces it anyway."""
    me = name or _worker_name()
    task_status.started()
    next_at = trio.current_time()
    while True:
        next_at = max(next_at + every, trio.current_time())
        await trio.sleep_until(next_at)
        wait, jobs = waits.take()
        report = LoadReport(me, round(wait, 4), jobs)
        with trio.move_on_after(every), suppress(BrokerError):
            await broker.send([Outgoing(topic, report.encode())])


class WorkerLoads:
    """The latest report of every worker, as an api heard them."""

    __slots__ = ("_latest",)

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, LoadReport]] = {}

    def note(self, report: LoadReport) -> None:
        """A report, heard now."""
        self._latest[report.worker] = (trio.current_time(), report)

    def highest_wait(self) -> float:
        """The highest pickup wait any worker reported within ``STALE_AFTER`` seconds; 0.0
        when none did. Stale reports are forgotten."""
        now = trio.current_time()
        highest = 0.0
        for worker, (at, report) in list(self._latest.items()):
            if now - at > STALE_AFTER:
                del self._latest[worker]
            else:
                highest = max(highest, report.pickup_wait)
        return highest


async def watch_workers(
    broker: Broker,
    topic: str,
    loads: WorkerLoads,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Note every report published on ``topic`` in ``loads``, until cancelled. A plain
    (non-durable) subscription: what was said while nobody listened is stale anyway."""
    async with broker.subscribe(topic) as sub:
        task_status.started()
        async for delivery in sub:
            report = LoadReport.decode(delivery.body)
            if report is None:
                log.warning("load report %s ignored: not a report", delivery.message_id)
                continue
            loads.note(report)
