"""What the chaos tests drive the cluster with: clients that behave like the demo page, a
steady load, and the checks every fault must pass."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from osago.broker import open_stomp_broker
from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL
from tests.factories import MINIMAL_BODY

__all__ = [
    "API_TOKEN",
    "STORE_TIMEOUT",
    "Client",
    "Load",
    "chaos_cluster",
    "clients",
    "dead_letters",
    "verify",
]

API_TOKEN = "chaos-core-app-token"
STORE_TIMEOUT = 2.0  # the cluster's OSAGO_STORE_TIMEOUT: the api's 503 comes within it


def chaos_cluster(
    database_url: str,
    suffix: str,
    *,
    deadline: float,
    insurers: str = "",
    delays: str = "",
    **env: str,
) -> AbstractAsyncContextManager[Cluster]:
    """Every role its own process on ``database_url`` and the real ActiveMQ, with the core
    app's token (for GET and the timeline) and a short store timeout; ``env`` adds to it."""
    return start_cluster(
        database_url=database_url,
        broker_url=STOMP_URL,
        suffix=suffix,
        deadline=deadline,
        insurers=insurers,
        delays=delays,
        extra_env={"OSAGO_API_TOKEN": API_TOKEN, "OSAGO_STORE_TIMEOUT": str(STORE_TIMEOUT), **env},
    )


@dataclass
class _Calc:
    last_seq: int = 0  # the last seq with none missing below it: what a resume asks after
    seen: set[int] = field(default_factory=set)
    offers: dict[str, set[int]] = field(default_factory=dict)  # insurer -> seqs it came with
    completed: bool = False
    completed_at: float | None = None  # wall time the tab learnt it (frame, or GET)
    caught_up: bool = False  # by GET, after resume_failed


@dataclass
class Client:
    """One user's tab, as the demo page behaves: it keeps its socket, reconnects (to any
    notifier) and resumes when closed, and falls back to GET when a resume cannot be served."""

    cluster: Cluster
    user: str
    calcs: dict[str, _Calc] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    deadlines: dict[str, float] = field(default_factory=dict)  # wall time, from the 202
    repeats: int = 0  # frames of an event already applied (harmless: the page drops them)
    sessions: int = 0

    def _apply(self, event: dict[str, Any]) -> None:
        calc = self.calcs.setdefault(event["calculation_id"], _Calc())
        seq = event["seq"]
        if seq in calc.seen:
            self.repeats += 1
            return
        calc.seen.add(seq)
        while calc.last_seq + 1 in calc.seen:
            calc.last_seq += 1
        if event["type"] == "offer":
            calc.offers.setdefault(event["insurer"], set()).add(seq)
        elif event["type"] == "completed":
            calc.completed, calc.completed_at = True, time.time()

    async def _catch_up(self, calc_id: str) -> None:
        view = await _get(self.cluster, calc_id)
        calc = self.calcs.setdefault(calc_id, _Calc())
        calc.caught_up = True
        for offer in view["offers"]:
            calc.offers.setdefault(offer["insurer"], set()).add(0)
        calc.seen.update(range(1, view["last_seq"] + 1))
        calc.last_seq = max(calc.last_seq, view["last_seq"])
        if not calc.completed and view["status"] != "pending":
            calc.completed, calc.completed_at = True, time.time()

    async def run(self) -> None:
        for n in itertools.count():
            notifiers = [p for name, p in self.cluster.procs.items() if name.startswith("notif")]
            alive = [p for p in notifiers if p.process.returncode is None] or notifiers
            url = f"{alive[n % len(alive)].urls['notifier']}?token={self.cluster.token(self.user)}"
            try:
                async with open_websocket_url(url) as ws:
                    self.sessions += 1
                    pending = [
                        {"calculation_id": c, "last_seq": calc.last_seq, "created_at": t}
                        for c, t in self.created.items()
                        if not (calc := self.calcs.setdefault(c, _Calc())).completed
                    ]
                    if pending:
                        await ws.send_message(
                            json.dumps({"type": "resume", "calculations": pending})
                        )
                    while True:
                        event = json.loads(await ws.get_message())
                        if event["type"] == "resume_failed":
                            await self._catch_up(event["calculation_id"])
                        elif "seq" in event:
                            self._apply(event)
            except (ConnectionClosed, HandshakeError, OSError, httpx.HTTPError, KeyError):
                await trio.sleep(0.2)

    def accepted(self, calc_id: str, created_at: float, deadline_at: float) -> None:
        self.created[calc_id] = created_at
        self.deadlines[calc_id] = deadline_at
        self.calcs.setdefault(calc_id, _Calc())


