"""``osago dlq list | replay | purge``: the dead letters of the requests queue, over
OSAGO_BROKER_URL (ActiveMQ), with the reason each failed (kept by the worker, by message id).

    osago dlq list                  a line per message: id, calculation, insurers, reason, time
    osago dlq replay --all | ID...  back to the queue they came from, processed as usual
    osago dlq purge --all | ID...   deleted
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime

import trio

from osago.broker import Delivery, Outgoing
from osago.broker.stomp import StompBroker, open_stomp_broker
from osago.config import Settings
from osago.errors import ConfigError, PoisonMessage, StoreError
from osago.models import Job
from osago.storage import Store

__all__ = ["main"]

IDLE = 1.0  # a DLQ consumer that gets nothing for this long has seen every message


def dlq_name(queue: str) -> str:
    """ActiveMQ's per-queue DLQ as scripts/activemq.sh configures it."""
    return "/queue/DLQ." + queue.removeprefix("/queue/")


def _line(d: Delivery, reasons: dict[str, tuple[str, float]]) -> str:
    try:  # one job, or a calculation's (osago.outbox.outgoing): its insurers, comma-separated
        jobs = Job.decode_all(d.body)
        calc, insurer = str(jobs[0].calculation_id), ",".join(j.insurer for j in jobs)
    except PoisonMessage:
        calc, insurer = "?", "?"
    reason, _ = reasons.get(d.message_id, ("unknown (no reason recorded)", 0.0))
    ms = d.headers.get("timestamp", "")
    when = datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat() if ms.isdigit() else "?"
    return f"{d.message_id}\t{calc}\t{insurer}\t{reason}\t{when}"


async def _take(broker: StompBroker, dlq: str, ids: set[str] | None, *, resend: bool) -> int:
    """Consume the chosen messages (all when ``ids`` is None): resend each to where it came
    from first when ``resend``, then ack. The others go back to the DLQ unacked."""
    done = 0
    async with broker.subscribe(dlq, prefetch=1000) as sub:
        while True:
            with trio.move_on_after(IDLE) as idle:
                d = await sub.receive()
            if idle.cancelled_caught:
                return done
            if ids is not None and d.message_id not in ids:
                continue
            if resend:
                origin = d.headers.get("original-destination", "")
                if not origin.startswith("/queue/"):
                    continue  # nowhere known to send it: it stays
                await broker.send([Outgoing(origin, d.body)])
            await sub.ack(d)
            done += 1


async def run(settings: Settings, command: str, ids: Sequence[str], *, store: Store | None) -> int:
    """The command's output on stdout; returns the exit code."""
    dlq = dlq_name(settings.requests_queue)
    async with open_stomp_broker(settings.broker_url) as broker:
        if command == "list":
            letters = await broker.browse(dlq)
            reasons: dict[str, tuple[str, float]] = {}
            if store is not None and letters:
                with suppress(StoreError):  # else shown as unknown
                    reasons = await store.failures([d.message_id for d in letters])
            for d in letters:
                print(_line(d, reasons))
            return 0
        chosen = None if not ids else set(ids)
        n = await _take(broker, dlq, chosen, resend=command == "replay")
        print(f"{'replayed' if command == 'replay' else 'purged'} {n}")
        return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="osago dlq", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("command", choices=["list", "replay", "purge"])
    p.add_argument("ids", nargs="*", help="message ids (from `list`)")
    p.add_argument("--all", action="store_true", help="every message of the DLQ")
    args = p.parse_args(argv)
    if args.command != "list" and not (args.all or args.ids):
        p.error(f"{args.command} needs --all or message ids")
    return args


async def main(settings: Settings, args: argparse.Namespace) -> int:
    """Open the database when there is one (for the reasons) and run the command."""
    from osago.runtime import open_store

    if settings.in_process_broker:
        raise ConfigError("osago dlq needs OSAGO_BROKER_URL=stomp://… (ActiveMQ)")
    async with AsyncExitStack() as stack:
        store = None
        if args.command == "list" and settings.database_url:
            with suppress(StoreError):  # no reasons then, the list still
                store = await stack.enter_async_context(open_store(settings))
        return await run(settings, args.command, args.ids, store=store)
