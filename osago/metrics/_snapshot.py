"""What the operations page shows, read off this process's registry (in ``--role all`` that
is every role's)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from osago.metrics._families import Metrics
from osago.metrics._quantile import bucket_quantile
from osago.models import iso

__all__ = ["snapshot"]


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` (cumulative (le, count) pairs);
    None past the last finite bound, or with nothing observed."""
    le = bucket_quantile(buckets, q)
    return None if le is None or math.isinf(le) else le


def snapshot(metrics: Metrics) -> dict[str, Any]:
    """Queues, outbox, job wait, the loop's lag, each insurer's breaker / in flight /
    outcomes, recent stubs."""
    values: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in metrics.registry.collect():
        for s in family.samples:
            values[s.name].append((s.labels, s.value))

    def one(name: str) -> float:
        return sum(v for _, v in values.get(name, []))

    queues = {
        labels["queue"]: {"messages": v} for labels, v in values.get("osago_queue_messages", [])
    }
    for labels, v in values.get("osago_queue_consumers", []):
        queues.setdefault(labels["queue"], {})["consumers"] = v
    insurers: dict[str, dict[str, Any]] = defaultdict(lambda: {"outcomes": {}})
    for labels, v in values.get("osago_circuit_breaker_state", []):
        insurers[labels["insurer"]]["breaker"] = ["closed", "half-open", "open"][int(v)]
    for labels, v in values.get("osago_exchanges_in_flight", []):
        insurers[labels["insurer"]]["in_flight"] = v
    for labels, v in values.get("osago_exchange_outcomes_total", []):
        insurers[labels["insurer"]]["outcomes"][labels["outcome"]] = v
    waits = sorted(
        (float(labels["le"]), v) for labels, v in values.get("osago_job_wait_seconds_bucket", [])
    )
    count = one("osago_job_wait_seconds_count")
    lags = sorted(
        (float(labels["le"]), v) for labels, v in values.get("osago_loop_lag_seconds_bucket", [])
    )
    return {
        "queues": queues,
        "outbox": {
            "pending": one("osago_outbox_pending_messages"),
            "oldest_age_seconds": one("osago_outbox_oldest_pending_age_seconds"),
        },
        "job_wait": {
            "jobs": count,
            "mean_seconds": one("osago_job_wait_seconds_sum") / count if count else None,
            "p99_at_most_seconds": _quantile(waits, 0.99),
        },
        # How late this process's loop woke its timers since it started: high means the
        # process is short of CPU (osago/metrics/_lag.py).
        "loop_lag": {"p99_at_most_seconds": _quantile(lags, 0.99)},
        "insurers": dict(sorted(insurers.items())),
        "recent_stubs": [
            {"calculation_id": c, "at": iso(at)} for c, at in reversed(metrics.recent_stubs)
        ],
    }
