"""What a store's calls report beyond the models: a settle's result per answer, and what a
store knows of an exchange without a read."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from osago.models import OutboxMessage

__all__ = ["KnownExchange", "Settled"]


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling one answer did (:meth:`osago.storage.Store.settle_exchanges`).

    ``stored``: its outcome was kept; False when its exchange had one already or its
    calculation was closed, and nothing of it changed. ``events``: the leased events to
    publish for it, possibly other answers' of the same calculation (a repeat's too: a
    batch's events of one calculation are published once, with its last answer's)."""

    stored: bool
    events: list[OutboxMessage]


@dataclass(frozen=True, slots=True)
class KnownExchange:
    """What a store knows of an exchange without a read
    (:meth:`osago.storage.Store.known_exchange`).

    ``settled`` may lag (another process may have settled it since), never lead: True is
    final."""

    calculation_id: UUID
    insurer: str
    settled: bool
