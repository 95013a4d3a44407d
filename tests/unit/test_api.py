"""The REST api on the memory twins: status codes, per-field errors, the outbox in one step."""

from __future__ import annotations

import copy
import dataclasses
import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
import trio
import trio.testing

from osago.admission import Backlog
from osago.broker import Broker, Outgoing, QueueStats, open_memory_broker
from osago.clock import SystemClock
from osago.config import Settings
from osago.insurers import insurers_for
from osago.models import Job
from osago.outbox import publisher, sent_marks
from osago.roles._deps import ApiDeps
from osago.roles.api import create_app, watch_publishing
from osago.storage import MemoryStore
from osago.tokens import mint_token
from tests.factories import MINIMAL_BODY, api_app, api_deps

SETTINGS = Settings(insurer_codes=("aurora", "borealis", "cedar"), deadline_seconds=60.0)


def as_user(user_id: str) -> dict[str, str]:
    """The header a user's browser sends: the token that opens its WebSocket."""
    token = mint_token(SETTINGS.ws_secret, user_id, expires_at=time.time() + 60)
    return {"Authorization": f"Bearer {token}"}


async def call(
    method: str,
    path: str,
    *,
    store: MemoryStore | None = None,
    settings: Settings = SETTINGS,
    **kw: Any,
) -> tuple[int, Any, MemoryStore]:
    store = store or MemoryStore()
    async with api_app(settings, store) as app:
        response = await app.test_client().open(path, method=method, **kw)
        return response.status_code, await response.get_json(), store


async def test_post_stores_request_and_one_job_per_insurer() -> None:
    status, body, store = await call("POST", "/api/v1/calculations", json=MINIMAL_BODY)
    assert status == 202
    assert body["status"] == "pending"
    assert body["insurers"] == ["aurora", "borealis", "cedar"]
    calc_id = uuid.UUID(body["calculation_id"])
    jobs = [Job.decode(m.body) for m in await store.claim_outbox(now=2e9, lease=1, limit=10)]
    assert sorted(j.insurer for j in jobs) == ["aurora", "borealis", "cedar"]
    assert {j.calculation_id for j in jobs} == {calc_id}
    status, shown, _ = await call(
        "GET", f"/api/v1/calculations/{calc_id}", store=store, headers=as_user("user-42")
    )
    assert status == 200
    assert shown["status"] == "pending"
    assert shown["deadline_at"] == body["deadline_at"]
    assert shown["offers"] == []
    assert shown["stub"] is None


async def test_new_calculations_are_refused_while_jobs_wait_for_workers() -> None:
    """Load shedding: past the limit a quick 503 with Retry-After, nothing stored; bad input
    still gets its 422; under the limit (or with none) it is accepted as usual."""
    store = MemoryStore()
    async with open_memory_broker() as broker:
        deps = api_deps(SETTINGS, broker, store=store, backlog=Backlog(limit=1000, waiting=1001))
        client = create_app(deps).test_client()
        r = await client.post("/api/v1/calculations", json=MINIMAL_BODY)
        assert r.status_code == 503
        assert (await r.get_json())["error"] == "overloaded"
        assert r.headers["Retry-After"] == "5"
        assert await store.claim_outbox(now=2e9, lease=1, limit=10) == []
        bad = await client.post("/api/v1/calculations", json={**MINIMAL_BODY, "user_id": None})
        assert bad.status_code == 422
        deps.backlog.note(QueueStats(messages=1500, consumers=2, in_flight=1000))  # 500 wait
        r = await client.post("/api/v1/calculations", json=MINIMAL_BODY)
        assert r.status_code == 202
        deps.backlog.note(None)  # statistics unreadable: nothing is refused on a guess
        deps.backlog.waiting, deps.backlog.limit = 10**6, 0  # no limit
        r = await client.post("/api/v1/calculations", json=MINIMAL_BODY)
        assert r.status_code == 202
    assert (
        deps.metrics.registry.get_sample_value(
            "osago_calculations_overloaded_total", {"cause": "queue"}
        )
        == 1
    )


