"""Issue 9: callback mode. An insurer POSTs its answer, signed; it is matched by correlation
id, stored once and published; anything else gets a clear 4xx and changes nothing. The worker
waits for it with a sparse safety net instead of polling."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from osago.config import Settings
from osago.errors import CallbackRefused
from osago.insurers.callbacks import SIGNATURE_HEADER, ReplayGuard, insurer_secret, sign, verify
from osago.models import Outcome, OutcomeKind
from osago.roles import worker
from osago.storage import KnownExchange, MemoryStore
from tests.factories import MINIMAL_BODY, api_app
from tests.unit import test_flow
from tests.unit.test_flow import EPOCH, EVERY_QUARTER, Harness, harness, kinds

MASTER = "callback-master-secret-of-32-bytes-or-more"
SETTINGS = Settings(
    insurer_codes=("aurora", "fjord"),  # aurora calls back (the insurers file), fjord is polled
    api_token="core-" + "t" * 32,
    callback_secret=MASTER,
)
CORE = {"Authorization": f"Bearer {SETTINGS.api_token}"}
# A worker's safety checks are batched: each answers this long after its time.
LINGER = Settings().write_linger


# --- signatures --------------------------------------------------------------------------


def test_a_signature_is_verified_and_every_kind_of_bad_one_refused() -> None:
    secret, body, now = insurer_secret(MASTER, "aurora"), b'{"a":1}', 1_800_000_000.0
    good = sign(secret, body, now)
    assert verify(secret, good, body, now=now + 10, tolerance=300) == good.split("v1=")[1]
    cases = {
        "missing_signature": (secret, None, body, now),
        "bad_signature": (secret, good, b'{"a":2}', now),  # another body
        "stale_signature": (secret, good, body, now + 301),
    }
    for reason, (key, header, data, at) in cases.items():
        with pytest.raises(CallbackRefused) as caught:
            verify(key, header, data, now=at, tolerance=300)
        assert (caught.value.status, caught.value.reason) == (401, reason)
    for header in ("t=abc,v1=00", "v1=00", "nonsense"):
        with pytest.raises(CallbackRefused, match="expected"):
            verify(secret, header, body, now=now, tolerance=300)
    # One insurer's secret signs nothing for another.
    with pytest.raises(CallbackRefused, match="does not match"):
        verify(insurer_secret(MASTER, "fjord"), good, body, now=now, tolerance=300)


def test_a_replay_is_caught_within_its_window_and_forgotten_after() -> None:
    guard = ReplayGuard(window=600)
    assert guard.first_time("mac", 1000.0)
    assert not guard.first_time("mac", 1500.0)
    assert guard.first_time("mac", 1601.0)  # past the window: long stale by its timestamp


# --- the api's endpoint ------------------------------------------------------------------


def _signed(code: str, answer: Any, *, now: float | None = None) -> dict[str, Any]:
    body = json.dumps(answer).encode()
    at = time.time() if now is None else now
    return {
        "data": body,
        "headers": {
            SIGNATURE_HEADER: sign(insurer_secret(MASTER, code), body, at),
            "content-type": "application/json",
        },
    }


async def test_a_callback_is_stored_once_and_every_bad_one_changes_nothing() -> None:
    store = MemoryStore()
    async with api_app(SETTINGS, store) as app:
        client = app.test_client()
        posted = await client.post("/api/v1/calculations", json=MINIMAL_BODY, headers=CORE)
        calc = uuid.UUID((await posted.get_json())["calculation_id"])
        aurora = next(x for x in store.exchanges.values() if x.insurer == "aurora")
        cid = str(aurora.correlation_id)
        ready = {"status": "ready", "correlation_id": cid, "premium": 7777.0, "ready_at": 1.8e9}
        url = "/api/v1/callbacks/aurora"

        async def refused(how: dict[str, Any], path: str = url) -> tuple[int, str]:
            r = await client.post(path, **how)
            return r.status_code, (await r.get_json())["error"]

        assert await refused(_signed("fjord", ready), "/api/v1/callbacks/fjord") == (
            404,
            "unknown_insurer",  # fjord is polled: it has no business calling back
        )
        assert await refused(_signed("fjord", ready)) == (401, "bad_signature")
        assert await refused(_signed("aurora", ready, now=time.time() - 3600)) == (
            401,
            "stale_signature",
        )
        unsigned = {"data": json.dumps(ready).encode()}
        assert await refused(unsigned) == (401, "missing_signature")
        assert await refused({"data": b"{", "headers": _signed("aurora", 1)["headers"]}) == (
            401,
            "bad_signature",  # signed another body
        )
        broken = _signed("aurora", {"status": "ready", "correlation_id": 5})
        assert await refused(broken) == (422, "unreadable_answer")
        pending = _signed("aurora", {"status": "pending", "correlation_id": cid})
        assert await refused(pending) == (422, "not_final")
        stranger = _signed("aurora", {**ready, "correlation_id": str(uuid.uuid4())})
        assert await refused(stranger) == (404, "unknown_exchange")
        assert aurora.outcome is None  # nothing so far changed anything

        good = _signed("aurora", ready)
        r = await client.post(url, **good)  # no api token: the signature is the credential
        assert r.status_code == 200
        assert aurora.outcome is not None
        assert (aurora.outcome.kind, aurora.outcome.premium) == (OutcomeKind.OFFER, 7777.0)
        events = [json.loads(m.body) for m in store.outbox.values() if m.destination != "x"]
        assert [e["type"] for e in events if "type" in e] == ["offer"]

        assert await refused(good) == (409, "replayed")
        again = _signed("aurora", {**ready, "premium": 1.0}, now=time.time() + 1)
        assert await refused(again) == (409, "already_settled")
        assert aurora.outcome.premium == 7777.0
        view = await store.get_calculation(calc)
        assert view is not None
        assert [x.status for x in view.exchanges if x.insurer == "aurora"] == ["offer"]


class Lagging(MemoryStore):
    """Knows each exchange as unsettled, as the api's PostgreSQL store may while a worker
    settles it (``knows``), or knows nothing, as another api instance's store (then the
    handler reads the exchange)."""

    def __init__(self, *, knows: bool) -> None:
        super().__init__()
        self.knows = knows
        self.loads = 0

    def known_exchange(self, correlation_id: uuid.UUID) -> KnownExchange | None:
        known = super().known_exchange(correlation_id)
        return replace(known, settled=False) if known is not None and self.knows else None

    async def load_exchanges(self, correlation_ids: Any) -> Any:
        self.loads += 1
        return await super().load_exchanges(correlation_ids)


@pytest.mark.parametrize("knows", [True, False])
async def test_a_callback_for_an_exchange_settled_elsewhere_is_refused_whatever_the_api_knew(
    knows: bool,
) -> None:
    store = Lagging(knows=knows)
    async with api_app(SETTINGS, store) as app:
        client = app.test_client()
        await client.post("/api/v1/calculations", json=MINIMAL_BODY, headers=CORE)
        aurora, fjord = (
            next(x for x in store.exchanges.values() if x.insurer == code)
            for code in ("aurora", "fjord")
        )
        polled = Outcome(OutcomeKind.OFFER, received_at=EPOCH, premium=5000.0)
        await store.settle_exchange(aurora.correlation_id, polled, topic="t", now=EPOCH, lease=0)
        ready = {"status": "ready", "premium": 7777.0, "ready_at": 1.8e9}

        late = _signed("aurora", {**ready, "correlation_id": str(aurora.correlation_id)})
        r = await client.post("/api/v1/callbacks/aurora", **late)
        assert (r.status_code, (await r.get_json())["error"]) == (409, "already_settled")
        assert aurora.outcome is not None
        assert aurora.outcome.premium == 5000.0  # the first outcome stands
        # Another insurer's exchange is nobody's business, known or read.
        theirs = _signed("aurora", {**ready, "correlation_id": str(fjord.correlation_id)})
        r = await client.post("/api/v1/callbacks/aurora", **theirs)
        assert (r.status_code, (await r.get_json())["error"]) == (404, "unknown_exchange")
        assert fjord.outcome is None
        assert store.loads == (0 if knows else 2)


# --- the worker --------------------------------------------------------------------------


def _calling_back(h: Harness, safety: float = 10.0) -> None:
    """aurora in callback mode for this harness's worker."""
    original = h.worker_deps

    def deps(stop: trio.Event | None = None) -> Any:
        d = original(stop)
        return replace(
            d,
            insurers=tuple(
                replace(
                    c,
                    mode="callback",
                    callback_url="http://api/cb",
                    schedule=EVERY_QUARTER,
                    safety_poll_interval=safety,
                )
                if c.code == "aurora"
                else c
                for c in d.insurers
            ),
        )

    h.worker_deps = deps  # type: ignore[method-assign]


