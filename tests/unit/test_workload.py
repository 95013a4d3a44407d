"""Workers report how long their jobs waited to be started; the api sheds on it."""

from __future__ import annotations

import dataclasses
import random
from functools import partial

import pytest
import trio
import trio.testing

from osago.admission import Backlog
from osago.broker import Outgoing, open_memory_broker
from osago.config import Settings
from osago.roles.api import create_app, watch_pickup
from osago.workload import (
    STALE_AFTER,
    LoadReport,
    PickupWaits,
    WorkerLoads,
    report_load,
    watch_workers,
)
from tests.factories import MINIMAL_BODY, api_deps, new_calculation
from tests.unit.test_flow import SETTINGS as FLOW
from tests.unit.test_flow import harness

TOPIC = "/topic/osago.load"
SETTINGS = Settings(insurer_codes=("aurora", "borealis", "cedar"), max_pickup_wait=1.0)


def test_a_report_survives_its_message_and_garbage_is_no_report() -> None:
    report = LoadReport("host:1", 0.25, 7)
    assert LoadReport.decode(report.encode()) == report
    for body in (b"", b"not json", b"[]", b'{"worker": "w"}', b'{"worker": "w",'):
        assert LoadReport.decode(body) is None
    negative = b'{"worker": "w", "pickup_wait": -1, "jobs": 1}'
    assert LoadReport.decode(negative) is None


def test_pickup_waits_give_the_median_of_each_interval_then_start_afresh() -> None:
    waits = PickupWaits()
    assert waits.take() == (0.0, 0)
    for seconds in (0.1, 3.0, 0.2):
        waits.observe(seconds)
    assert waits.take() == (0.2, 3)
    assert waits.take() == (0.0, 0)


async def test_the_api_hears_every_worker_and_forgets_the_silent_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    loads = WorkerLoads()
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        await nursery.start(watch_workers, broker, TOPIC, loads)
        busy, calm = PickupWaits(), PickupWaits()
        reporters = trio.CancelScope()

        async def reporting(task_status: trio.TaskStatus[None]) -> None:
            with reporters:
                async with trio.open_nursery() as inner:
                    await inner.start(partial(report_load, broker, TOPIC, busy, name="busy"))
                    await inner.start(partial(report_load, broker, TOPIC, calm, name="calm"))
                    task_status.started()

        await nursery.start(reporting)
        for seconds in (1.5, 2.0, 2.5):
            busy.observe(seconds)
        calm.observe(0.1)
        await trio.sleep(1.01)  # one report each: the highest counts
        assert loads.highest_wait() == 2.0
        await trio.sleep(1.0)  # nothing picked up since: both report 0
        assert loads.highest_wait() == 0.0
        busy.observe(4.0)
        await trio.sleep(1.0)
        assert loads.highest_wait() == 4.0
        reporters.cancel()  # the workers die: their last word goes stale
        await trio.sleep(STALE_AFTER - 0.5)
        assert loads.highest_wait() == 4.0
        await trio.sleep(1.0)
        assert loads.highest_wait() == 0.0
        # A message on the topic that is not a report changes nothing.
        await broker.send([Outgoing(TOPIC, b"garbage")])
        await trio.sleep(0.1)
        assert loads.highest_wait() == 0.0
        nursery.cancel_scope.cancel()


