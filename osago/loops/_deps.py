"""What the background loops need; the api's and the worker's deps both provide it."""

from __future__ import annotations

from typing import Protocol

import trio

from osago.broker import Broker
from osago.clock import Clock
from osago.config import Settings
from osago.metrics import Metrics
from osago.storage import Store

__all__ = ["LoopDeps"]


class LoopDeps(Protocol):
    """Settings, the stop event, the clock, the store, the broker and the metrics."""

    @property
    def settings(self) -> Settings: ...
    @property
    def stop(self) -> trio.Event: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def broker(self) -> Broker: ...
    @property
    def metrics(self) -> Metrics: ...