async def test_a_worker_waits_for_the_callback_and_polls_only_as_a_safety_net(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 1.0, "borealis": 2.0}, workers=0) as h:
        _calling_back(h)
        await h.nursery.start(worker.run, h.worker_deps())
        calc = await h.submit(late_window=30.0)
        aurora = next(x for x in calc.exchanges if x.insurer == "aurora")
        await trio.sleep(1.5)
        # The callback reaches the api, which settles it (as the endpoint above does).
        offer = Outcome(OutcomeKind.OFFER, received_at=h.clock.now(), premium=5000.0)
        await h.store.settle_exchange(
            aurora.correlation_id, offer, topic=SETTINGS.results_topic, now=h.clock.now(), lease=0
        )
        await trio.sleep(15.0)
        trail = await h.store.trail_of(calc.id)
    aurora_polls = [t for code, t in h.insurers.poll_times if code == "aurora"]
    assert aurora_polls == []  # never polled: the safety check found it settled
    steps = [what for _, what in trail.steps["aurora"]]
    assert steps[-2:] == ["waiting for the callback", "answered by callback"]
    # One check, at the safety interval (it answers after the checks' batching linger).
    assert trail.steps["aurora"][-1][0] == EPOCH + 10.0 + LINGER


async def _callback_lost(aurora: float, late_window: float, seconds: float) -> tuple[Any, Any]:
    """One calculation whose aurora answers after ``aurora`` s and never calls back: its
    view after ``seconds``, and the harness (for aurora's poll times)."""
    async with harness({"aurora": aurora, "borealis": 2.0}, workers=0) as h:
        _calling_back(h)
        await h.nursery.start(worker.run, h.worker_deps())
        calc = await h.submit(late_window=late_window)
        await trio.sleep(seconds)
        view = await h.store.get_calculation(calc.id)
    assert view is not None
    assert {x.insurer: x.status for x in view.exchanges}["aurora"] == "offer"
    return view, h


