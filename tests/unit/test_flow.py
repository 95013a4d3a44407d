"""The whole flow on the memory twins and MockClock: exact virtual times, no real sleeps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from osago.broker import Outgoing, open_memory_broker
from osago.broker.memory import MemoryBroker
from osago.clock import TrioWallClock
from osago.config import Settings
from osago.events import unpack
from osago.insurers import insurers_for
from osago.insurers.schedule import SchedulePolicy
from osago.loops import relay
from osago.models import Job, Outcome, OutcomeKind
from osago.roles import worker
from osago.roles._deps import ApiDeps, WorkerDeps
from osago.storage import MemoryStore
from tests.factories import new_calculation
from tests.fakes import FakeInsurers

# These tests pin exact times: a job's read is not held back for company (load_linger has
# its own test, in test_batching).
SETTINGS = Settings(insurer_codes=("aurora", "borealis"), deadline_seconds=5.0, load_linger=0.0)
EPOCH = 1_790_000_000.0
# Polled every 0.25 s, so these tests pin exact times; the learned schedule has its own tests.
EVERY_QUARTER = SchedulePolicy(min_interval=0.25, max_interval=0.25)


@dataclass
class Harness:
    store: MemoryStore
    broker: MemoryBroker
    clock: TrioWallClock
    insurers: FakeInsurers
    events: list[tuple[float, dict[str, Any]]]
    nursery: trio.Nursery

    def worker_deps(self, stop: trio.Event | None = None) -> WorkerDeps:
        return WorkerDeps(
            SETTINGS,
            stop or trio.Event(),
            self.clock,
            store=self.store,
            broker=self.broker,
            insurers=tuple(replace(c, schedule=EVERY_QUARTER) for c in insurers_for(SETTINGS)),
            client=self.insurers,
        )

    async def submit(self, late_window: float = 0.0, **kw: Any) -> Any:
        kw.setdefault("insurers", SETTINGS.insurer_codes)
        calc = new_calculation(
            created_at=self.clock.now(), deadline=SETTINGS.deadline_seconds, **kw
        )
        calc = replace(calc, closes_at=calc.deadline_at + late_window)
        await self.store.create_calculation(calc, queue=SETTINGS.requests_queue)
        return calc


@asynccontextmanager
async def harness(
    delays: dict[str, float], *, workers: int = 1, api_relay: bool = True
) -> AsyncIterator[Harness]:
    clock = TrioWallClock(EPOCH)
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        h = Harness(MemoryStore(), broker, clock, FakeInsurers(clock, delays), [], nursery)

        async def collect(task_status: trio.TaskStatus[None]) -> None:
            async with broker.subscribe(SETTINGS.results_topic) as sub:
                task_status.started()
                async for d in sub:
                    h.events.extend((trio.current_time(), json.loads(e)) for e in unpack(d.body))

        await nursery.start(collect)
        if api_relay:
            await nursery.start(
                relay.run,
                ApiDeps(
                    SETTINGS,
                    trio.Event(),
                    clock,
                    store=h.store,
                    broker=broker,
                    insurers=insurers_for(SETTINGS),
                ),
            )
        for _ in range(workers):
            await nursery.start(worker.run, h.worker_deps())
        yield h
        nursery.cancel_scope.cancel()


def kinds(h: Harness) -> list[tuple[float, str, str | None]]:
    """What the user sees: events in topic order, duplicates dropped as the notifier does."""
    seen: set[tuple[str, int]] = set()
    out = []
    for t, e in h.events:
        if (e["calculation_id"], e["seq"]) not in seen:
            seen.add((e["calculation_id"], e["seq"]))
            out.append((round(t, 3), e["type"], e.get("insurer")))
    return out


async def test_offers_arrive_as_insurers_answer_then_completed(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 1.0, "borealis": 2.1}) as h:
        calc = await h.submit()
        await trio.sleep(10)
    # Polls every 0.25 s after the submit: answers ready at 1.0 and 2.1 are seen at 1.0, 2.25.
    assert kinds(h) == [
        (1.0, "offer", "aurora"),
        (2.25, "offer", "borealis"),
        (2.25, "completed", None),
    ]
    done = h.events[-1][1]
    assert (done["calculation_id"], done["offers"], done["stub"]) == (str(calc.id), 2, None)
    view = await h.store.get_calculation(calc.id)
    assert view is not None
    assert view.completed_at == EPOCH + 2.25


async def test_no_answer_by_the_deadline_gives_the_stub_on_time(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 7.0, "borealis": 60.0}) as h:
        calc = await h.submit()
        await trio.sleep(20)
    assert kinds(h) == [(5.0, "completed", None)]
    assert h.events[0][1]["stub"] == calc.stub
    view = await h.store.get_calculation(calc.id)
    assert view is not None
    assert [e.status for e in view.exchanges] == ["timed_out", "timed_out"]


async def test_answer_after_the_deadline_is_never_shown(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 1.0, "borealis": 5.5}) as h:
        await h.submit()
        await trio.sleep(20)
    assert kinds(h) == [(1.0, "offer", "aurora"), (5.0, "completed", None)]
    assert h.events[-1][1]["offers"] == 1


async def test_transient_insurer_errors_are_retried_with_backoff(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 0.0, "borealis": 0.0}) as h:
        h.insurers.flaky_polls["aurora"] = 3  # the 4th and last attempt succeeds
        await h.submit()
        await trio.sleep(10)
    seen = kinds(h)
    assert [k for _, k, _ in seen] == ["offer", "offer", "completed"]
    aurora_at = next(t for t, _, who in seen if who == "aurora")
    # The first poll at 0.25 s (the submit is not a poll), then full-jitter delays bounded by:
    assert 0.25 <= aurora_at <= 0.25 + 0.1 + 0.2 + 0.4


async def test_redelivered_job_resumes_polling_without_resubmitting(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 3.0, "borealis": 3.25}) as h:
        calc = await h.submit()
        await trio.sleep(1)
        assert len(h.insurers.submits) == 2
        # The same jobs again, as the broker would redeliver them after a crash.
        jobs = [Job(x.correlation_id, calc.id, x.insurer) for x in calc.exchanges]
        await h.broker.send([Outgoing(SETTINGS.requests_queue, j.encode()) for j in jobs])
        await trio.sleep(10)
    assert len(h.insurers.submits) == 2
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"]


async def test_a_copy_of_a_job_running_here_joins_it_instead_of_polling_twice(
    autojump_clock: MockClock,
) -> None:
    """Issue 11: after a STOMP reconnect the broker redelivers what the old connection held
    while its exchanges still run; each copy started a second exchange, doubling the polls
    per reconnect. Now the running exchange answers for the copy and acks it."""
    async with harness({"aurora": 3.0, "borealis": 3.0}) as h:
        calc = await h.submit()
        await trio.sleep(1)
        jobs = [Job(x.correlation_id, calc.id, x.insurer) for x in calc.exchanges]
        await h.broker.send([Outgoing(SETTINGS.requests_queue, j.encode()) for j in jobs])
        await trio.sleep(10)
        assert h.broker.depth(SETTINGS.requests_queue) == 0
        async with h.broker.subscribe(SETTINGS.requests_queue) as sub:
            with trio.move_on_after(5):
                await sub.receive()
                pytest.fail("a copy was left unacked")
    # 4 s of polling every 0.25 s from the first second to the answer, per insurer, once.
    times = {
        code: [t for c, t in h.insurers.poll_times if c == code] for code in ("aurora", "borealis")
    }
    assert all(len(ts) == len(set(ts)) for ts in times.values())  # never two polls at once
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"]


async def test_killed_worker_is_replaced_and_the_user_sees_each_offer_once(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 3.0, "borealis": 4.0}, workers=0) as h:
        calc = await h.submit()
        with trio.CancelScope() as doomed:  # a worker that dies mid-poll, nothing acked
            h.nursery.start_soon(worker.run, h.worker_deps())
            await trio.sleep(1.5)
            doomed.cancel()
        assert h.events == []
        await h.nursery.start(worker.run, h.worker_deps())
        await trio.sleep(10)
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"]
    assert len(h.insurers.submits) == 2  # the survivor polled the existing calculations
    assert h.events[-1][1]["calculation_id"] == str(calc.id)


async def test_a_poison_message_is_nacked_even_while_the_database_hangs(
    autojump_clock: MockClock,
) -> None:
    """The reason of a failure is kept in the database; a database that hangs when it is
    written must not keep the message from its NACK (and the DLQ)."""
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:

        async def hangs(*_: object, **__: object) -> None:
            await trio.sleep_forever()

        h.store.record_failure = hangs  # type: ignore[method-assign]
        await h.broker.send([Outgoing(SETTINGS.requests_queue, b"not json")])
        await trio.sleep(30)
        async with h.broker.subscribe("/queue/DLQ.osago.calculations") as dlq:
            with trio.fail_after(1):
                dead = await dlq.__aiter__().__anext__()
    assert dead.body == b"not json"


async def test_poison_message_is_dead_lettered_and_others_still_flow(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        await h.broker.send([Outgoing(SETTINGS.requests_queue, b"not json")])
        await h.submit()
        await trio.sleep(10)
        async with h.broker.subscribe("/queue/DLQ.osago.calculations") as dlq:
            with trio.fail_after(1):
                dead = await dlq.__aiter__().__anext__()
    assert dead.body == b"not json"
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"]


async def test_refusal_is_shown_with_its_message(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 0.5, "borealis": 1.0}) as h:
        h.insurers.refuse.add("borealis")
        calc = await h.submit()
        await trio.sleep(10)
    assert kinds(h) == [
        (0.5, "offer", "aurora"),
        (1.0, "no_offer", "borealis"),
        (1.0, "completed", None),
    ]
    refusal = h.events[1][1]
    assert (refusal["outcome"], refusal["message"]) == ("refused", "scoring refusal")
    view = await h.store.get_calculation(calc.id)
    assert view is not None
    assert {e.insurer: e.status for e in view.exchanges} == {
        "aurora": "offer",
        "borealis": "refused",
    }


@pytest.mark.parametrize("fail", ["settle_exchanges", "mark_sent"])
async def test_a_crash_between_storing_and_publishing_loses_no_event(
    autojump_clock: MockClock, fail: str
) -> None:
    async with harness({"aurora": 0.5, "borealis": 0.5}) as h:
        await h.submit()
        await trio.sleep(0.1)
        h.store.fail_next = fail
        await trio.sleep(60)
    unique = {(e["seq"], e["type"]) for _, e in h.events}
    assert unique == {(1, "offer"), (2, "offer"), (3, "completed")}
    # A failed settle is retried in place (the completion that follows may resend an offer
    # whose mark is still deferred); a failed mark means the relay publishes again after the
    # lease. At least once either way: repeats carry the same (calculation, seq).
    assert len(h.events) >= 3
    if fail == "mark_sent":
        assert len(h.events) > 3


async def test_late_answer_arrives_after_completed_marked_late(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 1.0, "borealis": 7.0}) as h:
        await h.submit(late_window=120.0)
        await trio.sleep(20)
    assert kinds(h) == [
        (1.0, "offer", "aurora"),
        (5.0, "completed", None),
        (7.0, "offer", "borealis"),
    ]
    assert [e.get("late") for _, e in h.events] == [False, None, True]
    assert h.events[1][1]["offers"] == 1


async def test_polling_stops_when_the_late_window_closes(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 1.0, "borealis": 500.0}) as h:
        calc = await h.submit(late_window=20.0)
        await trio.sleep(6.0)
        before = h.insurers.polls
        await trio.sleep(10.0)
        assert h.insurers.polls - before == 5  # late window: every 2 s, not every 0.25 s
        await trio.sleep(9.0)  # past the late window (5 + 20)
        polls = h.insurers.polls
        await trio.sleep(100.0)
        assert h.insurers.polls == polls  # nobody polls a closed calculation
    view = await h.store.get_calculation(calc.id)
    assert view is not None
    assert view.to_json()["status"] == "closed"
    assert {e.insurer: e.status for e in view.exchanges} == {
        "aurora": "offer",
        "borealis": "timed_out",
    }


async def test_a_worker_alone_relays_what_a_crashed_worker_left(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 0.5, "borealis": 500.0}, workers=0, api_relay=False) as h:
        calc = new_calculation(
            insurers=SETTINGS.insurer_codes, created_at=h.clock.now(), deadline=100.0
        )  # still open when the lease ends
        await h.store.create_calculation(calc, queue=SETTINGS.requests_queue)
        ex = calc.exchanges[0]
        # A worker stored aurora's offer, then died before publishing it (lease: 30 s).
        await h.store.settle_exchange(
            ex.correlation_id,
            Outcome(OutcomeKind.OFFER, received_at=h.clock.now(), premium=1.0),
            topic=SETTINGS.results_topic,
            now=h.clock.now(),
            lease=SETTINGS.outbox_lease,
        )
        await h.nursery.start(worker.run, h.worker_deps())  # no api anywhere
        await trio.sleep(60)
    offers = [t for t, e in h.events if e.get("insurer") == "aurora"]
    assert len(offers) == 1
    assert SETTINGS.outbox_lease <= offers[0] <= SETTINGS.outbox_lease + SETTINGS.relay_tick


async def test_jobs_an_api_died_holding_go_out_after_the_short_job_lease(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 0.5, "borealis": 0.5}, workers=0, api_relay=False) as h:
        calc = new_calculation(
            insurers=SETTINGS.insurer_codes, created_at=h.clock.now(), deadline=30.0
        )
        # The api committed the jobs, leased to itself, and died before publishing them.
        await h.store.create_calculation(
            calc, queue=SETTINGS.requests_queue, lease=SETTINGS.job_lease
        )
        await h.nursery.start(worker.run, h.worker_deps())  # its relay: the tick only
        await trio.sleep(20)
    offers = sorted(t for t, kind, _ in kinds(h) if kind == "offer")  # as the user sees them
    assert len(offers) == 2
    # Published once the 5 s lease ended (at the next 2 s tick), answered 0.5 s after the
    # submit, seen at the first poll 0.25 s later: well inside the user's minute.
    assert SETTINGS.job_lease <= offers[0] <= SETTINGS.job_lease + SETTINGS.relay_tick + 1.0


async def test_a_database_blip_is_ridden_out_in_place_not_nacked(autojump_clock: MockClock) -> None:
    async with harness({"aurora": 1.0, "borealis": 2.0}) as h:
        await h.submit()
        await trio.sleep(0.1)
        h.store.fail_next = "settle_exchanges"  # the database is away as aurora answers
        await trio.sleep(10)
    seen = kinds(h)
    assert [k for _, k, _ in seen] == ["offer", "offer", "completed"]
    aurora_at = next(t for t, _, who in seen if who == "aurora")
    # Retried after a 0-0.1 s backoff; a NACK would have come back only after the broker's
    # 1.1 s redelivery delay (and after two more, into the DLQ).
    assert 1.0 <= aurora_at <= 1.1
