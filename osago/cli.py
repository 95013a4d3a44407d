"""``osago --role api|worker|notifier|insurers|all`` and ``osago token USER_ID``."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

import trio

from osago import logs
from osago.collector import collect_on_clock, settle_collector
from osago.config import Settings, parse_bind
from osago.domain.dates import moscow_today
from osago.errors import BrokerError, ConfigError, StoreError
from osago.runtime import ROLES, check_role, run_role
from osago.tokens import mint_token

__all__ = ["main"]

log = logging.getLogger("osago")


def _role_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="osago",
        description="OSAGO quote aggregator. Settings come from OSAGO_* variables; flags win.",
        epilog="Also: osago token USER_ID [--ttl SECONDS] prints a signed WebSocket token.",
    )
    p.add_argument("--role", choices=ROLES, default="all", help="what this process runs")
    p.add_argument("--database-url", help="PostgreSQL URL (default: embedded PostgreSQL)")
    p.add_argument("--broker-url", help="stomp://host:port or memory:// (default)")
    p.add_argument("--api-bind", help="host:port of the REST api (127.0.0.1:8080)")
    p.add_argument("--notifier-bind", help="host:port of the WebSocket notifier (127.0.0.1:8081)")
    p.add_argument("--insurers-bind", help="host:port of the insurer simulator (127.0.0.1:8082)")
    p.add_argument("--insurers-url", help="base URL of the insurers (default: the simulator)")
    p.add_argument("--deadline-seconds", type=float, help="how long a user waits (60)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (INFO)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env()
    return s.with_overrides(
        database_url=args.database_url,
        broker_url=args.broker_url,
        api_bind=args.api_bind and parse_bind(args.api_bind, name="--api-bind"),
        notifier_bind=args.notifier_bind and parse_bind(args.notifier_bind, name="--notifier-bind"),
        insurers_bind=args.insurers_bind and parse_bind(args.insurers_bind, name="--insurers-bind"),
        insurers_url=args.insurers_url,
        deadline_seconds=args.deadline_seconds,
        log_level=args.log_level and args.log_level.upper(),
    )


def _token(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="osago token", description="Print a WebSocket token.")
    p.add_argument("user_id")
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (3600)")
    args = p.parse_args(argv)
    import time

    settings = Settings.from_env()
    print(mint_token(settings.ws_secret, args.user_id, expires_at=time.time() + args.ttl))
    return 0


def _dlq(argv: Sequence[str]) -> int:
    from osago import dlq

    args = dlq.parse(argv)
    try:
        return trio.run(dlq.main, Settings.from_env(), args)
    except BaseException as exc:
        line = _explained(exc, "dlq", Settings())
        if line is None:
            raise
        print(f"osago: {line}", file=sys.stderr)
        return 2


async def _serve(role: str, settings: Settings) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as outer:

        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if stop.is_set():
                        log.warning("second signal: stopping now")
                        outer.cancel_scope.cancel()
                        return
                    log.info(
                        "%s: draining (signal again to stop at once)", signal.Signals(signum).name
                    )
                    stop.set()

        outer.start_soon(on_signals)
        async with trio.open_nursery() as roles:
            urls = await roles.start(run_role, role, settings, stop)
            settle_collector()
            outer.start_soon(collect_on_clock, settings.gc_interval)
            if role == "all":
                _banner(urls)
            # Always printed, whatever the log level: supervisors and tests wait for this line.
            ready = " ".join(f"{k}={v}" for k, v in urls.items())
            print(f"osago: role {role} ready: {ready}", file=sys.stderr, flush=True)
        # Every role has drained: nothing is left for a signal to stop.
        outer.cancel_scope.cancel()


def _binds(role: str, settings: Settings) -> str:
    """The addresses ``role`` listens on, as settings name them."""
    named = {
        "OSAGO_API_BIND": (settings.api_bind, role in ("api", "all")),
        "OSAGO_NOTIFIER_BIND": (settings.notifier_bind, role in ("notifier", "all")),
        "OSAGO_INSURERS_BIND": (settings.insurers_bind, role in ("insurers", "all")),
        "OSAGO_METRICS_BIND": (settings.metrics_bind, settings.metrics_bind is not None),
        "OSAGO_CALLBACKS_BIND": (
            settings.callbacks_bind,
            settings.callbacks_bind is not None and role in ("api", "all"),
        ),
    }
    return ", ".join(f"{name}={bind}" for name, (bind, used) in named.items() if used)


def _explained(exc: BaseException, role: str, settings: Settings) -> str | None:
    """One line for a failure a person can act on (bad settings, a service away, a port in
    use), found anywhere in an exception group; None for a defect (then: the traceback)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (line := _explained(inner, role, settings)) is not None:
                return line
        return None
    if isinstance(exc, ConfigError | BrokerError | StoreError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"cannot listen: address already in use (--role {role}: {_binds(role, settings)})"
    return None


def _banner(urls: dict[str, str]) -> None:
    api = urls.get("api", "")
    start = (moscow_today(time.time()) + timedelta(days=7)).isoformat()
    print(
        f"osago is up (embedded defaults unless OSAGO_* says otherwise)\n"
        f"  REST api     {api}/api/v1/calculations\n"
        f"  WebSocket    {urls.get('notifier')}?token=$(osago token user-42)\n"
        f"  insurers     {urls.get('insurers')}/_control\n"
        f"Try: curl -s -XPOST {api}/api/v1/calculations -H 'content-type: application/json' "
        f"""-d '{{"user_id":"user-42","policy":{{"start_date":"{start}","period_months":12}},"""
        """"vehicle":{"category":"B","engine_power_hp":150},"owner":{"region_kladr":"""
        """"7700000000000"},"drivers":[{"birth_date":"1985-04-12","""
        """"experience_start_date":"2005-06-01"}]}'""",
        f"\n  OpenAPI      {api}/api/v1/openapi.json",
        flush=True,
    )


def _raise_fd_limit() -> None:
    """A notifier holds a socket per session: allow as many files as the hard limit does."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``osago`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return _token(argv[1:])
    if argv[:1] == ["dlq"]:
        return _dlq(argv[1:])
    args = _role_parser().parse_args(argv)
    settings = Settings()  # until the environment is read: what the message can name
    try:
        settings = _settings(args)
        check_role(args.role, settings)
        logs.configure(settings.log_level, settings.log_format)
        _raise_fd_limit()
        trio.run(_serve, args.role, settings)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        line = _explained(exc, args.role, settings)
        if line is None:
            raise
        print(f"osago: {line}", file=sys.stderr)
        return 2
    return 0