async def _get(cluster: Cluster, calc_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(
            f"{cluster.url('api', 'api')}/api/v1/calculations/{calc_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]


@asynccontextmanager
async def clients(cluster: Cluster, n: int) -> AsyncIterator[list[Client]]:
    """``n`` users' tabs, running until the context ends."""
    tabs = [Client(cluster, f"chaos-user-{i}") for i in range(n)]
    async with trio.open_nursery() as nursery:
        for tab in tabs:
            nursery.start_soon(tab.run)
        yield tabs
        nursery.cancel_scope.cancel()


@dataclass
class Load:
    """POSTs at a steady rate, round-robin over the clients' users, to whichever api runs."""

    cluster: Cluster
    tabs: list[Client]
    accepted: list[tuple[str, Client]] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)  # status (0: no connection) -> count

    async def run(self, rate: float, seconds: float) -> None:
        start = trio.current_time()
        async with httpx.AsyncClient(timeout=10) as http:
            for i in range(int(rate * seconds)):
                await trio.sleep_until(start + i / rate)
                tab = self.tabs[i % len(self.tabs)]
                try:
                    r = await http.post(
                        f"{self.cluster.url('api', 'api')}/api/v1/calculations",
                        json={**MINIMAL_BODY, "user_id": tab.user},
                        headers={"Authorization": f"Bearer {API_TOKEN}"},
                    )
                except (httpx.HTTPError, KeyError):  # no api, or one restarting (no URL yet)
                    self.refused[0] = self.refused.get(0, 0) + 1
                    continue
                if r.status_code == 202:
                    body = r.json()
                    calc = body["calculation_id"]
                    deadline = datetime.fromisoformat(body["deadline_at"].replace("Z", "+00:00"))
                    tab.accepted(calc, time.time(), deadline.timestamp())
                    self.accepted.append((calc, tab))
                else:
                    self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1


async def dead_letters(queue: str, *, url: str = STOMP_URL) -> int:
    """How many messages wait in ``DLQ.<queue>`` (drained and counted)."""
    count = 0
    async with (
        open_stomp_broker(url) as broker,
        broker.subscribe(f"/queue/DLQ.{queue}") as dlq,
    ):
        while True:
            with trio.move_on_after(1.0) as idle:
                delivery = await dlq.receive()
            if idle.cancelled_caught:
                return count
            await dlq.ack(delivery)
            count += 1


async def verify(load: Load, *, within: float) -> None:
    """Every accepted calculation ends `completed` at its user's tab, and every offer the
    database holds reached that tab exactly once (one seq per insurer), all within ``within``
    seconds."""
    assert load.accepted, "nothing was accepted: the load never ran"
    end = trio.current_time() + within
    for _ in range(int(within / 0.2)):
        if all(tab.calcs[c].completed for c, tab in load.accepted):
            break
        await trio.sleep(0.2)
    missing = [c for c, tab in load.accepted if not tab.calcs[c].completed]
    assert not missing, f"{len(missing)} of {len(load.accepted)} never completed at the client"
    for calc_id, tab in load.accepted:
        # A late offer comes after `completed` (a backlog makes many): stored, then published
        # a moment later. It must reach the tab, within the same bound.
        while True:
            view = await _get(load.cluster, calc_id)
            held = {o["insurer"] for o in view["offers"]}
            got = tab.calcs[calc_id].offers
            if set(got) == held or trio.current_time() >= end:
                break
            await trio.sleep(0.2)
        assert set(got) == held, (calc_id, sorted(got), sorted(held))
        twice = {insurer: seqs for insurer, seqs in got.items() if len(seqs - {0}) > 1}
        assert not twice, f"{calc_id}: offers delivered under two seqs: {twice}"
