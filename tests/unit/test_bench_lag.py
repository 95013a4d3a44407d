"""The capacity bench's loop-lag figures (bench/capacity_lag.py): a step's wake-ups by
bucket, and their quantiles as bucket bounds."""

from __future__ import annotations

import math

from bench.capacity_lag import lag_delta, lag_line, lag_quantiles

INF = math.inf


def test_a_steps_quantiles_are_the_bounds_of_the_buckets_that_hold_them() -> None:
    before = {"workers": {0.001: 10.0, 0.01: 10.0, 0.1: 10.0, INF: 10.0}}
    # Over the step: 90 on time, 9 within 10 ms, 1 past the last bound.
    after = {"workers": {0.001: 100.0, 0.01: 109.0, 0.1: 109.0, INF: 110.0}}
    step = lag_delta(before, after)
    assert step == {"workers": {0.001: 90.0, 0.01: 99.0, 0.1: 99.0, INF: 100.0}}
    assert lag_quantiles(step["workers"], (0.5, 0.9, 0.99, 1.0)) == [0.001, 0.001, 0.01, INF]


def test_no_wake_up_has_no_quantile_and_the_line_names_each_group() -> None:
    assert lag_quantiles({0.001: 0.0, INF: 0.0}, (0.5,)) is None
    assert lag_quantiles({}, (0.5,)) is None
    line = lag_line({"lag": {"api": [0.001, 0.025], "workers": [0.005, INF]}})
    assert line.endswith("api <= 1/<= 25, workers <= 5/over 2.5 s")
    assert lag_line({"lag": {}}) == ""
