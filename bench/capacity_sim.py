"""What a capacity step reads from the simulator: the status GETs it served, and which
exchanges met one of its faults."""

from __future__ import annotations

import httpx

__all__ = ["simulator_faulted", "simulator_polls"]


async def simulator_polls(http: httpx.AsyncClient, sim: str) -> int:
    """Status GETs served so far."""
    r = await http.get(f"{sim}/_control/stats")
    return int(r.json().get("polls", 0)) if r.status_code == 200 else 0


async def simulator_faulted(http: httpx.AsyncClient, sim: str) -> list[str]:
    """Correlation ids of the exchanges that met a fault: a poll's 503, stall or malformed
    body, or a lost callback."""
    r = await http.get(f"{sim}/_control/faulted")
    return [cid for cids in r.json().values() for cid in cids] if r.status_code == 200 else []
