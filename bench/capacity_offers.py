"""What a capacity step reads off the offer frames it received: each offer's overhead in
stages, and its late offers by cause."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from bench.capacity_db import Event

__all__ = ["after_answer", "late_offers", "ts"]

Offer = tuple[float, dict[str, Any]]  # (the frame's arrival, wall seconds; the frame)


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def after_answer(
    offers: Iterable[Offer],
    settled: dict[Event, float],
    pushed: dict[Event, float],
) -> dict[str, list[float]]:
    """The overhead of each offer in three stages: its settle waiting (the worker's linger, a
    batch before it, the loop; a callback's in the api), the settle to the notifier's push
    (the statement, the commit, ActiveMQ, the notifier), and the push to the bench's frame."""
    out: dict[str, list[float]] = {"settle wait": [], "settle -> push": [], "push -> frame": []}
    for t, e in offers:
        key = (e["calculation_id"], e["seq"])
        if key in settled and key in pushed:
            out["settle wait"].append(settled[key] - ts(e["received_at"]))
            out["settle -> push"].append(pushed[key] - settled[key])
            out["push -> frame"].append(t - pushed[key])
    return out


def late_offers(
    offers: Mapping[tuple[str, str], Offer],
    deadline_of: Mapping[str, float],
    faulted: Collection[tuple[str, str]],
) -> tuple[int, int, int]:
    """(late offers; those the insurer had ready only past the calculation's deadline; those
    ready before it whose exchange met one of the simulator's faults), by (calculation,
    insurer). A late offer arrived after `completed`. The second and third kinds are the
    insurer's own doing (the realistic profile's tail past a minute; a held or failed
    poll), not the load's: what is left is ours, or the poll schedule's cadence."""
    late = {k: e for k, (_, e) in offers.items() if e.get("late")}
    past = {
        k
        for k, e in late.items()
        if e.get("ready_at") and ts(e["ready_at"]) >= deadline_of[e["calculation_id"]]
    }
    met_fault = sum(1 for k in late if k not in past and k in faulted)
    return len(late), len(past), met_fault
