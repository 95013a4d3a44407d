"""The capacity bench's split of late offers by cause (bench/capacity_offers.py)."""

from __future__ import annotations

from typing import Any

from bench.capacity_offers import late_offers, ts

DEADLINE = "2026-12-07T23:31:00.000Z"


def offer(calc: str, insurer: str, *, late: bool, ready: str | None) -> dict[str, Any]:
    return {"calculation_id": calc, "insurer": insurer, "late": late, "ready_at": ready}


def test_late_offers_are_split_into_the_insurers_doing_and_the_rest() -> None:
    frames = [
        offer("c1", "juniper", late=True, ready="2026-12-07T23:31:04.000Z"),  # past it
        offer("c1", "iris", late=True, ready="2026-12-07T23:30:59.500Z"),  # before, a fault
        offer("c2", "iris", late=True, ready="2026-12-07T23:30:59.500Z"),  # before: ours
        offer("c2", "delta", late=True, ready=None),  # no ready time: ours
        offer("c2", "ember", late=False, ready="2026-12-07T23:31:30.000Z"),  # not late
    ]
    offers = {(e["calculation_id"], e["insurer"]): (0.0, e) for e in frames}
    deadline_of = {"c1": ts(DEADLINE), "c2": ts(DEADLINE)}
    faulted = {("c1", "iris"), ("c1", "juniper"), ("c2", "ember")}

    assert late_offers(offers, deadline_of, faulted) == (4, 1, 1)