def _aurora_polls(h: Harness) -> list[float]:
    return [round(t, 2) for code, t in h.insurers.poll_times if code == "aurora"]


async def test_a_lost_callback_is_found_by_the_safety_poll(autojump_clock: MockClock) -> None:
    _, h = await _callback_lost(1.0, late_window=30.0, seconds=20.0)
    assert _aurora_polls(h) == [10.0 + LINGER]


async def test_safety_polls_thin_out_and_a_failed_one_ends_nothing(
    autojump_clock: MockClock,
) -> None:
    """Thousands of exchanges waiting for slow callbacks must not be polled as if they had
    none: safety polls come 10, 20, 40 s apart (then every minute); one that fails (the
    insurer down) leaves the exchange waiting for its callback."""
    async with harness({"aurora": 45.0, "borealis": 2.0}, workers=0) as h:
        _calling_back(h)
        await h.nursery.start(worker.run, h.worker_deps())
        calc = await h.submit(late_window=120.0)
        await trio.sleep(1.0)  # submitted
        h.insurers.down.add("aurora")
        await trio.sleep(24.0)
        h.insurers.down.discard("aurora")
        await trio.sleep(100.0)  # the callback is lost: the safety polls find the answer
        view = await h.store.get_calculation(calc.id)
        trail = await h.store.trail_of(calc.id)
    assert view is not None
    assert {x.insurer: x.status for x in view.exchanges}["aurora"] == "offer"
    polled = sorted({int(t) for code, t in h.insurers.poll_times if code == "aurora"})
    assert polled == [10, 20, 40, 80]  # retries of the failing ones are within that second
    steps = [what for _, what in trail.steps["aurora"]]
    assert sum(w.startswith("safety poll failed") for w in steps) == 2
    assert steps[-1] == "safety poll: answered"


