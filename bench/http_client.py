"""CPU per insurer request: httpx (one shared pool, as before; one pool per insurer) against
our lean HTTP/1.1 client (osago/insurers/http11.py), on the same requests.

The simulator runs as its own process (``osago --role insurers``); this process only makes
requests, so its CPU time (process_time) is the client's cost. CONCURRENCY requests are in
flight at once, spread over the 10 insurers, as a busy worker has them.

    .venv/bin/python bench/http_client.py [--requests 6000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from osago.insurers.http11 import Http11Pool
from tests.factories import MINIMAL_BODY, validated

CODES = ("aurora", "borealis", "cedar", "delta", "ember")
CODES += ("fjord", "granite", "harbor", "iris", "juniper")
JSON = {"content-type": "application/json"}
Call = Callable[[str, str, bytes | None], Awaitable[tuple[int, bytes]]]


def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "OSAGO_INSURERS_BIND": "127.0.0.1:0", "OSAGO_SIMULATOR_PROFILE": "calm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "osago", "--role", "insurers"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode()
        if "ready:" in line:
            return proc, line.split("insurers=", 1)[1].split()[0]
    raise RuntimeError("simulator did not start")


async def run(name: str, call: Call, base: str, n: int, concurrency: int) -> None:
    request = json.dumps(validated(MINIMAL_BODY)).encode()
    ids: list[tuple[str, str]] = []
    for i in range(len(CODES) * 2):  # a few calculations per insurer to poll
        code = CODES[i % len(CODES)]
        body = json.dumps({"correlation_id": str(uuid.uuid4()), "request": json.loads(request)})
        status, answer = await call("POST", f"{base}/{code}/calculations", body.encode())
        assert status in (200, 201), answer
        ids.append((code, json.loads(answer)["id"]))
    done = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()

    async def worker(k: int) -> None:
        nonlocal done
        i = k
        while i < n:
            code, remote = ids[i % len(ids)]
            if i % 3 == 0:  # a third submits (POST with a body), the rest polls
                body = json.dumps({"correlation_id": str(uuid.uuid4()), "request": {}}).encode()
                await call("POST", f"{base}/{code}/calculations", body)
            else:
                await call("GET", f"{base}/{code}/calculations/{remote}", None)
            done += 1
            i += concurrency

    async with trio.open_nursery() as nursery:
        for k in range(concurrency):
            nursery.start_soon(worker, k)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"{name:<28} {done} requests  {1e6 * cpu / done:7.0f} µs CPU/request  "
        f"{done / wall:7.0f} requests/s (the simulator shares the cores)"
    )


async def main(n: int, concurrency: int) -> None:
    proc, base = start_simulator()
    try:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=None, limits=limits) as shared:

            async def via_shared(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
                r = await shared.request(method, url, content=body, headers=JSON if body else None)
                return r.status_code, r.content

            await run("httpx, one pool of 200", via_shared, base, n, concurrency)

        per = {c: httpx.AsyncClient(timeout=None) for c in CODES}

        async def via_per(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
            code = url.removeprefix(base).split("/")[1]
            r = await per[code].request(method, url, content=body, headers=JSON if body else None)
            return r.status_code, r.content

        await run("httpx, a pool per insurer", via_per, base, n, concurrency)
        for c in per.values():
            await c.aclose()

        pool = Http11Pool(base)

        async def via_lean(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
            headers = [("content-type", "application/json")] if body else []
            r = await pool.request(
                method, url.removeprefix(base) or "/", headers=headers, body=body or b""
            )
            return r.status, r.body

        await run("http11 (lean, own framing)", via_lean, base, n, concurrency)
        await pool.aclose()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=100)
    a = parser.parse_args()
    trio.run(main, a.requests, a.concurrency)