class _StalledBroker:
    """Takes no message until ``release`` is set: a broker (or an api) too busy to keep up."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.sent: list[Outgoing] = []

    async def send(self, messages: Sequence[Outgoing]) -> None:
        await self.release.wait()
        self.sent.extend(messages)


async def test_new_calculations_are_refused_while_accepted_jobs_wait_to_be_published(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A surge past the CPU may never queue in the broker (the workers' prefetch takes it):
    it shows as this api's own publishing falling behind. Past ``max_unpublished`` seconds
    of wait for the oldest job accepted, new calculations get the quick 503; once the broker
    has taken the jobs, they are accepted again."""
    store, broker = MemoryStore(), _StalledBroker()
    settings = dataclasses.replace(SETTINGS, max_unpublished_wait=1.0)
    deps = ApiDeps(
        settings,
        trio.Event(),
        SystemClock(),
        store=store,
        broker=cast(Broker, broker),
        insurers=insurers_for(settings),
        backlog=Backlog(max_unpublished=settings.max_unpublished_wait),
    )
    marks = sent_marks(store, deps.clock, linger=0.0, cleanup_timeout=1.0)
    jobs = publisher("jobs", deps.broker, store, deps.clock, marks, cleanup_timeout=1.0)
    watch_publishing(deps, jobs)
    client = create_app(deps, jobs).test_client()
    async with trio.open_nursery() as nursery:
        await nursery.start(marks.run)
        await nursery.start(jobs.run)
        first = await client.post("/api/v1/calculations", json=MINIMAL_BODY)
        assert first.status_code == 202
        await trio.sleep(0.9)  # unpublished, but not for long: still taken
        body = {**MINIMAL_BODY, "user_id": "user-43"}
        assert (await client.post("/api/v1/calculations", json=body)).status_code == 202
        await trio.sleep(0.2)  # the first calculation's jobs have waited 1.1 s
        r = await client.post("/api/v1/calculations", json={**body, "user_id": "user-44"})
        assert r.status_code == 503
        assert (await r.get_json())["error"] == "overloaded"
        assert r.headers["Retry-After"] == "5"
        assert jobs.oldest_wait() == pytest.approx(1.1)
        gauge = "osago_jobs_unpublished_oldest_seconds"
        assert deps.metrics.registry.get_sample_value(gauge) == pytest.approx(1.1)
        broker.release.set()  # the broker takes them
        await trio.sleep(0.1)
        # Two calculations, a message each, with its three insurers' jobs.
        assert [len(Job.decode_all(m.body)) for m in broker.sent] == [3, 3]
        assert jobs.oldest_wait() == 0.0
        assert deps.metrics.registry.get_sample_value(gauge) == 0.0
        r = await client.post("/api/v1/calculations", json={**body, "user_id": "user-44"})
        assert r.status_code == 202
        nursery.cancel_scope.cancel()
    assert (
        deps.metrics.registry.get_sample_value(
            "osago_calculations_overloaded_total", {"cause": "publishing"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("user_id"), "user_id"),
        (lambda b: b["policy"].update(period_months=13), "policy.period_months"),
        (lambda b: b["policy"].update(start_date="01.12.2026"), "policy.start_date"),
        (lambda b: b["vehicle"].update(category="Z"), "vehicle.category"),
        (lambda b: b["vehicle"].update(engine_power_hp="many"), "vehicle.engine_power_hp"),
        (lambda b: b["owner"].update(region_kladr="77"), "owner.region_kladr"),
        (lambda b: b.update(drivers=[]), "drivers"),
        (lambda b: b["drivers"][0].update(birth_date="2010-01-01"), "drivers.0.birth_date"),
        (
            lambda b: b["drivers"][0].update(experience_start_date="1990-01-01"),
            "drivers.0.experience_start_date",
        ),
    ],
)
async def test_bad_fields_are_named_in_a_422(mutate: Any, field: str) -> None:
    body = copy.deepcopy(MINIMAL_BODY)
    mutate(body)
    status, answer, store = await call("POST", "/api/v1/calculations", json=body)
    assert status == 422
    assert field in [e["field"] for e in answer["errors"]]
    assert store.calcs == {}


async def test_several_errors_are_reported_together() -> None:
    status, answer, _ = await call(
        "POST", "/api/v1/calculations", json={"user_id": "", "policy": {}, "drivers": "x"}
    )
    assert status == 422
    fields = {e["field"] for e in answer["errors"]}
    assert {
        "user_id",
        "policy.start_date",
        "policy.period_months",
        "vehicle",
        "owner",
        "drivers",
    } <= fields


async def test_non_json_is_a_400() -> None:
    status, answer, _ = await call(
        "POST", "/api/v1/calculations", data=b"{oops", headers={"content-type": "application/json"}
    )
    assert status == 400
    assert answer["error"] == "bad_request"


async def test_unknown_or_malformed_id_is_a_404() -> None:
    me = as_user("user-42")
    assert (await call("GET", f"/api/v1/calculations/{uuid.uuid4()}", headers=me))[0] == 404
    assert (await call("GET", "/api/v1/calculations/not-a-uuid", headers=me))[0] == 404


async def test_store_failure_is_a_503_and_stores_nothing() -> None:
    store = MemoryStore(fail_next="create_calculation")
    status, answer, _ = await call("POST", "/api/v1/calculations", json=MINIMAL_BODY, store=store)
    assert status == 503
    assert answer["error"] == "unavailable"
    assert store.calcs == {}
    assert store.outbox == {}


async def test_bearer_token_is_required_when_configured() -> None:
    secured = Settings(insurer_codes=("aurora",), api_token="s3cret")
    assert (await call("POST", "/api/v1/calculations", json=MINIMAL_BODY, settings=secured))[
        0
    ] == 401
    ok = await call(
        "POST",
        "/api/v1/calculations",
        json=MINIMAL_BODY,
        settings=secured,
        headers={"Authorization": "Bearer s3cret"},
    )
    assert ok[0] == 202
    assert (await call("GET", "/healthz", settings=secured))[0] == 200


async def test_accepted_carries_what_a_client_needs_to_resume() -> None:
    status, body, _ = await call("POST", "/api/v1/calculations", json=MINIMAL_BODY)
    assert status == 202
    assert {"calculation_id", "created_at", "deadline_at", "status", "insurers"} <= set(body)


