"""Every metric family osago exports, in one registry per process (no global registry)."""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

# Seconds: from tens of milliseconds (a job picked up at once) to minutes (a backlog).
_WAIT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_CALL = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
_LATE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
# Seconds: from a millisecond (a loop with time to spare) to seconds (one starved of CPU).
_LAG = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """The families (names are part of the operations contract: see deploy/prometheus)."""

    def __init__(self) -> None:
        # The last calculations completed with the stub here: (calculation id, wall time),
        # for the operations page.
        self.recent_stubs: deque[tuple[str, float]] = deque(maxlen=20)
        r = self.registry = CollectorRegistry(auto_describe=True)
        # api
        self.accepted = Counter(
            "osago_calculations_accepted", "Calculations accepted (202).", registry=r
        )
        self.overloaded = Counter(
            "osago_calculations_overloaded",
            "New calculations refused (503) while jobs waited: for a worker (cause=queue),"
            " in the api to be published (cause=publishing), or in a worker to be started"
            " (cause=workers).",
            ["cause"],
            registry=r,
        )
        # api, worker: the outbox
        self.outbox_pending = Gauge(
            "osago_outbox_pending_messages", "Outbox rows not yet sent.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "osago_outbox_oldest_pending_age_seconds",
            "Age of the oldest unsent outbox row (0 when none).",
            registry=r,
        )
        # api: how far its publishing of jobs is behind, read at each scrape (admission refuses
        # new calculations past OSAGO_MAX_UNPUBLISHED_WAIT)
        self.jobs_unpublished_age = Gauge(
            "osago_jobs_unpublished_oldest_seconds",
            "Seconds the oldest job this api accepted has waited to be published (0 when none).",
            registry=r,
        )
        # api: the workers' reports (admission refuses a share from half of OSAGO_MAX_PICKUP_WAIT)
        self.workers_pickup_wait = Gauge(
            "osago_workers_pickup_wait_seconds",
            "The highest median wait, commit to started, a worker reported in the last"
            " seconds (0 when none did).",
            registry=r,
        )
        # every role: how late its loop runs what is due (osago/metrics/_lag.py)
        self.loop_lag = Histogram(
            "osago_loop_lag_seconds",
            "How late this process's event loop woke a timer: a role short of CPU shows here.",
            buckets=_LAG,
            registry=r,
        )
        # api, worker: the broker's own statistics
        self.queue_messages = Gauge(
            "osago_queue_messages", "Messages waiting, per the broker.", ["queue"], registry=r
        )
        self.queue_consumers = Gauge(
            "osago_queue_consumers", "Consumers, per the broker.", ["queue"], registry=r
        )
        # worker
        self.job_wait = Histogram(
            "osago_job_wait_seconds",
            "A job's outbox commit to a worker starting it: how fast the queue drains.",
            buckets=_WAIT,
            registry=r,
        )
        self.insurer_requests = Counter(
            "osago_insurer_requests",
            "HTTP calls to insurers by result (ok, or the error's kind).",
            ["insurer", "operation", "result"],
            registry=r,
        )
        self.insurer_duration = Histogram(
            "osago_insurer_request_duration_seconds",
            "HTTP calls to insurers.",
            ["insurer", "operation"],
            buckets=_CALL,
            registry=r,
        )
        self.resilience = Counter(
            "osago_resilience_events",
            "What the resilience primitives did, from their hooks: retries, give-ups, breaker "
            "transitions and rejections, attempt timeouts, bulkhead rejections, hedges.",
            ["insurer", "event"],
            registry=r,
        )
        self.in_flight = Gauge(
            "osago_exchanges_in_flight", "Exchanges running here.", ["insurer"], registry=r
        )
        self.outcomes = Counter(
            "osago_exchange_outcomes", "Exchanges settled, by outcome.", ["insurer", "outcome"],
            registry=r,
        )  # fmt: skip
        # api: insurers' callbacks, accepted or refused (by reason)
        self.callbacks = Counter(
            "osago_insurer_callbacks",
            "Callbacks from insurers: accepted, or the reason they were refused.",
            ["insurer", "result"],
            registry=r,
        )
        self.completed = Counter(
            "osago_calculations_completed",
            "Calculations completed, with offers or with the stub.",
            ["result"],
            registry=r,
        )
        self.lateness = Histogram(
            "osago_deadline_lateness_seconds",
            "`completed` published minus the deadline.",
            buckets=_LATE,
            registry=r,
        )
        # notifier
        self.ws_sessions = Gauge("osago_ws_sessions", "Open WebSocket sessions.", registry=r)
        self.events_pushed = Counter(
            "osago_events_pushed", "Events queued to sessions, by type.", ["type"], registry=r
        )
        self.event_delivery = Histogram(
            "osago_event_delivery_seconds",
            "The worker received the insurer's answer to the event queued to the sessions.",
            buckets=_LATE,
            registry=r,
        )
