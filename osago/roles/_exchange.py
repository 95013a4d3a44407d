"""One insurer exchange: submit (once), then poll on a drift-free schedule until the answer.

The caller owns the overall deadline (a cancel scope at the calculation's deadline); each call
gets its own ``call_timeout`` scope here. Transient failures (timeouts, InsurerUnavailable)
are retried at the next poll tick -- both calls are idempotent: the submit carries the
correlation id as its idempotency key.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from osago.clock import Clock
from osago.config import InsurerConfig
from osago.errors import InsurerRejected, InsurerUnavailable
from osago.insurers import InsurerClient, Quote
from osago.models import Exchange, Outcome, OutcomeKind
from osago.storage import Store

__all__ = ["run_exchange"]

log = logging.getLogger("osago.worker")


async def _call_until_ok(insurer: InsurerConfig, label: str, call: Any, *args: Any) -> Any:
    """Call until it succeeds, retrying transient errors once per poll interval."""
    next_try = trio.current_time()
    while True:
        try:
            with trio.fail_after(insurer.call_timeout):
                return await call(insurer, *args)
        except (InsurerUnavailable, trio.TooSlowError) as exc:
            log.info("insurer %s: %s failed (%s), retrying", insurer.code, label, exc)
        next_try = max(next_try + insurer.poll_interval, trio.current_time())
        await trio.sleep_until(next_try)


async def run_exchange(
    ex: Exchange, insurer: InsurerConfig, client: InsurerClient, store: Store, clock: Clock
) -> Outcome:
    """Run (or resume) ``ex`` to its outcome; raises InsurerRejected on a protocol breach."""
    remote_id = ex.remote_id
    if remote_id is None:
        remote_id = await _call_until_ok(
            insurer, "submit", client.submit, ex.correlation_id, ex.request
        )
        await store.record_submission(ex.correlation_id, remote_id)
        log.info(
            "calculation %s: submitted to %s as %s", ex.calculation_id, insurer.code, remote_id
        )
    else:
        log.info(
            "calculation %s: resuming %s poll of %s", ex.calculation_id, insurer.code, remote_id
        )
    next_poll = trio.current_time()
    while True:
        quote: Quote | None = await _call_until_ok(insurer, "poll", client.poll, remote_id)
        if quote is not None:
            break
        next_poll = max(next_poll + insurer.poll_interval, trio.current_time())
        await trio.sleep_until(next_poll)
    received_at = clock.now()
    if quote.correlation_id != ex.correlation_id:
        raise InsurerRejected(
            insurer.code, f"answer for {quote.correlation_id}, expected {ex.correlation_id}"
        )
    if quote.status == "ready":
        return Outcome(
            OutcomeKind.OFFER,
            received_at=received_at,
            premium=quote.premium,
            ready_at=quote.ready_at,
        )
    return Outcome(
        OutcomeKind.REFUSED, received_at=received_at, message=quote.message, ready_at=quote.ready_at
    )
