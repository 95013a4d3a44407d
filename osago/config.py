"""Settings: one frozen dataclass, read from ``OSAGO_*`` environment variables and CLI flags.

Timeouts and intervals are float seconds. They are data here; the layer that performs the
call turns them into Trio cancel scopes (callers own deadlines).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from osago.errors import ConfigError
from osago.resilience import RetryPolicy

__all__ = ["DEV_SECRET", "MIN_SECRET_BYTES", "Bind", "Settings", "parse_bind"]

# Signs WebSocket tokens in the local demo only: it is public, so anyone could mint a token
# for any user with it. Every other setup needs OSAGO_WS_SECRET, at least this long.
DEV_SECRET = "osago-dev-secret"
MIN_SECRET_BYTES = 32


def _flag(raw: str | None, name: str) -> bool | None:
    """An on/off setting; unset (or empty) is None: the role's default."""
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: use 1 or 0")


@dataclass(frozen=True)
class Bind:
    """A host and TCP port to listen on (port 0 picks a free one)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _choice(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    if value.lower() not in allowed:
        raise ConfigError(f"OSAGO_LOG_FORMAT={value!r}: use one of {', '.join(allowed)}")
    return value.lower()


def parse_bind(value: str, *, name: str) -> Bind:
    """Parse ``host:port``; raise :class:`ConfigError` naming the setting."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}={value!r} is not host:port")
    return Bind(host, int(port))