async def test_a_lost_callback_is_polled_for_at_the_first_check_not_near_the_deadline(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real 60 s deadline: the answer is ready after 1 s, its callback lost. The
    first check (10 s) finds nothing stored and polls: the user has the offer then, not
    just before the deadline."""
    monkeypatch.setattr(test_flow, "SETTINGS", replace(test_flow.SETTINGS, deadline_seconds=60))
    _, h = await _callback_lost(1.0, late_window=0.0, seconds=61.0)
    assert _aurora_polls(h) == [10.0 + LINGER]


async def test_safety_polls_of_a_slow_answer_end_with_one_just_before_the_deadline(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is ready after 50 s, its callback lost: polls at the checks 10, 20 and
    40 s (gaps doubling), then not at 80 but just before the deadline (60 s, less a poll's
    timeout and a second), so the offer is still in time."""
    monkeypatch.setattr(test_flow, "SETTINGS", replace(test_flow.SETTINGS, deadline_seconds=60))
    view, h = await _callback_lost(50.0, late_window=0.0, seconds=61.0)
    last_chance = 60.0 - view_poll_timeout(h) - 1.0
    assert _aurora_polls(h) == [10.0 + LINGER, 20.0 + LINGER, 40.0 + LINGER, last_chance + LINGER]
    assert view.completed_at is not None
    assert view.completed_at <= EPOCH + 60.0


def view_poll_timeout(h: Harness) -> float:
    (aurora,) = [c for c in h.worker_deps().insurers if c.code == "aurora"]
    return aurora.poll_timeout


async def test_an_answer_that_lost_the_race_to_settle_stands_aside(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aurora's exchange is settled elsewhere (its callback, another copy of its job) just
    before the worker's own settle: the first outcome stands, the user sees it once, and the
    worker does not count an outcome of its own."""
    async with harness({"aurora": 0.5, "borealis": 1.0}, workers=0) as h:
        store = h.store
        settle = store.settle_exchanges
        first = Outcome(OutcomeKind.OFFER, received_at=EPOCH, premium=1234.0)

        async def raced(answers: Any, **kw: Any) -> Any:
            for cid, _ in answers:
                if (
                    store.exchanges[cid].insurer == "aurora"
                    and store.exchanges[cid].outcome is None
                ):
                    await settle([(cid, first)], **{**kw, "lease": 0.0})  # the relay's
            return await settle(answers, **kw)

        monkeypatch.setattr(store, "settle_exchanges", raced)
        deps = h.worker_deps()
        await h.nursery.start(worker.run, deps)
        calc = await h.submit()
        await trio.sleep(10)
    view = await h.store.get_calculation(calc.id)
    assert view is not None
    aurora = next(x for x in view.exchanges if x.insurer == "aurora")
    assert aurora.outcome is not None
    assert aurora.outcome.premium == 1234.0
    assert [k for _, k, who in kinds(h) if who == "aurora"] == ["offer"]
    counted = deps.metrics.registry.get_sample_value
    assert (
        counted("osago_exchange_outcomes_total", {"insurer": "aurora", "outcome": "offer"}) is None
    )
    assert (
        counted("osago_exchange_outcomes_total", {"insurer": "borealis", "outcome": "offer"}) == 1
    )
