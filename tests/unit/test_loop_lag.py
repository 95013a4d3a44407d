"""The loop's lag (osago/metrics/_lag.py): how late each wake-up came, on Trio's clock."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osago.metrics import Metrics, watch_loop_lag


async def test_a_loop_held_past_a_wake_up_is_observed_once_as_that_lateness(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_loop_lag, seen.append, interval=0.1))
        await trio.sleep(0.25)  # wake-ups due at 0.1 and 0.2 come on time
        # The loop held for half a second without a checkpoint (a busy task, a collection):
        # the wake-up due at 0.3 comes at 0.75.
        autojump_clock.jump(0.5)
        await trio.sleep(0.33)  # then 0.85, 0.95 and 1.05: on time again, not all at once
        nursery.cancel_scope.cancel()
    assert seen == pytest.approx([0.0, 0.0, 0.45, 0.0, 0.0, 0.0], abs=1e-9)


async def test_every_role_can_export_its_lag_as_a_histogram(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    with trio.move_on_after(1.05):
        await watch_loop_lag(metrics.loop_lag.observe, interval=0.1)
    families = {
        f.name: f
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    samples = {s.name: s.value for s in families["osago_loop_lag_seconds"].samples if not s.labels}
    assert samples["osago_loop_lag_seconds_count"] == 10
    assert samples["osago_loop_lag_seconds_sum"] == pytest.approx(0.0, abs=1e-9)
