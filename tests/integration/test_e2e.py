"""The walking skeleton end to end: every role its own process, real ActiveMQ and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import trio

from osago.broker import Outgoing, Subscription, open_stomp_broker
from osago.workload import LoadReport
from tests.cluster import (
    Cluster,
    all_role_env,
    receive_until_completed,
    refusal,
    start_cluster,
)
from tests.conftest import STOMP_URL
from tests.factories import MINIMAL_BODY

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DEADLINE = 4.0


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
async def cluster(pg_url: str, unique: str) -> AsyncIterator[Cluster]:
    # cedar answers after the deadline; aurora and borealis before it. All three polled (the
    # insurers file has aurora and borealis call back: that is the next test's).
    async with start_cluster(
        database_url=pg_url,
        broker_url=STOMP_URL,
        suffix=unique,
        deadline=DEADLINE,
        insurers="aurora,borealis,cedar",
        delays="aurora=0.3,borealis=0.8,cedar=6",
        callbacks=False,
    ) as c:
        yield c


def body(user: str) -> dict[str, object]:
    return {**MINIMAL_BODY, "user_id": user}


async def test_offers_reach_only_their_user_once_then_completed_or_stub(cluster: Cluster) -> None:
    async with (
        cluster.websocket("notifier1", "alice") as alice,
        cluster.websocket("notifier2", "alice") as alice_tab2,
        cluster.websocket("notifier2", "bob") as bob,
    ):
        accepted = await cluster.post(body("alice"))
        calc = accepted["calculation_id"]
        frames = await receive_until_completed(alice, calc, within=DEADLINE + 5)
        tab2 = await receive_until_completed(alice_tab2, calc, within=2)

        kinds = [(e["type"], e.get("insurer")) for _, e in frames]
        # Both answer within the first second; polled at most once a second (the insurers'
        # contract), both offers may come from the same round of polls, in either order.
        assert sorted(kinds[:2]) == [("offer", "aurora"), ("offer", "borealis")]
        assert kinds[2:] == [("completed", None)]
        assert [e["seq"] for _, e in tab2] == [e["seq"] for _, e in frames]
        completed = frames[-1][1]
        assert completed["offers"] == 2
        assert completed["stub"] is None
        # cedar answered after the deadline: no offer, and `completed` came at the deadline.
        lateness = frames[-1][0] - ts(accepted["deadline_at"])
        assert -0.05 < lateness < 1.0
        # ...but within the late window its offer still comes, after `completed`, marked late.
        with trio.fail_after(5):
            late = json.loads(await alice.get_message())
        assert (late["type"], late["insurer"], late["late"]) == ("offer", "cedar", True)

        # Now nobody answers in time: the stub, at the deadline.
        for code in ("aurora", "borealis"):
            await cluster.control(code, delay=30)
        stubbed = await cluster.post(body("alice"))
        frames = await receive_until_completed(
            alice, stubbed["calculation_id"], within=DEADLINE + 5
        )
        assert [e["type"] for _, e in frames] == ["completed"]
        assert frames[0][1]["offers"] == 0
        stub = frames[0][1]["stub"]
        assert "did not answer within" in stub["message"]
        assert 0 < stub["premium_min"] < stub["premium_max"]
        assert stub["breakdown"]["territory"] == "Moscow"

        with trio.move_on_after(0.5):
            await bob.get_message()
            pytest.fail("bob received alice's events")


async def test_each_job_and_each_calculation_is_run_by_exactly_one_worker(cluster: Cluster) -> None:
    calcs = [(await cluster.post(body(f"user-{i}")))["calculation_id"] for i in range(12)]
    await trio.sleep(DEADLINE + 1.5)
    submitted: dict[str, list[str]] = {}
    for name in ("worker1", "worker2"):
        for line in cluster.procs[name].grep(r"submitted to"):
            key = line.split("calculation ", 1)[1].split(" as ")[0]
            submitted.setdefault(key, []).append(name)
    assert len(submitted) == len(calcs) * 3
    assert all(len(workers) == 1 for workers in submitted.values())
    # A calculation's jobs are one message group: one worker runs them all (and settles
    # each answer on the state it wrote last); calculations spread over both workers.
    by_calc: dict[str, set[str]] = {}
    for key, workers in submitted.items():
        by_calc.setdefault(key.split(":", 1)[0], set()).update(workers)
    assert sorted(by_calc) == sorted(calcs)
    assert all(len(workers) == 1 for workers in by_calc.values())
    assert {w for ws in by_calc.values() for w in ws} == {"worker1", "worker2"}


async def test_every_worker_reports_its_pickup_wait_each_second(cluster: Cluster) -> None:
    """The api's admission hears every worker on the load topic (osago/workload.py)."""
    reports: list[LoadReport] = []

    async def hear(sub: Subscription) -> None:
        async for delivery in sub:
            report = LoadReport.decode(delivery.body)
            assert report is not None
            reports.append(report)

    async with (
        open_stomp_broker(STOMP_URL) as broker,
        broker.subscribe(cluster.env["OSAGO_LOAD_TOPIC"]) as sub,
    ):
        for i in range(6):
            await cluster.post(body(f"load-{i}"))
        with trio.move_on_after(4.0):  # the jobs start within a second or so; then idle
            await hear(sub)
    assert len({r.worker for r in reports}) == 2
    assert sum(r.jobs for r in reports) == 6 * 3
    assert all(0.0 <= r.pickup_wait < DEADLINE for r in reports)


