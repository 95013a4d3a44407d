"""The worker role: consume the request queue, run each insurer exchange as a task.

Ack discipline (client-individual): a message carries one job or a calculation's jobs
(osago/roles/_held.py); it is acked only after the outcome of each is stored and its event is
in the outbox; so a crash at any point means redelivery, and a redelivered job resumes (polls
the insurer's existing calculation, with the time left to the deadline) while a settled one
is only acked. A job that cannot be processed NACKs its message once the message's other jobs
are done; the broker redelivers it and, after the last attempt, dead-letters it to
``DLQ.<queue>``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType
from typing import TypeVar
from uuid import UUID

import trio

from osago.alarms import Alarms
from osago.batching import Batcher, Deferred
from osago.broker import Delivery, Subscription
from osago.errors import BrokerError, PoisonMessage, StoreError
from osago.insurers.resilient import GuardedInsurer, guard_insurers
from osago.logs import about
from osago.loops import keeper, relay, retention
from osago.metrics import BreakerStates, metrics_hook, observe_completed
from osago.models import Exchange, Job, OutboxMessage, Step
from osago.outbox import publisher, sent_marks
from osago.resilience import RetryPolicy, log_hook, retrying
from osago.roles._answers import Answers
from osago.roles._deps import WorkerDeps
from osago.roles._exchange import Aids, Steps, run_exchange
from osago.roles._held import Held, Running
from osago.workload import PickupWaits, report_load

__all__ = ["Crew", "handle", "run"]

log = logging.getLogger("osago.worker")

T = TypeVar("T")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Crew:
    """What every job of one worker shares: the guards, and the batchers that let many jobs
    share one transaction: loads (batched as they come), submissions and sent marks (deferred
    by ``write_linger``), and settled events (one ActiveMQ transaction a send)."""

    guards: dict[str, GuardedInsurer]
    answers: Answers  # loads (after a linger) and settles (as they come), batched
    settled: Batcher[UUID, bool]  # callback mode's safety checks, batched after a linger
    record: Deferred[tuple[UUID, str]]
    marks: Deferred[int]
    events: Deferred[OutboxMessage]  # settled exchanges' events, published together
    steps: Deferred[tuple[UUID, tuple[Step, ...]]]
    running: dict[UUID, Running] = field(default_factory=dict)  # exchanges running here
    waits: PickupWaits = field(default_factory=PickupWaits)  # reported for admission
    alarms: Alarms = field(default_factory=Alarms)  # what waiting exchanges sleep on

    @classmethod
    def of(cls, deps: WorkerDeps) -> Crew:
        store, s = deps.store, deps.settings
        # Why a submission may be recorded late (or lost): a redelivered job whose remote id
        # is missing submits again, and the insurer answers with the same calculation (the
        # correlation id is its idempotency key).
        record = Deferred(
            "submissions",
            store.record_submissions,
            linger=s.write_linger,
            cleanup_timeout=s.cleanup_timeout,
        )
        marks = sent_marks(
            store, deps.clock, linger=s.write_linger, cleanup_timeout=s.cleanup_timeout
        )
        events = publisher(
            "events", deps.broker, store, deps.clock, marks, cleanup_timeout=s.cleanup_timeout
        )
        return cls(
            guard_insurers(deps.insurers, deps.client, (*deps.hooks, metrics_hook(deps.metrics))),
            # Why batched: the settle transaction was a worker's costliest step (its round
            # trips to PostgreSQL); answers that arrive while one runs share the next.
            Answers.of(
                store,
                deps.clock,
                topic=s.results_topic,
                lease=s.outbox_lease,
                load_linger=s.load_linger,
                settle_linger=s.settle_linger,
                publish=events.add,
            ),
            # Gone from the store: nothing to do. A safety check may wait as a write does.
            Batcher(store.settled_among, default=True, linger=s.write_linger),
            record,
            marks,
            events,
            # For timelines only: written late, in batches, lost at worst (never retried).
            Deferred(
                "steps",
                store.record_steps,
                linger=s.trail_linger,
                cleanup_timeout=s.cleanup_timeout,
            ),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The batchers' runners, until cancelled. (A sent mark that misses the marks' last
        write only sends its event again after the lease; the notifier drops repeats.)"""
        async with trio.open_nursery() as nursery:
            for runner in (
                self.alarms.run,
                self.answers.run,
                self.settled.run,
                self.record.run,
                self.marks.run,
                self.events.run,
                self.steps.run,
            ):
                await nursery.start(runner)
            task_status.started()


