"""Prometheus metrics, health and readiness, per process (see the README's operations part)."""

from osago.metrics._families import Metrics
from osago.metrics._gc import GcPauses
from osago.metrics._hooks import metrics_hook
from osago.metrics._insurers import BreakerStates, MeteredClient
from osago.metrics._lag import watch_loop_lag
from osago.metrics._lifecycle import observe_completed
from osago.metrics._quantile import bucket_quantile
from osago.metrics._refresh import queue_label, refresh_backlog
from osago.metrics._server import Check, serve_metrics
from osago.metrics._snapshot import snapshot

__all__ = [
    "BreakerStates",
    "Check",
    "GcPauses",
    "MeteredClient",
    "Metrics",
    "bucket_quantile",
    "metrics_hook",
    "observe_completed",
    "queue_label",
    "refresh_backlog",
    "serve_metrics",
    "snapshot",
    "watch_loop_lag",
]
