"""Store port, its PostgreSQL implementation and its in-memory twin."""

from osago.storage._port import CALCULATIONS_CHANNEL, OUTBOX_CHANNEL, Store, Wakeup
from osago.storage._results import KnownExchange, Settled
from osago.storage.memory import MemoryStore

__all__ = [
    "CALCULATIONS_CHANNEL",
    "OUTBOX_CHANNEL",
    "KnownExchange",
    "MemoryStore",
    "Settled",
    "Store",
    "Wakeup",
]