async def test_accepted_says_where_the_calculation_is_and_other_methods_are_405() -> None:
    async with api_app(SETTINGS, MemoryStore()) as app:
        client = app.test_client()
        accepted = await client.post("/api/v1/calculations", json=MINIMAL_BODY)
        body = await accepted.get_json()
        assert accepted.headers["Location"] == f"/api/v1/calculations/{body['calculation_id']}"
        for method in ("GET", "PUT", "DELETE"):
            refused = await client.open("/api/v1/calculations", method=method)
            assert refused.status_code == 405
            assert refused.headers["Allow"] == "POST"
            assert (await refused.get_json())["error"] == "method_not_allowed"


async def test_an_oversized_body_is_a_413() -> None:
    status, answer, store = await call(
        "POST", "/api/v1/calculations", json={**MINIMAL_BODY, "padding": "x" * 100_000}
    )
    assert status == 413
    assert answer["error"] == "too_large"
    assert store.calcs == {}


async def test_the_api_publishes_its_jobs_itself_and_marks_them_sent() -> None:
    store = MemoryStore()
    clock = SystemClock()
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        marks = sent_marks(store, clock, linger=0.01, cleanup_timeout=1.0)
        jobs = publisher("jobs", broker, store, clock, marks, cleanup_timeout=1.0)
        await nursery.start(marks.run)
        await nursery.start(jobs.run)
        deps = ApiDeps(
            SETTINGS,
            trio.Event(),
            clock,
            store=store,
            broker=broker,
            insurers=insurers_for(SETTINGS),
        )
        async with broker.subscribe(SETTINGS.requests_queue, prefetch=10) as sub:
            r = (
                await create_app(deps, jobs)
                .test_client()
                .post("/api/v1/calculations", json=MINIMAL_BODY)
            )
            assert r.status_code == 202
            with trio.fail_after(5):
                message = await sub.receive()
            got = Job.decode_all(message.body)  # a calculation's jobs: one message
        assert sorted(j.insurer for j in got) == ["aurora", "borealis", "cedar"]
        assert {j.calculation_id for j in got} == {
            uuid.UUID((await r.get_json())["calculation_id"])
        }
        assert message.headers["JMSXGroupID"] == str(got[0].calculation_id)
        await trio.sleep(0.1)
        # Leased to the api, published, marked: no relay ever takes them, even after the lease.
        assert await store.claim_outbox(now=2e9, lease=1, limit=10) == []
        nursery.cancel_scope.cancel()


async def test_a_body_that_is_not_utf8_json_is_a_400_not_a_500() -> None:
    for raw in (b"\xff\x1e\x1c", b"[" * 5000, b"{not json"):
        status, body, _ = await call(
            "POST", "/api/v1/calculations", data=raw, headers={"content-type": "application/json"}
        )
        assert (status, body["error"]) == (400, "bad_request")


async def test_control_characters_in_a_field_are_a_422_for_that_field() -> None:
    body = copy.deepcopy(MINIMAL_BODY)
    body["user_id"] = "user\x00-42"
    status, answer, store = await call("POST", "/api/v1/calculations", json=body)
    assert status == 422  # was a 503 "retry later": PostgreSQL refuses NUL in text
    assert {"field": "user_id", "message": "must not contain control characters"} in answer[
        "errors"
    ]
    assert store.calcs == {}


async def test_the_api_token_is_checked_for_any_header_value() -> None:
    guarded = dataclasses.replace(SETTINGS, api_token="t" * 32)
    for header in ("Bearer wrong", "Bearer " + "t" * 31 + "\u00e9", ""):
        status, _, _ = await call(
            "GET",
            f"/api/v1/calculations/{uuid.uuid4()}",
            settings=guarded,
            headers={"Authorization": header},
        )
        assert status == 401
    status, _, _ = await call(
        "GET",
        f"/api/v1/calculations/{uuid.uuid4()}",
        settings=guarded,
        headers={"Authorization": "Bearer " + "t" * 32},
    )
    assert status == 404


async def test_a_calculation_is_read_by_the_core_app_or_its_own_user_only() -> None:
    guarded = dataclasses.replace(SETTINGS, api_token="c" * 32)
    core = {"Authorization": "Bearer " + "c" * 32}
    status, body, store = await call(
        "POST", "/api/v1/calculations", json=MINIMAL_BODY, settings=guarded, headers=core
    )
    assert status == 202
    path = f"/api/v1/calculations/{body['calculation_id']}"

    async def read(headers: dict[str, str], settings: Settings = guarded) -> int:
        return (await call("GET", path, store=store, settings=settings, headers=headers))[0]

    assert await read(core) == 200
    assert await read(as_user("user-42")) == 200  # the user's own
    assert await read(as_user("user-7")) == 404  # another's: not even its existence
    assert await read({}) == 401
    token = as_user("user-42")["Authorization"].removeprefix("Bearer ")
    assert (await call("GET", f"{path}?token={token}", store=store, settings=guarded))[0] == 200
    assert await read({}, SETTINGS) == 401  # no api token configured: still not open
