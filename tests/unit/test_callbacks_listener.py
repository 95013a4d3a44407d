"""Insurers' callbacks on a listener of their own (OSAGO_CALLBACKS_BIND): the same handler as
on the api's port, on the lean HTTP/1.1 server, and nothing else served there."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import httpx
import trio

from osago.broker.memory import open_memory_broker
from osago.config import Bind
from osago.insurers.callbacks import SIGNATURE_HEADER, insurer_secret, sign
from osago.roles import api
from osago.roles._replies import MAX_BODY
from osago.storage import MemoryStore
from tests.factories import MINIMAL_BODY, api_deps
from tests.unit.test_callbacks import CORE, MASTER, SETTINGS

LOCAL = Bind("127.0.0.1", 0)


def _signed(answer: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(answer).encode()
    signature = sign(insurer_secret(MASTER, "aurora"), body, time.time())
    return body, {SIGNATURE_HEADER: signature, "content-type": "application/json"}


async def test_callbacks_are_served_on_their_own_listener_and_share_the_replay_guard() -> None:
    store = MemoryStore()
    settings = replace(SETTINGS, api_bind=LOCAL, callbacks_bind=LOCAL)
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        deps = api_deps(settings, broker, store=store)
        served: api.Served = await nursery.start(api.run, deps)
        assert served.callbacks is not None
        assert served.callbacks != served.api
        async with httpx.AsyncClient() as http:
            url = f"{served.callbacks}/api/v1/callbacks/aurora"
            posted = await http.post(
                f"{served.api}/api/v1/calculations", json=MINIMAL_BODY, headers=CORE
            )
            assert posted.status_code == 202
            aurora = next(x for x in store.exchanges.values() if x.insurer == "aurora")
            ready = {
                "status": "ready",
                "correlation_id": str(aurora.correlation_id),
                "premium": 7777.0,
            }
            body, headers = _signed(ready)

            r = await http.post(url, content=body, headers=headers)
            assert (r.status_code, r.json()) == (200, {"status": "accepted"})
            assert aurora.outcome is not None
            assert aurora.outcome.premium == 7777.0

            # The same signed callback through the api's port: one guard saw it already.
            again = await http.post(
                f"{served.api}/api/v1/callbacks/aurora", content=body, headers=headers
            )
            assert (again.status_code, again.json()["error"]) == (409, "replayed")

            # Refusals come from the same handler, as JSON.
            unsigned = await http.post(url, content=body)
            assert (unsigned.status_code, unsigned.json()["error"]) == (401, "missing_signature")
            huge = await http.post(url, content=b"x" * (MAX_BODY + 1), headers=headers)
            assert (huge.status_code, huge.json()["error"]) == (413, "too_large")

            # Nothing but callbacks on this port, and a health check for what fronts it.
            health = await http.get(f"{served.callbacks}/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            read = await http.get(url)
            assert (read.status_code, read.json()["error"]) == (405, "method_not_allowed")
            assert read.headers["allow"] == "POST"
            for path in ("/api/v1/calculations", "/api/v1/callbacks/", "/api/v1/callbacks/a/b"):
                other = await http.post(f"{served.callbacks}{path}", json=MINIMAL_BODY)
                assert (other.status_code, other.json()["error"]) == (404, "not_found")
        deps.stop.set()
