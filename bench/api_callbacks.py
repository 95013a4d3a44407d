"""CPU per insurer callback in the api: the api's app on Hypercorn (or, with ``--own-listener``,
the callbacks' own listener, OSAGO_CALLBACKS_BIND: the lean HTTP/1.1 server) and a keep-alive
client, in one process, on the memory store and broker.

Each request is a correctly signed final answer for an exchange the store does not know, so
the api verifies it, reads the JSON, looks the exchange up and answers 404: the whole path but
the settle. The process's CPU time per request is printed; the client's share is the same
for any version of the api, so two versions compare by running this in each one's tree
(the code imported is the current directory's):

    .venv/bin/python bench/api_callbacks.py [--requests 6000] [--concurrency 20] [--own-listener]
    (cd /tmp/osago-ab-<sha> && /work/main/.venv/bin/python /work/main/bench/api_callbacks.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid

import trio

sys.path.insert(0, os.getcwd())

from hypercorn.trio import serve

from osago.broker.memory import open_memory_broker
from osago.config import Bind, Settings
from osago.insurers.callbacks import SIGNATURE_HEADER, insurer_secret, sign
from osago.insurers.http11 import Http11Pool
from osago.roles._callbacks import callback_handler, serve_callbacks
from osago.roles.api import create_app
from osago.web.server import hypercorn_config
from tests.factories import api_deps

SETTINGS = Settings(callback_url="http://127.0.0.1:1")


async def main(requests: int, concurrency: int, own_listener: bool) -> None:
    secret = insurer_secret(SETTINGS.callback_secret, "aurora")
    async with open_memory_broker() as broker, trio.open_nursery() as nursery:
        deps = api_deps(SETTINGS, broker)
        if own_listener:
            handle = callback_handler(deps, None)
            base = await nursery.start(serve_callbacks, handle, Bind("127.0.0.1", 0))
        else:
            app = create_app(deps)
            config = hypercorn_config("127.0.0.1:0", 1.0)
            binds = await nursery.start(
                lambda task_status: serve(app, config, task_status=task_status)
            )
            base = binds[0]
        pool = Http11Pool(base)
        statuses: dict[int, int] = {}

        async def one() -> None:
            answer = {"status": "ready", "correlation_id": str(uuid.uuid4()), "premium": 1.0}
            body = json.dumps(answer).encode()
            headers = [
                (SIGNATURE_HEADER, sign(secret, body, time.time())),
                ("content-type", "application/json"),
            ]
            r = await pool.request("POST", "/api/v1/callbacks/aurora", headers=headers, body=body)
            statuses[r.status] = statuses.get(r.status, 0) + 1

        async def client(n: int) -> None:
            for _ in range(n):
                await one()

        for _ in range(200):  # warm-up
            await one()
        statuses.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as clients:
            for _ in range(concurrency):
                clients.start_soon(client, requests // concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        done = sum(statuses.values())
        where = "own listener" if own_listener else "api's port (Hypercorn)"
        print(
            f"{where}: {done} callbacks answered {statuses}: {cpu / done * 1e6:.0f} us of CPU"
            f" each (api and client in one process), {done / wall:.0f}/s"
        )
        await pool.aclose()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--own-listener", action="store_true", help="OSAGO_CALLBACKS_BIND's")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # a refusal is logged each time: not what this measures
    trio.run(main, args.requests, args.concurrency, args.own_listener)
