"""The load of bench/capacity.py: the core application's POSTs at a rate, and the users'
WebSockets, each frame kept with its arrival time."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from osago.insurers.http11 import Http11Pool
from tests.cluster import Cluster
from tests.factories import MINIMAL_BODY

__all__ = ["Frames", "delivered_offers", "listen", "post_at_rate"]


@dataclass
class Frames:
    """Every frame the users' sockets received, with its arrival time."""

    items: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


async def listen(cluster: Cluster, user: str, frames: Frames, task_status: Any) -> None:
    async with cluster.websocket("notifier1", user) as ws:
        task_status.started()
        while True:
            text = await ws.get_message()
            frames.items.append((time.time(), json.loads(text)))


async def post_at_rate(
    api: str, rate: float, seconds: float, users: list[str]
) -> list[dict[str, Any] | None]:
    """POST at ``rate``/s for ``seconds`` (drift-free schedule); the 202 bodies, and a None
    for each calculation refused as overloaded (503).

    Why not httpx: the load generator shares the box's two cores with the system it loads,
    and httpx's pool took about 2 ms of CPU per POST at 50/s (py-spy, 2026-12-07: 38 % of
    the bench process's samples, which took a quarter of a core from the roles). The
    workers' own lean client (osago/insurers/http11.py) stands in for the core application."""
    accepted: list[dict[str, Any] | None] = []
    start = trio.current_time()
    n = int(rate * seconds)
    pool = Http11Pool(api, max_idle=1000)
    content = [("content-type", "application/json")]

    async def one(i: int) -> None:
        body = json.dumps({**MINIMAL_BODY, "user_id": users[i % len(users)]}).encode()
        with trio.fail_after(30):
            r = await pool.request("POST", "/api/v1/calculations", headers=content, body=body)
        if r.status == 202:
            accepted.append(json.loads(r.body))
        elif r.status == 503:
            accepted.append(None)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            await trio.sleep_until(start + i / rate)
            nursery.start_soon(one, i)
    await pool.aclose()
    return accepted


def delivered_offers(frames: Frames, ids: set[str]) -> int:
    """Distinct offers (calculation, insurer) of these calculations that reached a user."""
    return len(
        {
            (e["calculation_id"], e["insurer"])
            for _, e in frames.items
            if e["type"] == "offer" and e["calculation_id"] in ids
        }
    )
