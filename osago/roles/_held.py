"""A job message held for its ack while the jobs it carries run here.

A message carries one job or the jobs of one calculation, one per line
(:func:`osago.outbox.outgoing`). Each job runs as an exchange of its own; the message is
acked once every one of them is done, or NACKed if any failed. The broker then redelivers it
and, after the last attempt, dead-letters it; a redelivery (or a replay from the DLQ) runs
again only the jobs not settled meanwhile: a settled one is done at its first load.

Why one ack a message: STOMP acks messages, not lines, and a calculation's jobs travel
together because ten persistent messages and ten ACKs a calculation were most of ActiveMQ's
work (osago/outbox.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from osago.broker import Delivery

__all__ = ["Held", "Running"]


@dataclass(eq=False, slots=True)
class Held:
    """A delivered job message: how many of its jobs are not done yet, and why any failed.
    ``delivery`` is a copy without body and headers: only what an ack or a NACK reads (a
    waiting exchange keeps it for minutes)."""

    delivery: Delivery
    left: int
    failures: list[str] = field(default_factory=list)

    def finish(self, failure: str | None) -> bool:
        """One of its jobs is done (``failure``: why it failed); True if it was the last."""
        if failure is not None:
            self.failures.append(failure)
        self.left -= 1
        return self.left == 0


@dataclass(eq=False, slots=True)
class Running:
    """An exchange running here, and the messages that answer for it: the one that started
    it, and each copy delivered since (after a reconnect the broker delivers again what the
    lost connection held). Each is finished when the exchange ends; a copy from a lost
    connection is not acked (there is nothing left to ack it on)."""

    helds: list[Held]
