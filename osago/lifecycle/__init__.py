"""A calculation's life in one place: pure, synchronous, typed.

:func:`accept` makes a new calculation from a validated request; :func:`on_answer` and
:func:`on_due` turn a calculation's :class:`CalcState` and what happened (an insurer's
answer; the deadline or the end of the late window) into a :class:`Plan` that a store
carries out in one transaction. The stores never decide and never build events.
"""

from osago.lifecycle._accept import Named, Timing, accept
from osago.lifecycle._plan import CalcState, ExchangeState, NewEvent, Plan
from osago.lifecycle._rules import applied, on_answer, on_due

__all__ = [
    "CalcState",
    "ExchangeState",
    "Named",
    "NewEvent",
    "Plan",
    "Timing",
    "accept",
    "applied",
    "on_answer",
    "on_due",
]