async def _through_outages(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, retried while the database is away (StoreError), per ``policy``.

    Why: a database restart is transient, not a poison message. NACKing at the first
    StoreError sent jobs through the broker's few quick redeliveries into the DLQ within
    seconds, and their users got the stub. The job keeps its place meanwhile; only an
    outage longer than the policy allows ends in a NACK.
    """
    result: T
    async for attempt in retrying(on=StoreError, policy=policy, name="store", hooks=(log_hook,)):
        with attempt:
            result = await call()
    return result


async def handle(deps: WorkerDeps, crew: Crew, sub: Subscription, delivery: Delivery) -> None:
    """Process one job message to ack or nack: each of its jobs as an exchange of its own
    (osago/roles/_held.py)."""
    try:
        jobs = Job.decode_all(delivery.body)
    except PoisonMessage as exc:
        log.error(
            "message %s failed (redelivered=%s): %s", delivery.message_id, delivery.redelivered, exc
        )
        await _nack(deps, sub, delivery, str(exc))
        return
    # Held for its ack, maybe for minutes: only what an ack or a nack reads. Its body and
    # its dozen headers were a good part of what a waiting exchange kept.
    held = Held(replace(delivery, body=b"", headers=_NO_HEADERS), len(jobs))
    if len(jobs) == 1:
        await _job(deps, crew, sub, held, jobs[0])
        return
    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(_job, deps, crew, sub, held, job)


async def _job(deps: WorkerDeps, crew: Crew, sub: Subscription, held: Held, job: Job) -> None:
    """Run one job of ``held``; its message is acked or nacked after its last job."""
    running = crew.running.get(job.correlation_id)
    if running is not None:
        # Why: after a reconnect the broker redelivers what the old connection held,
        # while its exchange still runs here. A second exchange would poll the insurer
        # twice; instead the running one answers for the new copy (finishes it when done).
        running.helds.append(held)
        log.info(
            "message %s: exchange %s already runs here; it will answer for this copy",
            held.delivery.message_id,
            job.correlation_id,
        )
        return
    slot = crew.running[job.correlation_id] = Running([held])
    failure: str | None = None
    try:
        await _process(deps, crew, slot, job)
    except (PoisonMessage, StoreError, BrokerError) as exc:
        d = slot.helds[-1].delivery
        log.error(
            "message %s, job %s failed (redelivered=%s): %s",
            d.message_id,
            job.correlation_id,
            d.redelivered,
            exc,
        )
        failure = str(exc)
    except Exception as exc:
        # A defect met by one job: logged with its message, which is NACKed once its other
        # jobs are done (after the broker's redeliveries it lands in the DLQ); the worker
        # goes on with every other job.
        log.exception(
            "message %s, job %s: unexpected failure",
            slot.helds[-1].delivery.message_id,
            job.correlation_id,
        )
        failure = f"defect: {exc!r}"
    finally:
        del crew.running[job.correlation_id]
    # Not reached when cancelled (shutdown): the messages stay unacked, for another worker.
    for done in slot.helds:
        if not done.finish(failure):
            continue
        if done.failures:
            await _nack(deps, sub, done.delivery, "; ".join(done.failures))
            continue
        try:
            await sub.ack(done.delivery)
        except BrokerError as exc:  # it comes again, and its jobs are found settled
            log.warning("message %s: not acked (%s)", done.delivery.message_id, exc)


async def _nack(deps: WorkerDeps, sub: Subscription, delivery: Delivery, reason: str) -> None:
    """NACK, then keep the reason by message id: STOMP's NACK carries none, and the DLQ copy
    only ``original-destination``; `osago dlq list` shows it from here.

    The NACK first and on its own bound: a database that hangs must not keep the message
    unacked here (it would hold a prefetch slot until this worker dies)."""
    cleanup = deps.settings.cleanup_timeout
    with trio.CancelScope(shield=True), trio.move_on_after(cleanup):
        await sub.nack(delivery)
    with trio.CancelScope(shield=True), trio.move_on_after(cleanup), suppress(StoreError):
        await deps.store.record_failure(delivery.message_id, reason[:500], now=deps.clock.now())


def _done(ex: Exchange, why: str, *, level: int = logging.INFO) -> None:
    log.log(level, "calculation %s: %s %s", ex.calculation_id, ex.insurer, why)


async def _process(deps: WorkerDeps, crew: Crew, slot: Running, job: Job) -> None:
    """Run one exchange to its end; returns when its job may be acked (raises if it failed)."""
    s = deps.settings
    about(job.calculation_id, job.insurer)  # every line of this job says which
    ex = await _through_outages(s.store_retry, lambda: crew.answers.load(job.correlation_id))
    if ex is None:
        raise PoisonMessage(f"no exchange {job.correlation_id} in the store")
    if ex.settled:
        _done(ex, "already settled (answered or closed): nothing to do")
        return
    guard = crew.guards.get(ex.insurer)
    if guard is None:
        raise PoisonMessage(f"insurer {ex.insurer} is not configured on this worker")
    m = deps.metrics
    redelivered = slot.helds[0].delivery.redelivered
    if not redelivered:  # how fast the queue drains: commit -> picked up
        waited = max(0.0, deps.clock.now() - ex.created_at)
        m.job_wait.observe(waited)
        crew.waits.observe(waited)
    # Polling goes on past the deadline, through the late window: a late answer still
    # reaches the user, marked late. The keeper completes and closes the calculation.
    in_flight = m.in_flight.labels(ex.insurer)
    in_flight.inc()
    steps = Steps(deps.clock)
    steps.note("picked up again" if redelivered else "picked up")
    try:

        async def settled() -> bool:
            return await crew.settled(ex.correlation_id)

        with trio.move_on_at(deps.clock.trio_time(ex.closes_at)) as scope:
            sleep = crew.alarms.sleep_until
            aids = Aids(guard, crew.record.add, deps.clock, steps, settled, sleep)
            outcome = await run_exchange(ex, aids)
    finally:
        in_flight.dec()
    if scope.cancelled_caught:
        steps.note("stopped: the late window ended")
        crew.steps.add([(ex.correlation_id, tuple(steps.done))])
        m.outcomes.labels(ex.insurer, "timed_out").inc()
        # The keeper closes the calculation at closes_at and marks every exchange still
        # pending as timed out, in one transaction; settling each here would only queue
        # behind its row lock.
        _done(ex, "did not answer by the end of the late window")
        return
    if outcome is None:  # its callback reached the api, which settled and published it
        crew.steps.add([(ex.correlation_id, tuple(steps.done))])
        # DEBUG: the api logged the answer as it came ("called back -> offer").
        _done(ex, "answered by callback", level=logging.DEBUG)
        return
    # Its steps are written with it (the timeline): it is the last the worker notes.
    settle = ((ex.correlation_id, outcome), tuple(steps.done))
    done = await _through_outages(s.store_retry, lambda: crew.answers.settle(settle))
    if done is None:
        raise PoisonMessage(f"exchange {ex.correlation_id} is gone from the store")
    if done.stored:
        log.info(
            "calculation %s: %s -> %s%s",
            ex.calculation_id,
            ex.insurer,
            outcome.kind,
            f" {outcome.premium:.2f} RUB" if outcome.premium is not None else "",
        )
        m.outcomes.labels(ex.insurer, outcome.kind.value).inc()
    else:  # its callback (or the keeper's close) came first: that outcome stands
        _done(ex, f"answered ({outcome.kind}) after its exchange was settled: that stands")
    # The events are in the outbox already, handed to the publisher with the batch's (and
    # published by a relay after the lease if that fails, or this worker dies first): so
    # the job is done either way. A repeat may carry its calculation's events too.
    observe_completed(m, done.events, deps.clock.now())


async def run(
    deps: WorkerDeps, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Consume until ``deps.stop``, then let running exchanges finish for ``shutdown_grace``.

    Exchanges still running after the grace are cancelled unacked: the broker hands their
    messages to another worker, which resumes them.
    """
    s = deps.settings
    crew = Crew.of(deps)
    deps.metrics.registry.register(
        BreakerStates({code: g.breaker for code, g in crew.guards.items()})
    )
    async with trio.open_nursery() as outer:
        await outer.start(crew.run)
        await outer.start(keeper.run, deps)
        await outer.start(retention.run, deps)
        # Tick only: the api relays new jobs, this worker publishes its own events.
        await outer.start(partial(relay.run, deps, listen=False))
        # How long jobs wait for this worker, each second: the api sheds on it.
        await outer.start(partial(report_load, deps.broker, s.load_topic, crew.waits))
        async with (
            deps.broker.subscribe(s.requests_queue, prefetch=s.worker_prefetch) as sub,
            trio.open_nursery() as jobs,
        ):
            task_status.started()
            log.info("worker consuming %s (prefetch %d)", s.requests_queue, s.worker_prefetch)
            with trio.CancelScope() as consuming:
                jobs.start_soon(_cancel_on, deps.stop, consuming)
                async for delivery in sub:
                    jobs.start_soon(handle, deps, crew, sub, delivery)
            log.info("worker draining %d running exchanges", len(jobs.child_tasks))
            jobs.cancel_scope.deadline = trio.current_time() + s.shutdown_grace
        outer.cancel_scope.cancel()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
