"""Per-attempt timeouts inside the caller's deadline, as Trio cancel scopes.

The layering (Polly's standard handler): the overall deadline is the OUTER scope (the
calculation's 60 s, owned by the worker); each attempt gets an INNER scope of its own
timeout. A nested scope can never outlive its parent, so an attempt never runs past what is
left of the deadline. An attempt timeout raises :class:`AttemptTimeout` (retryable); the
overall deadline cancels everything, retries included.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio

from osago.errors import AttemptTimeout
from osago.resilience.events import AttemptTimedOut, Hook, emit

__all__ = ["attempt_timeout", "time_left"]


def time_left() -> float:
    """Seconds until the enclosing deadline (``inf`` when there is none)."""
    return trio.current_effective_deadline() - trio.current_time()


@contextmanager
def attempt_timeout(name: str, seconds: float, hooks: Sequence[Hook] = ()) -> Iterator[None]:
    """Run the block for at most ``seconds``; raise AttemptTimeout if it takes longer."""
    with trio.move_on_after(seconds) as scope:
        yield
    if scope.cancelled_caught:
        emit(hooks, AttemptTimedOut(name, trio.current_time(), seconds))
        raise AttemptTimeout(name, seconds)
