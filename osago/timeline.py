"""A calculation's timeline for support ("why did this user get the stub?"): the calculation,
its exchanges' outcomes and its outbox rows (jobs and events, with when each was stored and
published), read off what is stored anyway; and its trail: what the worker did in each
exchange (picked up, submitted, each poll) and each frame the notifier wrote to the user's
browser, written late and in batches for this page alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from osago.models import CalculationView, Job, OutboxTrace, Step, Trail, iso

__all__ = ["timeline"]

T = TypeVar("T")


def _entry(at: float, what: str, insurer: str | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "at": at,
        "what": what,
        "insurer": insurer,
        **{k: v for k, v in detail.items() if v is not None},
    }


def _field_of(trace: OutboxTrace, name: str, kind: type[T]) -> T | None:
    """``name`` of an event's JSON body when it is a ``kind``; None for anything else."""
    try:
        body = json.loads(trace.body)
    except ValueError:
        return None
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _steps(insurer: str, steps: Sequence[Step]) -> list[dict[str, Any]]:
    """One entry a step; a run of pending polls is one entry, with its count and its end."""
    out: list[dict[str, Any]] = []
    for at, what in steps:
        last = out[-1] if out else None
        if last is not None and what == "polled: pending" == last["what"].split(" (")[0]:
            last["polls"] = last.get("polls", 1) + 1
            last["until"] = at
            last["what"] = f"polled: pending ({last['polls']} polls)"
            continue
        out.append(_entry(at, what, insurer))
    for e in out:
        if "until" in e:
            e["until"] = iso(e["until"])
    return out


def timeline(
    view: CalculationView,
    traces: Sequence[OutboxTrace],
    trail: Trail | None = None,
    *,
    queue: str,
) -> list[dict[str, Any]]:
    """Entries ``{"at", "what", "insurer", …}`` in time order, ``at`` as ISO 8601."""
    out = [_entry(view.created_at, "accepted", deadline_at=iso(view.deadline_at))]
    if trail is not None:
        for who, steps in trail.steps.items():
            out.extend(_steps(who, steps))
        insurers: dict[int, str | None] = {}
        for t in traces:
            if t.destination != queue and (seq := _field_of(t, "seq", int)) is not None:
                insurers[seq] = _field_of(t, "insurer", str)
        for p in trail.pushes:
            out.append(_entry(p.at, f"{p.type or 'event'} pushed to a tab", insurers.get(p.seq)))
    for t in traces:
        if t.destination == queue:
            try:
                insurer: str | None = Job.decode(t.body).insurer
            except Exception:  # a row we did not write: shown without its insurer
                insurer = None
            out.append(_entry(t.created_at, "job stored", insurer))
            if t.sent_at is not None:
                out.append(_entry(t.sent_at, "job published", insurer))
            continue
        kind = t.headers.get("event-type", "event")
        insurer = _field_of(t, "insurer", str)
        out.append(_entry(t.created_at, f"{kind} event stored", insurer))
        if t.sent_at is not None:
            out.append(_entry(t.sent_at, f"{kind} event published", insurer))
    for x in view.exchanges:
        o = x.outcome
        if o is None:
            continue
        if o.ready_at is not None:
            out.append(_entry(o.ready_at, "ready at the insurer", x.insurer))
        out.append(
            _entry(
                o.received_at,
                f"answer: {o.kind.value}",
                x.insurer,
                premium=o.premium,
                late=o.late or None,
                message=o.message,
                error=o.error,
            )
        )
    if view.completed_at is not None:
        offers = len(
            [x for x in view.exchanges if x.outcome and x.status == "offer" and not x.outcome.late]
        )
        out.append(
            _entry(
                view.completed_at, "completed", result="offers" if offers else "stub", offers=offers
            )
        )
    if view.closed_at is not None:
        pending = [
            x.insurer for x in view.exchanges if x.outcome is None or x.status == "timed_out"
        ]
        out.append(_entry(view.closed_at, "closed", timed_out=pending or None))
    out.sort(key=lambda e: e["at"])  # stable: what happened at one instant keeps its order
    for e in out:
        e["at"] = iso(e["at"])
    return out
