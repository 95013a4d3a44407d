"""What a capacity step reads from the simulator: the status GETs it served, which
exchanges met one of its faults, and when each delivered callback left."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import httpx

__all__ = ["callback_split", "simulator_callbacks", "simulator_faulted", "simulator_polls"]


async def simulator_polls(http: httpx.AsyncClient, sim: str) -> int:
    """Status GETs served so far."""
    r = await http.get(f"{sim}/_control/stats")
    return int(r.json().get("polls", 0)) if r.status_code == 200 else 0


async def simulator_faulted(http: httpx.AsyncClient, sim: str) -> list[str]:
    """Correlation ids of the exchanges that met a fault: a poll's 503, stall or malformed
    body, or a lost callback."""
    r = await http.get(f"{sim}/_control/faulted")
    return [cid for cids in r.json().values() for cid in cids] if r.status_code == 200 else []


async def simulator_callbacks(http: httpx.AsyncClient, sim: str) -> dict[str, tuple[float, float]]:
    """Each delivered callback's correlation id: (its answer ready, its delivering POST sent),
    wall seconds."""
    r = await http.get(f"{sim}/_control/callbacks")
    if r.status_code != 200:
        return {}
    return {cid: (ready, sent) for cids in r.json().values() for cid, (ready, sent) in cids.items()}


def callback_split(
    called_back: Mapping[str, tuple[float, float]],
    keys: Mapping[str, tuple[str, str]],
    offers: Mapping[tuple[str, str], tuple[float, Any]],
    faulted: Collection[tuple[str, str]],
) -> dict[str, list[float]]:
    """A delivered callback's wait, ready -> frame, in two, over this step's offers that met
    no fault: the simulator's own lag (ready -> its POST left; its one loop serves every
    poll too) and ours (the POST left -> the frame). ``keys``: correlation id ->
    (calculation id, insurer), the key of ``offers`` (frame time, frame)."""
    mine = {cid: key for cid, key in keys.items() if key in offers and key not in faulted}
    return {
        "simulator's send lag": [called_back[c][1] - called_back[c][0] for c in mine],
        "sent -> frame": [offers[key][0] - called_back[c][1] for c, key in mine.items()],
    }
