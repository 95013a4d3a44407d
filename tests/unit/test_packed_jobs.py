"""A calculation's jobs travel as one queue message (osago.outbox.outgoing): each runs as an
exchange of its own, the message is acked once, after its last job, and NACKed if any job
failed; a redelivery runs again only the jobs not settled meanwhile (osago/roles/_held.py)."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from osago.broker import Delivery, Outgoing
from osago.broker.memory import _Consumer
from osago.errors import BrokerUnavailable
from osago.events import pack
from osago.models import Job
from tests.unit.test_flow import SETTINGS, harness, kinds

Q = SETTINGS.requests_queue


async def test_a_calculations_jobs_run_together_and_their_message_is_acked_after_the_last(
    autojump_clock: MockClock,
) -> None:
    async with harness({"aurora": 1.0, "borealis": 3.0}) as h:
        await h.submit()
        await trio.sleep(2)
        stats = await h.broker.queue_stats(Q)
        assert stats is not None
        # One message for both jobs, held unacked while borealis still runs.
        assert (stats.messages, stats.in_flight) == (1, 1)
        assert len(h.insurers.submits) == 2
        await trio.sleep(10)
        stats = await h.broker.queue_stats(Q)
        assert stats is not None
        assert (stats.messages, stats.in_flight) == (0, 0)
    # Neither job waited for the other: aurora's offer came at its own time.
    assert kinds(h) == [
        (1.0, "offer", "aurora"),
        (3.0, "offer", "borealis"),
        (3.0, "completed", None),
    ]


async def test_a_failing_job_nacks_its_message_and_redeliveries_run_only_that_job(
    autojump_clock: MockClock,
) -> None:
    """``zephyr`` is asked about, but this worker has no such insurer: its job fails every
    time. Aurora and borealis are answered once, their offers shown once; the message is
    NACKed after them, and its redeliveries (two) run only zephyr's job, then the DLQ."""
    async with harness({"aurora": 0.5, "borealis": 1.0}) as h:
        calc = await h.submit(insurers=("aurora", "borealis", "zephyr"))
        await trio.sleep(30)
        assert h.broker.depth(Q) == 0
        async with h.broker.subscribe("/queue/DLQ." + Q.removeprefix("/queue/")) as dlq:
            with trio.fail_after(1):
                dead = await dlq.receive()
        failures = await h.store.failures([dead.message_id])
    assert len(h.insurers.submits) == 2  # aurora and borealis, not again on redeliveries
    shown = [(k, who) for _, k, who in kinds(h)]
    assert shown == [("offer", "aurora"), ("offer", "borealis"), ("completed", None)]
    # The dead letter is the calculation's message, all three jobs; replayed, it would run
    # zephyr's again and find the other two settled.
    assert sorted(j.insurer for j in Job.decode_all(dead.body)) == ["aurora", "borealis", "zephyr"]
    assert {j.calculation_id for j in Job.decode_all(dead.body)} == {calc.id}
    assert "zephyr is not configured" in failures[dead.message_id][0]


async def test_a_copy_of_a_message_whose_jobs_run_here_is_answered_by_them(
    autojump_clock: MockClock,
) -> None:
    """After a reconnect the broker delivers again what the lost connection held. Each job of
    the copy that still runs here joins its exchange (no second poll); one already settled is
    done at once; the copy is acked when the running ones end."""
    async with harness({"aurora": 1.0, "borealis": 4.0}) as h:
        calc = await h.submit()
        await trio.sleep(2)  # aurora answered, borealis still polled
        jobs = [Job(x.correlation_id, calc.id, x.insurer) for x in calc.exchanges]
        await h.broker.send([Outgoing(Q, pack([j.encode() for j in jobs]))])
        await trio.sleep(1)
        stats = await h.broker.queue_stats(Q)
        assert stats is not None
        assert stats.in_flight == 2  # both copies wait for borealis
        await trio.sleep(10)
        stats = await h.broker.queue_stats(Q)
        assert stats is not None
        assert (stats.messages, stats.in_flight) == (0, 0)
    polls = [t for code, t in h.insurers.poll_times if code == "borealis"]
    assert len(polls) == len(set(polls))  # never two polls at once
    assert len(h.insurers.submits) == 2
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"]


async def test_an_ack_the_broker_refuses_ends_nothing_but_that_ack(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message stays unacked (the broker delivers it again, its jobs found settled);
    the worker goes on with the next calculation."""
    acks: list[str] = []
    real_ack = _Consumer.ack

    async def refused_once(self: _Consumer, delivery: Delivery) -> None:
        acks.append(delivery.message_id)
        if len(acks) == 1:
            raise BrokerUnavailable("connection lost")
        await real_ack(self, delivery)

    monkeypatch.setattr(_Consumer, "ack", refused_once)
    async with harness({"aurora": 0.5, "borealis": 1.0}) as h:
        await h.submit()
        await trio.sleep(3)
        await h.submit()
        await trio.sleep(3)
    assert len(acks) == 2
    assert [k for _, k, _ in kinds(h)] == ["offer", "offer", "completed"] * 2
