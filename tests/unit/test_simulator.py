"""The simulator through its HTTP protocol: repeatable, priced within the corridor, and every
behaviour selectable and observable."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from osago.clock import TrioWallClock
from osago.config import Settings
from osago.domain.request import tariff_input
from osago.domain.tariff import corridor
from osago.simulator import REFUSALS, Behaviour, Simulator, default_simulator, simulator_handler
from osago.simulator.callbacks import CallbackSender
from osago.web.http1 import Request, Response, json_response, serve_http
from tests.factories import new_calculation
from tests.fakes import HandlerClient

REQUEST = new_calculation().request


class Client:
    def __init__(self, sim: Simulator) -> None:
        self.http = HandlerClient(simulator_handler(sim))

    async def submit(self, code: str, correlation_id: str, req: Any = REQUEST) -> Any:
        r = await self.http.post(
            f"/{code}/calculations",
            json={"correlation_id": correlation_id, "request": req},
            headers={"Idempotency-Key": correlation_id},
        )
        return r.status_code, await r.get_json()

    async def poll(self, code: str, calc_id: str) -> tuple[int, Any, Any]:
        r = await self.http.get(f"/{code}/calculations/{calc_id}")
        return r.status_code, await r.get_json(silent=True), r

    async def answer(self, code: str, correlation_id: str, req: Any = REQUEST) -> Any:
        """Submit and poll until a final answer; {"status": "hang"} after two minutes."""
        created: Any = None
        for _ in range(480):  # two minutes of 0.25 s ticks
            if created is None or created[0] >= 500:
                created = await self.submit(code, correlation_id, req)
            if created[0] < 500:
                status, body, _ = await self.poll(code, created[1]["id"])
                if status == 200 and body is not None and body["status"] != "pending":
                    return body
            await trio.sleep(0.25)
        return {"status": "hang"}


def sim_with(**behaviour: Any) -> Simulator:
    return Simulator(TrioWallClock(), {"x": Behaviour("X", **behaviour)}, seed=7)


async def test_same_seed_same_answers_in_any_order(autojump_clock: MockClock) -> None:
    settings = Settings(simulator_seed=42)
    keys = [str(uuid.uuid4()) for _ in range(12)]
    results = []
    for order in (keys, list(reversed(keys))):
        client = Client(default_simulator(settings, TrioWallClock()))
        got = {}
        for key in order:
            body = await client.answer("cedar", key)
            got[key] = (body["status"], body.get("premium"), body.get("pool"), body.get("message"))
        results.append(got)
    assert results[0] == results[1]


async def test_delays_are_log_normal_and_repeatable(autojump_clock: MockClock) -> None:
    sim = sim_with(median_delay=5.0, delay_sigma=0.8)
    delays = sorted(
        sim.quote("x", str(i), REQUEST).ready_at - TrioWallClock().now() for i in range(400)
    )
    median = delays[len(delays) // 2]
    assert 4.0 < median < 6.0
    assert delays[-1] > 5.0 * 3  # a long tail
    again = sim_with(median_delay=5.0, delay_sigma=0.8)
    assert again.quote("x", "17", REQUEST).ready_at == sim.quote("x", "17", REQUEST).ready_at


async def test_every_premium_lies_in_the_corridor(autojump_clock: MockClock) -> None:
    client = Client(default_simulator(Settings(simulator_profile="calm"), TrioWallClock()))
    rng = random.Random(3)
    for _ in range(20):
        req = {
            **REQUEST,
            "vehicle": {**REQUEST["vehicle"], "engine_power_hp": rng.choice([45, 90, 110, 200])},
            "policy": {**REQUEST["policy"], "period_months": rng.randint(3, 12)},
        }
        low, high = corridor(tariff_input(req))
        for code in ("aurora", "fjord", "juniper"):
            body = await client.answer(code, str(uuid.uuid4()), req)
            assert low <= body["premium"] <= high
            assert body["breakdown"]["factor"] == pytest.approx(
                body["premium"] / body["breakdown"]["base_rate"], rel=1e-4
            )


async def test_refusal(autojump_clock: MockClock) -> None:
    body = await Client(sim_with(refusal_rate=1.0)).answer("x", "k")
    assert body["status"] == "refused"
    assert body["message"] in REFUSALS


async def test_pool_offer(autojump_clock: MockClock) -> None:
    body = await Client(sim_with(pool_rate=1.0)).answer("x", "k")
    assert body["pool"] is True
    assert "mandatory" in body["message"]
    assert body["premium"] == corridor(tariff_input(REQUEST))[1]


async def test_transient_503_with_retry_after(autojump_clock: MockClock) -> None:
    client = Client(sim_with(error_rate=1.0))
    status, _ = await client.submit("x", "k")
    assert status == 503


async def test_hang_never_answers(autojump_clock: MockClock) -> None:
    client = Client(sim_with(hang_rate=1.0, median_delay=0.1))
    _, created = await client.submit("x", "k")
    await trio.sleep(3600)
    status, body, _ = await client.poll("x", created["id"])
    assert (status, body["status"]) == (200, "pending")


async def test_stalled_poll(autojump_clock: MockClock) -> None:
    client = Client(sim_with(stall_rate=1.0, stall_seconds=30.0))
    _, created = await client.submit("x", "k")
    start = trio.current_time()
    await client.poll("x", created["id"])
    assert trio.current_time() - start == pytest.approx(30.0)


async def test_malformed_body(autojump_clock: MockClock) -> None:
    client = Client(sim_with(malformed_rate=1.0))
    _, created = await client.submit("x", "k")
    status, body, response = await client.poll("x", created["id"])
    assert status == 200
    assert body is None
    assert b"<html>" in await response.get_data()


async def test_outage_window_then_back(autojump_clock: MockClock) -> None:
    sim = sim_with(median_delay=0.0)
    client = Client(sim)
    r = await client.http.put("/_control/x", json={"down_for": 10})
    assert r.status_code == 200
    status, _ = await client.submit("x", "k")
    assert status == 503
    await trio.sleep(10)
    status, _ = await client.submit("x", "k")
    assert status == 201


async def test_control_rejects_unknown_fields(autojump_clock: MockClock) -> None:
    client = Client(sim_with())
    r = await client.http.put("/_control/x", json={"colour": "red"})
    assert r.status_code == 400
    r = await client.http.put("/_control/x", json={"refusal_rate": 1})
    assert (await r.get_json())["refusal_rate"] == 1.0


async def test_a_retried_submit_draws_anew(autojump_clock: MockClock) -> None:
    client = Client(sim_with(error_rate=0.5))
    statuses = [(await client.submit("x", "same-key"))[0] for _ in range(12)]
    assert 503 in statuses
    assert 201 in statuses  # a retry of the same submit got through


async def test_a_long_poll_is_held_until_the_answer_is_ready(autojump_clock: MockClock) -> None:
    client = Client(sim_with(median_delay=3.0, long_poll_max=20.0))
    _, created = await client.submit("x", str(uuid.uuid4()))
    start = trio.current_time()
    r = await client.http.get(f"/x/calculations/{created['id']}?wait=10")
    assert (await r.get_json())["status"] == "ready"
    assert trio.current_time() - start == pytest.approx(3.0)  # held exactly until ready
    other = Client(sim_with(median_delay=30.0, long_poll_max=20.0))
    _, created = await other.submit("x", str(uuid.uuid4()))
    start = trio.current_time()
    r = await other.http.get(f"/x/calculations/{created['id']}?wait=5")
    assert (await r.get_json())["status"] == "pending"
    assert trio.current_time() - start == pytest.approx(5.0)  # at most the wait asked
    plain = Client(sim_with(median_delay=3.0))  # no long polls: answers at once
    _, created = await plain.submit("x", str(uuid.uuid4()))
    start = trio.current_time()
    r = await plain.http.get(f"/x/calculations/{created['id']}?wait=10")
    assert ((await r.get_json())["status"], trio.current_time() - start) == ("pending", 0.0)


async def test_faulted_names_the_exchanges_whose_polls_met_a_fault(
    autojump_clock: MockClock,
) -> None:
    sim = Simulator(
        TrioWallClock(),
        {"bad": Behaviour("Bad", malformed_rate=1.0), "good": Behaviour("Good")},
        seed=7,
    )
    client = Client(sim)
    for code in ("bad", "good"):
        _, created = await client.submit(code, f"{code}-1")
        await client.poll(code, created["id"])
    await client.submit("bad", "bad-unpolled")  # a submit is not a poll
    r = await client.http.get("/_control/faulted")
    assert await r.get_json() == {"bad": ["bad-1"], "good": []}


async def test_a_lost_callback_is_named_as_faulted(autojump_clock: MockClock) -> None:
    sim = Simulator(
        TrioWallClock(), {"x": Behaviour("X", median_delay=1.0, callback_loss_rate=1.0)}, seed=7
    )
    sender = CallbackSender(sim, "master-secret")
    sim.schedule_callback = sender.schedule
    client = Client(sim)
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        r = await client.http.post(
            "/x/calculations",
            json={"correlation_id": "k", "request": REQUEST, "callback_url": "http://127.0.0.1:9/"},
        )
        assert r.status_code == 201
        await trio.sleep(5.0)
        nursery.cancel_scope.cancel()
    assert sender.sent == 0
    assert await (await client.http.get("/_control/faulted")).get_json() == {"x": ["k"]}


async def test_a_delivered_callback_is_listed_with_when_its_answer_was_ready_and_left() -> None:
    """Real sockets, so the real clock: the answer is ready 0.05 s after the submit."""
    sim = Simulator(TrioWallClock(), {"x": Behaviour("X", median_delay=0.05)}, seed=7)
    sender = CallbackSender(sim, "master-secret")
    sim.schedule_callback = sender.schedule
    client = Client(sim)
    arrived: list[float] = []
    got = trio.Event()

    async def api(request: Request) -> Response:
        arrived.append(sim.clock.now())
        got.set()
        return json_response({"status": "accepted"})

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(serve_http, api, listeners)
        await nursery.start(sender.run)
        submitted = sim.clock.now()
        r = await client.http.post(
            "/x/calculations",
            json={
                "correlation_id": "k",
                "request": REQUEST,
                "callback_url": f"http://127.0.0.1:{port}/cb",
            },
        )
        assert r.status_code == 201
        with trio.fail_after(5):
            await got.wait()
        nursery.cancel_scope.cancel()
    listed = await (await client.http.get("/_control/callbacks")).get_json()
    assert list(listed) == ["x"]
    ready_at, sent_at = listed["x"]["k"]
    assert submitted < ready_at <= sent_at <= arrived[0]
