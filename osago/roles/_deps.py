"""What each role receives: its ports and settings, passed in, never global."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from osago.admission import Backlog
from osago.broker import Broker
from osago.clock import Clock, SystemClock
from osago.config import Settings
from osago.insurers import InsurerClient, InsurerConfig
from osago.metrics import Metrics
from osago.resilience import Hook, log_hook
from osago.storage import Store

__all__ = ["ApiDeps", "NotifierDeps", "WorkerDeps"]


@dataclass(frozen=True)
class _Base:
    settings: Settings
    # Set to ask the role to drain and stop (SIGTERM / SIGINT); never cleared.
    stop: trio.Event = field(default_factory=trio.Event)
    clock: Clock = field(default_factory=SystemClock)
    # This process's metric families (one registry per process, shared by its roles).
    metrics: Metrics = field(default_factory=Metrics, kw_only=True)


@dataclass(frozen=True)
class ApiDeps(_Base):
    """The REST api and the outbox relay."""

    store: Store = field(kw_only=True)
    broker: Broker = field(kw_only=True)
    insurers: tuple[InsurerConfig, ...] = field(kw_only=True)  # whom each calculation asks
    # Where the demo page connects (known in `osago --role all`); None: no demo page.
    ws_url: str | None = field(default=None, kw_only=True)
    # The jobs waiting (for a worker: kept fresh by the process's backlog refresh; to be
    # published: read from the api's job publisher), for admission.
    backlog: Backlog = field(default_factory=Backlog, kw_only=True)


@dataclass(frozen=True)
class WorkerDeps(_Base):
    """Queue consumer, insurer exchanges and the deadline keeper."""

    store: Store = field(kw_only=True)
    broker: Broker = field(kw_only=True)
    insurers: tuple[InsurerConfig, ...] = field(kw_only=True)
    client: InsurerClient = field(kw_only=True)
    # Receive every retry, breaker transition, rejection and timeout (log, metrics, tests).
    hooks: tuple[Hook, ...] = field(default=(log_hook,), kw_only=True)


@dataclass(frozen=True)
class NotifierDeps(_Base):
    """WebSocket sessions fed from the results topic."""

    broker: Broker = field(kw_only=True)
    # Where pushes are noted for timelines; None (no database configured): not noted.
    store: Store | None = field(default=None, kw_only=True)
