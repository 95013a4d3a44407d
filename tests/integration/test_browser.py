"""The demo page in headless Chromium (Debian's package, driven over the DevTools protocol):
submit, offers before the deadline, the stub when every insurer is slow, a socket dropped
mid-run with each offer shown exactly once, and validation messages next to their fields."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import pytest
import trio

from tests.browser import CHROMIUM, Page, chromium_page
from tests.cluster import Cluster, all_role_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="chromium is installed by scripts/test",
    ),
]


@pytest.fixture
async def page(pg_url: str) -> AsyncIterator[tuple[Page, Cluster]]:
    env = all_role_env(
        OSAGO_DATABASE_URL=pg_url,
        OSAGO_DEADLINE_SECONDS="8",
        OSAGO_INSURERS="aurora,borealis,cedar",
        OSAGO_SIMULATOR_DELAYS="aurora=1.0,borealis=2.5,cedar=4.0",
    )
    async with trio.open_nursery() as nursery:
        cluster = Cluster(env, nursery)
        try:
            proc = await cluster.start("all", "all")
            cluster.procs["insurers"] = proc
            async with chromium_page() as p:
                await p.goto(proc.urls["api"] + "/")
                await p.js("osago.waitFor(() => osago.connected, 10000)")
                yield p, cluster
        finally:
            with trio.CancelScope(shield=True):
                await cluster.stop()


async def test_offers_appear_and_a_dropped_socket_loses_and_repeats_nothing(
    page: tuple[Page, Cluster],
) -> None:
    p, _ = page
    await p.js("osago.reconnectDelay = 2500")  # long enough to miss borealis (t = 2.5 s)
    await p.js("document.querySelector('#submit').click()")
    await p.js("osago.waitFor(() => document.querySelectorAll('.offer').length >= 1, 5000)")
    await p.js("osago.dropSocket()")
    await p.js("osago.waitFor(() => !osago.connected, 5000)")
    await p.js("osago.waitFor(() => osago.current.completed, 15000)")
    insurers = await p.js("[...document.querySelectorAll('.offer')].map(e => e.dataset.insurer)")
    assert sorted(insurers) == ["aurora", "borealis", "cedar"]
    applied = await p.js("osago.applied")
    assert len(applied) == len(set(applied)) == 4  # 3 offers + completed, each once
    assert await p.js("osago.connected") is True
    prices = await p.js("[...document.querySelectorAll('.offer .price')].map(e => e.textContent)")
    assert len(prices) == 3
    assert "finished" in await p.js("document.querySelector('#countdown').textContent")


async def test_the_stub_when_every_insurer_is_slow(page: tuple[Page, Cluster]) -> None:
    p, cluster = page
    for code in ("aurora", "borealis", "cedar"):
        await cluster.control(code, delay=60)
    await p.js("document.querySelector('#submit').click()")
    await p.js("osago.waitFor(() => document.querySelector('#stubcard'), 15000)")
    text = await p.js("document.querySelector('#stubcard').textContent")
    assert "No insurer answered in time" in text
    assert await p.js("document.querySelectorAll('.offer').length") == 0


async def test_validation_messages_next_to_their_fields(page: tuple[Page, Cluster]) -> None:
    p, _ = page
    await p.js(
        "document.querySelector('[name=hp]').value = '0';"
        "document.querySelector('[name=start_date]').value = '2020-01-01';"
        "document.querySelector('#submit').click()"
    )
    await p.js(
        "osago.waitFor(() => document.querySelector("
        "'.err[data-for=\"vehicle.engine_power_hp\"]').textContent, 5000)"
    )
    hp = await p.js(
        "document.querySelector('.err[data-for=\"vehicle.engine_power_hp\"]').textContent"
    )
    start = await p.js("document.querySelector('.err[data-for=\"policy.start_date\"]').textContent")
    assert "between" in hp
    assert start == ""  # cross-field rules run only once every field is well-formed
    assert await p.js("document.querySelector('[name=hp]').classList.contains('invalid')")


async def test_what_insurers_send_is_shown_as_text_never_run(page: tuple[Page, Cluster]) -> None:
    """Issue 10: the page put insurer names and messages into innerHTML."""
    p, _ = page
    hostile = "<img src=x onerror=window.pwned=1>"
    await p.js(f"window.h = {json.dumps(hostile)}; true")
    await p.js(
        "osago.current = {offers: new Map([['x', {insurer: 'x', insurer_name: h,"
        " premium: 1000, message: h}]]), nooffers: new Map([['y', {insurer: 'y',"
        " insurer_name: h, outcome: 'failed', message: h}]]), completed: null};"
        " render(); true"
    )
    await trio.sleep(0.3)  # an image that failed to load would have run its handler by now
    assert await p.js("document.querySelectorAll('#offers img, #nooffers img').length") == 0
    assert await p.js("window.pwned === undefined") is True
    assert hostile in await p.js("document.querySelector('#offers .name').textContent")


async def test_the_operations_page_shows_queues_breakers_and_recent_stubs(
    page: tuple[Page, Cluster],
) -> None:
    """Issue 12: live queue depth and job wait, each insurer's breaker and work in flight,
    recent stubs; `--role all` is one process, so the page sees every role's figures."""
    p, cluster = page
    for code in ("aurora", "borealis", "cedar"):
        await cluster.control(code, delay=30)  # nobody answers in time: the stub
    await p.js("document.querySelector('#submit').click()")
    await p.js("osago.waitFor(() => osago.current.completed, 15000)")
    await p.goto(cluster.procs["all"].urls["api"] + "/ops")
    wait = "new Promise((ok, no) => { const t0 = Date.now(); (function f() {"
    wait += " if (document.querySelectorAll('.stub').length) return ok(true);"
    wait += " if (Date.now() - t0 > 10000) return no('no stub shown'); setTimeout(f, 100); })(); })"
    await p.js(wait)
    rows = await p.js(
        "[...document.querySelectorAll('#insurers tbody tr')]"
        ".map(r => [r.dataset.insurer, r.cells[1].textContent, r.cells[2].textContent])"
    )
    # The stubbed calculation's insurers still work through the late window: one exchange
    # each in flight, whose jobs' message (one, the calculation's) is unacked (ActiveMQ
    # counts those in the queue's size too).
    assert sorted(rows) == [[c, "closed", "1"] for c in ("aurora", "borealis", "cedar")]
    assert await p.js("document.querySelector('#depth').textContent") == "1"
    # The process's loop lag since its start: a figure (ms or s), not the empty dash.
    assert (await p.js("document.querySelector('#lag').textContent")).endswith("s")
    stub = await p.js("document.querySelector('.stub').textContent")
    assert cluster.procs["all"].grep(stub.split(" · ")[1])  # the calculation the page names
