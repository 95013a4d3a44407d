"""/metrics, /healthz and /readyz, and what the roles count (memory twins)."""

from __future__ import annotations

import gc

import httpx
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osago.metrics import (
    BreakerStates,
    GcPauses,
    Metrics,
    metrics_hook,
    serve_metrics,
    snapshot,
)
from osago.resilience import BreakerPolicy, CircuitBreaker
from osago.resilience.events import CallRejected, RetryScheduled


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_readiness_and_metrics_are_served() -> None:
    metrics = Metrics()
    metrics.accepted.inc(3)
    breaker = CircuitBreaker("aurora", BreakerPolicy(open_wait=30.0))
    metrics.registry.register(BreakerStates({"aurora": breaker}))

    async def database() -> str | None:
        return None

    async def broker() -> str | None:
        return "not connected"

    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            serve_metrics, metrics, "127.0.0.1", 0, {"database": database, "broker": broker}
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {"status": "down", "down": {"broker": "not connected"}}
            text = (await http.get("/metrics")).text
            assert (await http.get("/other")).status_code == 404
        nursery.cancel_scope.cancel()
    got = samples(text)
    assert got[("osago_calculations_accepted_total", ())] == 3
    assert got[("osago_circuit_breaker_state", (("insurer", "aurora"),))] == 0


def test_the_operations_snapshot_reads_the_registry() -> None:
    metrics = Metrics()
    metrics.queue_messages.labels("osago.calculations").set(7)
    metrics.queue_consumers.labels("osago.calculations").set(2)
    for seconds in (0.02, 0.02, 3.0):
        metrics.job_wait.observe(seconds)
    metrics.in_flight.labels("aurora").inc()
    metrics.outcomes.labels("aurora", "offer").inc(4)
    metrics.recent_stubs.append(("c-1", 1_790_000_000.0))
    for seconds in [0.0005] * 98 + [0.02, 0.3]:
        metrics.loop_lag.observe(seconds)
    state = snapshot(metrics)
    assert state["queues"]["osago.calculations"] == {"messages": 7, "consumers": 2}
    assert state["job_wait"]["jobs"] == 3
    assert state["job_wait"]["p99_at_most_seconds"] == 5  # the bucket that holds it
    assert state["loop_lag"] == {"p99_at_most_seconds": 0.025}  # the 99th wake-up's bucket
    assert state["insurers"]["aurora"] == {"outcomes": {"offer": 4}, "in_flight": 1}
    assert state["recent_stubs"][0]["calculation_id"] == "c-1"


def test_the_resilience_hooks_are_counted_by_insurer_and_kind() -> None:
    metrics = Metrics()
    hook = metrics_hook(metrics)
    hook(RetryScheduled("aurora", 1.0, attempt=1, delay=0.5, error="503"))
    hook(RetryScheduled("aurora", 2.0, attempt=2, delay=1.0, error="503"))
    hook(CallRejected("borealis", 3.0, retry_after=10.0))
    got = samples(generate_latest(metrics.registry).decode())
    key = "osago_resilience_events_total"
    assert got[(key, (("event", "retry_scheduled"), ("insurer", "aurora")))] == 2
    assert got[(key, (("event", "call_rejected"), ("insurer", "borealis")))] == 1


def test_the_collectors_pauses_are_counted_by_generation_while_installed() -> None:
    metrics = Metrics()
    pauses = GcPauses()
    metrics.registry.register(pauses)
    with pauses.installed():
        gc.collect(0)
        gc.collect(0)
        gc.collect(2)
    gc.collect(2)  # not installed any more: not counted
    got = samples(generate_latest(metrics.registry).decode())

    def count(generation: int) -> float:
        return got[("osago_gc_pause_seconds_count", (("generation", str(generation)),))]

    assert (count(0), count(1), count(2)) == (2, 0, 1)
    inf = got[("osago_gc_pause_seconds_bucket", (("generation", "0"), ("le", "+Inf")))]
    assert inf == 2
    assert got[("osago_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    cpu = got[("osago_gc_cpu_seconds_total", (("generation", "2"),))]
    assert 0 < cpu <= got[("osago_gc_pause_seconds_sum", (("generation", "2"),))] + 1e-3
    assert got[("osago_gc_cpu_seconds_total", (("generation", "1"),))] == 0
