"""Reading exchanges and settling answers, many callers to one transaction.

The worker's jobs and the api's callbacks both load an exchange and later settle its answer;
each was a transaction of its own (a crossing into asyncio and several round trips to
PostgreSQL). :class:`Answers` batches both, as :class:`osago.batching.Batcher` does: a call
alone runs at once, calls that queue while one runs share the next transaction; under load
(calls faster than one per its linger) a load or a settle waits that long for company.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import trio

from osago.batching import Batcher
from osago.clock import Clock
from osago.models import Exchange, OutboxMessage, Outcome, Step
from osago.storage import Settled, Store

__all__ = ["Answer", "Answers", "Settle"]

Answer = tuple[UUID, Outcome]  # (correlation id, outcome)
# An answer and the steps that reached it, kept with it for the timeline (none: keep none).
Settle = tuple[Answer, tuple[Step, ...]]


@dataclass(frozen=True)
class Answers:
    """``await answers.load(correlation_id)`` (None: no such exchange) and
    ``await answers.settle(((correlation_id, outcome), steps))`` (whether it was stored and
    the events to publish for it, already handed to ``publish`` when :meth:`of` was given
    one; see :meth:`osago.storage.Store.settle_exchanges`; None: no such exchange)."""

    load: Batcher[UUID, Exchange | None]
    settle: Batcher[Settle, Settled | None]

    @classmethod
    def of(
        cls,
        store: Store,
        clock: Clock,
        *,
        topic: str,
        lease: float,
        load_linger: float = 0.0,
        settle_linger: float = 0.0,
        publish: Callable[[Sequence[OutboxMessage]], None] | None = None,
    ) -> Answers:
        """Batched on ``store``; settled events are leased ``lease`` seconds to the caller;
        loads wait ``load_linger`` and settles ``settle_linger`` seconds for company, each
        only while its calls come faster than one per that long (the user waits for both:
        when idle, never). With ``publish``, each batch's events are handed to it at once,
        and callers must not publish them again."""

        async def settle(batch: Sequence[Settle]) -> dict[UUID, Settled]:
            settled = await store.settle_exchanges(
                [answer for answer, _ in batch],
                topic=topic,
                now=clock.now(),
                lease=lease,
                steps={answer[0]: done for answer, done in batch if done},
            )
            if publish is not None:
                # Why here and not by each caller: the callers wake in the scheduler's next
                # batch, and a publisher they wake in the one after; handed over here, it
                # runs beside them, a turn sooner from the commit to the user's frame.
                publish([m for x in settled.values() for m in x.events])
            return settled

        return cls(
            Batcher(store.load_exchanges, default=None, busy_linger=load_linger),
            Batcher(settle, default=None, key=lambda item: item[0][0], busy_linger=settle_linger),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Both batchers' runners, until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.load.run)
            await nursery.start(self.settle.run)
            task_status.started()