@dataclass(frozen=True)
class Settings:
    """Everything a role needs to know, with the embedded defaults of ``osago --role all``."""

    database_url: str | None = None
    data_dir: Path = Path("/var/tmp/osago")
    broker_url: str = "memory://"
    api_bind: Bind = Bind("127.0.0.1", 8080)
    notifier_bind: Bind = Bind("127.0.0.1", 8081)
    metrics_bind: Bind | None = None  # /metrics, /healthz, /readyz; None: not served
    ops_page: bool = False  # /ops in the api (always with the demo's dev endpoints)
    insurers_bind: Bind = Bind("127.0.0.1", 8082)
    insurers_url: str | None = None
    insurer_codes: tuple[str, ...] | None = None  # None: every insurer of the file
    insurers_file: Path | None = None  # None: the bundled osago/insurers/insurers.toml
    deadline_seconds: float = 60.0
    late_window_seconds: float = 120.0  # answers after the deadline still shown, marked late
    api_token: str | None = None
    ws_secret: str = DEV_SECRET  # accepted only by the local demo (see runtime.check_role)
    # The api's address as insurers reach it: insurers in callback mode POST answers under it
    # (osago/insurers/callbacks.py); None: they are polled. `--role all`: its own api.
    callback_url: str | None = None
    # Where the api also serves insurers' callbacks, on a listener of their own (the lean
    # HTTP/1.1 server: osago/roles/_callbacks.py); None: on the api's port only.
    callbacks_bind: Bind | None = None
    # Each insurer's callback secret derives from this one; the public one only in the demo.
    callback_secret: str = DEV_SECRET
    callback_tolerance: float = 300.0  # a signature's timestamp may be this far from now
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 10.0
    ws_max_message: int = 4096  # bytes a client may send in one frame
    ws_sessions_per_user: int = 20
    ws_max_connections: int = 20_000  # sockets (handshakes included) one notifier holds at most
    ws_send_buffer: int = 256  # frames queued for a client before it is dropped as too slow
    ws_resume_window: float = 300.0  # how long a notifier keeps events for resuming clients
    # /dev/token and the demo page; None: on in `osago --role all` only. OSAGO_DEV_ENDPOINTS=0
    # turns them off there too.
    dev_endpoints: bool | None = None
    requests_queue: str = "/queue/osago.calculations"
    results_topic: str = "/topic/osago.results"
    worker_prefetch: int = 4000
    # The api answers 503 "overloaded" to new calculations while more jobs than this wait
    # for a worker (0: never). See osago/admission.py.
    max_waiting_jobs: int = 200
    # ... or while the oldest job it accepted has waited longer than this (seconds) to be
    # published to the broker (0: never).
    max_unpublished_wait: float = 0.5
    # ... and a share of them while a worker reports that its jobs waited (median over a
    # second) from the api's commit to being started more than half of this, all of them
    # past it (seconds; 0: never).
    max_pickup_wait: float = 1.0
    load_topic: str = "/topic/osago.load"  # where workers report it (osago/workload.py)
    relay_batch: int = 200
    relay_tick: float = 2.0  # the relay's safety tick (it wakes on NOTIFY)
    keeper_tick: float = 2.0  # the deadline keeper's safety tick (it sleeps until the next due)
    # A due calculation whose row another process holds (a settle, another keeper: both
    # take milliseconds): look again after this, not in a tight loop of two queries.
    keeper_busy_retry: float = 0.05
    outbox_lease: float = 30.0
    # The api publishes the jobs it commits within milliseconds; if it dies first, a relay
    # takes them after this lease (not the outbox's 30 s: that is half the user's minute).
    job_lease: float = 5.0
    shutdown_grace: float = 5.0
    # Acks, nacks, closes and disconnects on the way out: shielded, each bounded by this.
    cleanup_timeout: float = 3.0
    # Closed calculations are deleted this long after closing (30 days), by a sweep this often.
    retention: float = 30 * 86400.0
    retention_sweep: float = 600.0
    # Every database transaction, waiting for a pooled connection included, gets this long:
    # a database that hangs then answers 503 instead of holding every request.
    store_timeout: float = 5.0
    # Writes that may wait (outbox marks, submission ids) are gathered this long, then
    # written in one transaction.
    write_linger: float = 0.1
    # A worker reads its jobs' exchanges in batches: a message's jobs (a calculation's ten)
    # together, and, while messages come faster than one per this long, what came within
    # this long of the first (idle, at once). The user waits for it: an insurer's answer
    # time counts from the submit, which follows the read. Calm, 1 worker, alternating runs
    # (bench/ab.py): a plain 20 ms wait gave commit -> picked up p50 31-32 ms at 50/s
    # against 10-11 with none, for 0.6 ms a calculation less CPU; waiting only while busy,
    # 7 ms against 28 at 10/s and 23 against 29 at 50/s.
    load_linger: float = 0.02
    # Answers are settled (one statement, one ActiveMQ message for their events) in batches:
    # while they come faster than one per this long, what came within this long of the
    # first (idle, each at once). Calm 50/s, 2 workers, alternating runs: 0 s 31.8 and 30.6
    # ms of CPU a calculation, 10 ms 29.2 and 28.8, 20 ms 25.4 and 24.7; overhead p99 about
    # the same (the CPU saved is queueing saved), p50 10-15 ms more (bench/capacity.py).
    settle_linger: float = 0.02
    # The same for the api's settles of callbacks: there the user sees our latency alone (no
    # poll before it), and answers come fewer to a process (two insurers of ten at calm
    # 50/s), so a wait buys less company. Calm 50/s, 2 workers, alternating with 20 ms:
    # callback wait p50 8 and 9 ms against 29 and 26, api CPU 5.4 against 5.0 ms a
    # calculation (bench/ab.py).
    callback_settle_linger: float = 0.0
    # The timeline's trail (exchanges' steps, pushes) is gathered this long: support reads it
    # seconds later, and one batch a second costs a fraction of ten.
    trail_linger: float = 1.0
    # The collector's middle and full collections come only this often (osago/collector.py):
    # each walks every exchange in flight, about 180 ms in a worker at calm 50/s.
    gc_interval: float = 300.0
    # A worker's store calls ride out a database outage this long (about 5 min) before the
    # job is NACKed: a restart must not dead-letter jobs.
    store_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=60, initial=0.1, max_delay=10.0)
    )
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line, with calculation_id fields
    simulator_delays: Mapping[str, float] = field(default_factory=dict)
    simulator_profile: str = "realistic"  # or "calm": fixed delays, no failures
    simulator_seed: int = 0

    @property
    def embedded_database(self) -> bool:
        """True when no database URL was given and the embedded PostgreSQL is used."""
        return self.database_url is None

    @property
    def in_process_broker(self) -> bool:
        """True for ``memory://``: queues live inside this process only."""
        return self.broker_url.startswith("memory:")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``OSAGO_*`` variables; raise :class:`ConfigError` with the variable's name."""
        env = os.environ if env is None else env
        s = cls()
        get = env.get

        def number(name: str, default: float, *, allow_zero: bool = False) -> float:
            raw = get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number") from None
            if value < 0 or (value == 0 and not allow_zero):
                raise ConfigError(f"{name}={raw!r} must be positive")
            return value

        try:
            seed = int(get("OSAGO_SIMULATOR_SEED") or 0)
        except ValueError:
            raise ConfigError("OSAGO_SIMULATOR_SEED must be a whole number") from None
        codes = get("OSAGO_INSURERS")
        delays: dict[str, float] = {}
        for item in filter(None, (get("OSAGO_SIMULATOR_DELAYS") or "").split(",")):
            code, _, secs = item.partition("=")
            try:
                delays[code.strip()] = float(secs)
            except ValueError:
                raise ConfigError(
                    f"OSAGO_SIMULATOR_DELAYS item {item!r} is not code=seconds"
                ) from None
        return replace(
            s,
            database_url=get("OSAGO_DATABASE_URL") or None,
            data_dir=Path(get("OSAGO_DATA_DIR") or s.data_dir),
            broker_url=get("OSAGO_BROKER_URL") or s.broker_url,
            api_bind=parse_bind(get("OSAGO_API_BIND") or str(s.api_bind), name="OSAGO_API_BIND"),
            notifier_bind=parse_bind(
                get("OSAGO_NOTIFIER_BIND") or str(s.notifier_bind), name="OSAGO_NOTIFIER_BIND"
            ),
            insurers_bind=parse_bind(
                get("OSAGO_INSURERS_BIND") or str(s.insurers_bind), name="OSAGO_INSURERS_BIND"
            ),
            metrics_bind=parse_bind(bind, name="OSAGO_METRICS_BIND")
            if (bind := get("OSAGO_METRICS_BIND"))
            else s.metrics_bind,
            callbacks_bind=parse_bind(cb, name="OSAGO_CALLBACKS_BIND")
            if (cb := get("OSAGO_CALLBACKS_BIND"))
            else s.callbacks_bind,
            insurers_url=get("OSAGO_INSURERS_URL") or None,
            insurer_codes=tuple(c.strip() for c in codes.split(",") if c.strip())
            if codes
            else s.insurer_codes,
            insurers_file=Path(file) if (file := get("OSAGO_INSURERS_FILE")) else None,
            deadline_seconds=number("OSAGO_DEADLINE_SECONDS", s.deadline_seconds),
            late_window_seconds=number(
                "OSAGO_LATE_WINDOW_SECONDS", s.late_window_seconds, allow_zero=True
            ),
            api_token=get("OSAGO_API_TOKEN") or None,
            dev_endpoints=_flag(get("OSAGO_DEV_ENDPOINTS"), "OSAGO_DEV_ENDPOINTS"),
            ops_page=bool(_flag(get("OSAGO_OPS_PAGE"), "OSAGO_OPS_PAGE")),
            ws_sessions_per_user=int(number("OSAGO_WS_SESSIONS_PER_USER", s.ws_sessions_per_user)),
            ws_max_connections=int(number("OSAGO_WS_MAX_CONNECTIONS", s.ws_max_connections)),
            ws_ping_interval=number("OSAGO_WS_PING_INTERVAL", s.ws_ping_interval),
            ws_secret=get("OSAGO_WS_SECRET") or s.ws_secret,
            callback_url=get("OSAGO_CALLBACK_URL") or s.callback_url,
            callback_secret=get("OSAGO_CALLBACK_SECRET") or s.callback_secret,
            worker_prefetch=int(number("OSAGO_WORKER_PREFETCH", s.worker_prefetch)),
            max_waiting_jobs=int(
                number("OSAGO_MAX_WAITING_JOBS", s.max_waiting_jobs, allow_zero=True)
            ),
            max_unpublished_wait=number(
                "OSAGO_MAX_UNPUBLISHED_WAIT", s.max_unpublished_wait, allow_zero=True
            ),
            max_pickup_wait=number("OSAGO_MAX_PICKUP_WAIT", s.max_pickup_wait, allow_zero=True),
            settle_linger=number("OSAGO_SETTLE_LINGER", s.settle_linger, allow_zero=True),
            gc_interval=number("OSAGO_GC_INTERVAL", s.gc_interval),
            callback_settle_linger=number(
                "OSAGO_CALLBACK_SETTLE_LINGER", s.callback_settle_linger, allow_zero=True
            ),
            relay_tick=number("OSAGO_RELAY_TICK", s.relay_tick),
            keeper_tick=number("OSAGO_KEEPER_TICK", s.keeper_tick),
            store_timeout=number("OSAGO_STORE_TIMEOUT", s.store_timeout),
            retention=86400.0 * number("OSAGO_RETENTION_DAYS", s.retention / 86400.0),
            outbox_lease=number("OSAGO_OUTBOX_LEASE", s.outbox_lease),
            log_level=(get("OSAGO_LOG_LEVEL") or s.log_level).upper(),
            log_format=_choice(get("OSAGO_LOG_FORMAT"), ("text", "json"), s.log_format),
            requests_queue=get("OSAGO_REQUESTS_QUEUE") or s.requests_queue,
            results_topic=get("OSAGO_RESULTS_TOPIC") or s.results_topic,
            load_topic=get("OSAGO_LOAD_TOPIC") or s.load_topic,
            simulator_delays=delays,
            simulator_profile=get("OSAGO_SIMULATOR_PROFILE") or s.simulator_profile,
            simulator_seed=seed,
        )