async def test_new_calculations_are_refused_while_workers_start_jobs_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Past ``max_pickup_wait`` of reported wait (commit to a worker starting the job), new
    calculations get the quick 503 (cause ``workers``); once the reports are at half the limit
    or under again, or stale, they are taken."""
    loads = WorkerLoads()
    async with open_memory_broker() as broker:
        deps = api_deps(SETTINGS, broker, backlog=Backlog(max_pickup=SETTINGS.max_pickup_wait))
        watch_pickup(deps, loads)
        client = create_app(deps).test_client()

        async def post(user: str) -> int:
            body = {**MINIMAL_BODY, "user_id": user}
            return (await client.post("/api/v1/calculations", json=body)).status_code

        loads.note(LoadReport("w1", 0.4, 100))
        loads.note(LoadReport("w2", 0.5, 100))  # half the limit: nobody refused yet
        assert await post("u1") == 202
        loads.note(LoadReport("w2", 1.6, 100))
        r = await client.post("/api/v1/calculations", json={**MINIMAL_BODY, "user_id": "u2"})
        assert r.status_code == 503
        assert (await r.get_json())["error"] == "overloaded"
        assert r.headers["Retry-After"] == "5"
        gauge = "osago_workers_pickup_wait_seconds"
        assert deps.metrics.registry.get_sample_value(gauge) == pytest.approx(1.6)
        loads.note(LoadReport("w2", 0.3, 100))  # caught up
        assert await post("u3") == 202
        loads.note(LoadReport("w2", 5.0, 100))
        assert await post("u4") == 503
        await trio.sleep(STALE_AFTER + 0.1)  # that worker fell silent: its word is stale
        assert await post("u5") == 202
        assert deps.metrics.registry.get_sample_value(gauge) == 0.0
    refused = deps.metrics.registry.get_sample_value(
        "osago_calculations_overloaded_total", {"cause": "workers"}
    )
    assert refused == 2


async def test_no_limit_means_reports_refuse_nothing() -> None:
    loads = WorkerLoads()
    settings = dataclasses.replace(SETTINGS, max_pickup_wait=0.0)
    async with open_memory_broker() as broker:
        deps = api_deps(settings, broker, backlog=Backlog(max_pickup=settings.max_pickup_wait))
        watch_pickup(deps, loads)
        loads.note(LoadReport("w1", 30.0, 100))
        r = await create_app(deps).test_client().post("/api/v1/calculations", json=MINIMAL_BODY)
        assert r.status_code == 202


@pytest.mark.parametrize(
    ("wait", "share"),
    [(0.0, 0.0), (0.5, 0.0), (0.6, 0.2), (0.75, 0.5), (0.9, 0.8), (1.0, 1.0), (7.0, 1.0)],
)
def test_the_share_refused_grows_from_half_the_limit_to_all_at_it(
    wait: float, share: float
) -> None:
    assert Backlog(max_pickup=1.0).pickup_share(wait) == pytest.approx(share)


def test_that_share_of_new_calculations_is_refused() -> None:
    """At twice the box's capacity the wait settles where half are refused."""
    backlog = Backlog(max_pickup=1.0, pickup=lambda: 0.75, rng=random.Random(7))
    refused = [backlog.refusal() for _ in range(2000)]
    assert 900 < sum(r is not None for r in refused) < 1100
    assert {r.cause for r in refused if r is not None} == {"workers"}
    backlog.pickup = lambda: 0.5
    assert all(backlog.refusal() is None for _ in range(200))


async def test_a_worker_reports_how_long_its_jobs_waited_to_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each second a worker publishes the median wait (commit -> picked up) of the jobs it
    started in that second, for the api's admission (osago/workload.py)."""
    reports: list[tuple[float, LoadReport]] = []
    async with harness({"aurora": 1.0, "borealis": 1.0}) as h:

        async def listen(task_status: trio.TaskStatus[None]) -> None:
            async with h.broker.subscribe(FLOW.load_topic) as sub:
                task_status.started()
                async for d in sub:
                    report = LoadReport.decode(d.body)
                    assert report is not None
                    reports.append((trio.current_time(), report))

        await h.nursery.start(listen)
        start = trio.current_time()
        # Committed 2 s ago (as if the jobs had queued that long): picked up now.
        calc = new_calculation(
            insurers=FLOW.insurer_codes, created_at=h.clock.now() - 2.0, deadline=5.0
        )
        await h.store.create_calculation(calc, queue=FLOW.requests_queue)
        await trio.sleep(3.5)
    assert len({r.worker for _, r in reports}) == 1
    assert [(round(t - start), r.jobs) for t, r in reports] == [(1, 2), (2, 0), (3, 0)]
    assert reports[0][1].pickup_wait == pytest.approx(2.0, abs=0.01)
    assert [r.pickup_wait for _, r in reports[1:]] == [0.0, 0.0]