async def test_poison_message_lands_in_the_dlq_and_work_goes_on(
    cluster: Cluster, unique: str
) -> None:
    queue = f"/queue/osago.test.{unique}"
    async with open_stomp_broker(STOMP_URL) as broker:
        await broker.send([Outgoing(queue, b'{"not": "a job"}', {"test": unique})])
        async with cluster.websocket("notifier1", "carol") as ws:
            calc = (await cluster.post(body("carol")))["calculation_id"]
            frames = await receive_until_completed(ws, calc, within=DEADLINE + 5)
        assert [e["type"] for _, e in frames][-1] == "completed"
        async with broker.subscribe(f"/queue/DLQ.osago.test.{unique}") as dlq:
            with trio.fail_after(15):
                dead = await dlq.__aiter__().__anext__()
            await dlq.ack(dead)
    assert json.loads(dead.body) == {"not": "a job"}
    failures = [ln for p in ("worker1", "worker2") for ln in cluster.procs[p].grep("undecodable")]
    assert len(failures) == 3  # first delivery + 2 redeliveries, then the DLQ


async def test_a_misbehaving_insurer_and_hostile_traffic_never_stop_a_process(
    cluster: Cluster, unique: str
) -> None:
    """Issue 10, every role its own process: aurora answers only protocol-breaking JSON
    (ready_at in milliseconds, a numeric correlation id, deep nesting...), the queue and the
    topic carry messages that are not jobs or events, and a client sends a bad token. Every
    calculation still completes with borealis's offer, and no process exits."""
    await cluster.control("aurora", garbage_rate=1.0)
    async with open_stomp_broker(STOMP_URL) as broker:
        await broker.send(
            [
                Outgoing(f"/queue/osago.test.{unique}", b'{"correlation_id": 123}'),
                Outgoing(f"/topic/osago.test.{unique}", b'{"seq": 1e999, "user_id": {}}'),
                Outgoing(f"/topic/osago.test.{unique}", b"[" * 4000 + b"]" * 4000),
            ]
        )
    bad = f"{cluster.url('notifier1', 'notifier')}?token=a.1.%C3%A9"
    assert await refusal(bad) == (401, "invalid_token")
    async with cluster.websocket("notifier1", "erin") as ws:
        calcs = {(await cluster.post(body("erin")))["calculation_id"] for _ in range(4)}
        frames: dict[str, list[dict[str, Any]]] = {calc: [] for calc in calcs}
        with trio.fail_after(DEADLINE + 5):
            while not all(f and f[-1]["type"] == "completed" for f in frames.values()):
                event = json.loads(await ws.get_message())
                frames[event["calculation_id"]].append(event)
    for got in frames.values():
        by_insurer = {e.get("insurer"): e for e in got if e["type"] != "completed"}
        assert by_insurer["borealis"]["type"] == "offer"
        assert (by_insurer["aurora"]["type"], by_insurer["aurora"]["outcome"]) == (
            "no_offer",
            "failed",
        )
        assert got[-1]["offers"] == 1
    for proc in cluster.procs.values():
        assert proc.process.returncode is None, f"{proc.name} exited"
        assert not proc.grep("Traceback"), "\n".join(proc.lines[-30:])


