"""Per-attempt timeouts inside the caller's deadline, as Trio cancel scopes.

The layering (Polly's standard handler): the overall deadline is the OUTER scope (the
calculation's 60 s, owned by the worker); each attempt gets an INNER scope of its own
timeout. A nested scope can never outlive its parent, so an attempt never runs past what is
left of the deadline. An attempt timeout raises :class:`AttemptTimeout` (retryable); the
overall deadline cancels everything, retries included.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import trio

from osago.errors import AttemptTimeout
from osago.resilience.events import AttemptTimedOut, Hook, emit

__all__ = ["attempt_timeout", "time_left"]


def time_left() -> float:
    """Seconds until the enclosing deadline (``inf`` when there is none)."""
    return trio.current_effective_deadline() - trio.current_time()


class attempt_timeout:  # lower case: it is used, and reads, as the function it was
    """Run the block for at most ``seconds``; raise AttemptTimeout if it takes longer.

    A class, not a ``@contextmanager`` generator: it wraps every insurer call, and the
    generator's machinery cost as much as the cancel scope itself."""

    __slots__ = ("_hooks", "_name", "_scope", "_seconds")

    def __init__(self, name: str, seconds: float, hooks: Sequence[Hook] = ()) -> None:
        self._name = name
        self._seconds = seconds
        self._hooks = hooks
        self._scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def __enter__(self) -> None:
        self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        swallowed = self._scope.__exit__(exc_type, exc, tb)
        if self._scope.cancelled_caught:
            emit(self._hooks, AttemptTimedOut(self._name, trio.current_time(), self._seconds))
            raise AttemptTimeout(self._name, self._seconds)
        return bool(swallowed)
