"""Issue 12's proof, every role its own process on the real services: with no worker the
api's /metrics shows the queue growing; a worker drains it to 0, its job-wait histogram
shows the time the jobs waited, and the families carry the expected counts."""

from __future__ import annotations

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL
from tests.factories import MINIMAL_BODY

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(cluster: Cluster, name: str) -> Samples:
    async with httpx.AsyncClient() as http:
        text = (await http.get(cluster.url(name, "metrics"))).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def until(
    cluster: Cluster, name: str, key: tuple[str, tuple[tuple[str, str], ...]], value: float
) -> Samples:
    """Scrape ``name`` until ``key`` reads ``value`` (the gauges refresh every 5 s)."""
    for _ in range(60):
        got = await scrape(cluster, name)
        if got.get(key) == value:
            return got
        await trio.sleep(0.5)
    pytest.fail(f"{name}: {key} never read {value}: {got.get(key)}")


async def test_the_queue_grows_without_workers_and_a_worker_drains_it(
    pg_url: str, unique: str
) -> None:
    queue = f"osago.test.{unique}"
    messages = ("osago_queue_messages", (("queue", queue),))
    async with start_cluster(
        database_url=pg_url,
        broker_url=STOMP_URL,
        suffix=unique,
        deadline=30.0,  # the jobs wait well within it; the last answer completes each
        insurers="delta,ember",  # polled (the insurers file's aurora and borealis call back)
        delays="delta=0.3,ember=0.6",
        workers=0,
        notifiers=1,
        extra_env={"OSAGO_METRICS_BIND": "127.0.0.1:0", "OSAGO_LATE_WINDOW_SECONDS": "1"},
    ) as cluster:
        async with httpx.AsyncClient() as http:
            for i in range(5):
                r = await http.post(
                    f"{cluster.url('api', 'api')}/api/v1/calculations",
                    json={**MINIMAL_BODY, "user_id": f"metrics-{i}"},
                )
                assert r.status_code == 202
        api = await until(cluster, "api", messages, 5)  # 5 calculations, a message each
        assert api[("osago_calculations_accepted_total", ())] == 5
        assert api[("osago_queue_consumers", (("queue", queue),))] == 0
        await trio.sleep(2.0)  # the jobs wait
        await cluster.start("worker1", "worker")
        await until(cluster, "api", messages, 0)
        worker = await until(
            cluster, "worker1", ("osago_calculations_completed_total", (("result", "offers"),)), 5
        )
        assert worker[("osago_job_wait_seconds_count", ())] == 10
        assert worker[("osago_job_wait_seconds_sum", ())] >= 10 * 2.0
        for insurer in ("delta", "ember"):
            assert (
                worker[
                    ("osago_exchange_outcomes_total", (("insurer", insurer), ("outcome", "offer")))
                ]
                == 5
            )
            assert worker[("osago_circuit_breaker_state", (("insurer", insurer),))] == 0
            assert worker[("osago_exchanges_in_flight", (("insurer", insurer),))] == 0
            ok = (("insurer", insurer), ("operation", "submit"), ("result", "ok"))
            assert worker[("osago_insurer_requests_total", ok)] == 5
        worker = await until(cluster, "worker1", ("osago_queue_consumers", (("queue", queue),)), 1)
        assert worker[("osago_queue_messages", (("queue", f"DLQ.{queue}"),))] == 0
        notifier = await scrape(cluster, "notifier1")
        assert ("osago_ws_sessions", ()) in notifier
        for role in (api, worker, notifier):  # each role counts its collector's pauses
            assert ("osago_gc_pause_seconds_count", (("generation", "0"),)) in role
            # and watches its loop's lag, four wake-ups a second since it started
            assert role[("osago_loop_lag_seconds_count", ())] > 0
        async with httpx.AsyncClient() as http:
            ready = await http.get(cluster.url("worker1", "metrics").replace("/metrics", "/readyz"))
            assert ready.json() == {"status": "ready", "down": {}}