async def test_a_worker_killed_mid_poll_is_replaced(cluster: Cluster) -> None:
    for code in ("aurora", "borealis"):
        await cluster.control(code, delay=2.0)
    async with cluster.websocket("notifier1", "dave") as ws:
        accepted = await cluster.post(body("dave"))
        calc = accepted["calculation_id"]
        await trio.sleep(1.0)  # both workers are polling now
        victim = max(
            ("worker1", "worker2"), key=lambda w: len(cluster.procs[w].grep(f"{calc}: submitted"))
        )
        assert cluster.procs[victim].grep(f"{calc}: submitted")
        cluster.procs[victim].kill()
        frames = await receive_until_completed(ws, calc, within=DEADLINE + 5)
    kinds = sorted(str(e.get("insurer")) for _, e in frames if e["type"] == "offer")
    assert kinds == ["aurora", "borealis"]
    assert frames[-1][1]["type"] == "completed"
    assert frames[-1][0] - ts(accepted["deadline_at"]) < 1.0
    survivor = "worker2" if victim == "worker1" else "worker1"
    assert cluster.procs[survivor].grep(f"{calc}: resuming")


async def test_all_role_on_embedded_defaults(unique: str) -> None:
    """`osago --role all` with no database or broker settings serves the whole flow."""
    data_dir = f"/tmp/osago-e2e-{unique}"
    env = all_role_env(
        OSAGO_DATA_DIR=data_dir, OSAGO_DEADLINE_SECONDS="5", OSAGO_SIMULATOR_PROFILE="calm"
    )
    async with trio.open_nursery() as nursery:
        c = Cluster(env, nursery)
        try:
            proc = await c.start("api", "all")
            c.procs["notifier"] = proc
            async with c.websocket("notifier", "erin") as ws:
                accepted = await c.post(body("erin"))
                frames = await receive_until_completed(ws, accepted["calculation_id"], within=10)
        finally:
            with trio.CancelScope(shield=True):
                await c.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    offers = [e for _, e in frames if e["type"] == "offer"]
    assert len(offers) == 10
    assert frames[-1][1]["offers"] == 10
    assert proc.process.returncode == 0  # SIGTERM drained and exited cleanly


async def test_callbacks_and_polls_side_by_side_and_the_timeline_tells_each(
    pg_url: str, unique: str
) -> None:
    """Issues 9 and 12, every role its own process: aurora and borealis call back (signed,
    to the api), delta is polled; each offer reaches the user once; the timeline tells what
    each worker did (waited for the callback, or polled) and when each frame reached the tab."""
    token = "core-" + "t" * 32
    async with start_cluster(
        database_url=pg_url,
        broker_url=STOMP_URL,
        suffix=unique,
        deadline=DEADLINE,
        insurers="aurora,borealis,delta",
        delays="aurora=0.3,borealis=1.5,delta=1.0",
        workers=1,
        notifiers=1,
        extra_env={"OSAGO_API_TOKEN": token},
    ) as c:
        core = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with core as http, c.websocket("notifier1", "greta") as ws:
            posted = await http.post(
                f"{c.url('api', 'api')}/api/v1/calculations", json=body("greta")
            )
            calc = posted.json()["calculation_id"]
            frames = await receive_until_completed(ws, calc, within=DEADLINE + 5)
            url = f"{c.url('api', 'api')}/api/v1/calculations/{calc}/timeline"
            with trio.fail_after(15):
                while True:  # the worker checks for the callbacks after 10 s, then notes
                    entries = (await http.get(url)).json()["timeline"]
                    whats = [(e["what"].split(" (")[0], e["insurer"]) for e in entries]
                    if ("answered by callback", "borealis") in whats and (
                        "completed pushed to a tab",
                        None,
                    ) in whats:
                        break
                    await trio.sleep(0.5)
        called_back = c.procs["api"].grep(r"called back -> offer")
    offers = sorted(e["insurer"] for _, e in frames if e["type"] == "offer")
    assert offers == ["aurora", "borealis", "delta"]
    assert frames[-1][1]["offers"] == 3
    assert len(called_back) == 2
    for insurer in ("aurora", "borealis", "delta"):
        mine = [w for w, i in whats if i == insurer]
        assert "picked up" in mine
        assert any(w.startswith("submitted as ") for w in mine)
        assert "offer pushed to a tab" in mine
    for insurer in ("aurora", "borealis"):
        mine = [w for w, i in whats if i == insurer]
        assert "waiting for the callback" in mine
        assert "answered by callback" in mine
        assert not any(w.startswith("polled") for w in mine)  # never polled
    assert "polled: answered" in [w for w, i in whats if i == "delta"]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
