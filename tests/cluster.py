"""Run osago roles as separate OS processes against the real services (tests and benches)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from osago.tokens import mint_token

READY = re.compile(r"role (\w+) ready: (.*)$")
SECRET = "e2e-secret-at-least-32-bytes-long-0123"
CALLBACK_SECRET = "e2e-callback-secret-at-least-32-bytes"


@dataclass
class Proc:
    """One osago process and everything it logged."""

    name: str
    process: trio.Process
    lines: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    ready: trio.Event = field(default_factory=trio.Event)

    def grep(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@dataclass
class Cluster:
    """Processes started by :func:`start_cluster`, with helpers to drive them."""

    env: dict[str, str]
    nursery: trio.Nursery
    procs: dict[str, Proc] = field(default_factory=dict)

    async def start(
        self, name: str, role: str, *, command: tuple[str, ...] | None = None, **env: str
    ) -> Proc:
        """Start ``osago --role role`` (or ``command`` followed by ``--role role``) and wait
        for its ready line."""
        full_env = {**self.env, **env}
        process = await trio.lowlevel.open_process(
            [*(command or (sys.executable, "-m", "osago")), "--role", role],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        proc = Proc(name, process)
        self.procs[name] = proc
        self.nursery.start_soon(self._read, proc)
        with trio.fail_after(60):
            await proc.ready.wait()
        return proc

    async def _read(self, proc: Proc) -> None:
        assert proc.process.stderr is not None
        buf = b""
        async for chunk in proc.process.stderr:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                proc.lines.append(line)
                m = READY.search(line)
                if m:
                    proc.urls = dict(kv.split("=", 1) for kv in m.group(2).split())
                    proc.ready.set()
        if not proc.ready.is_set():
            code = await proc.process.wait()
            raise RuntimeError(
                f"{proc.name} exited ({code}) before ready:\n" + "\n".join(proc.lines[-30:])
            )

    def url(self, name: str, key: str) -> str:
        return self.procs[name].urls[key]

    def token(self, user_id: str) -> str:
        return mint_token(SECRET, user_id, expires_at=time.time() + 600)

    @asynccontextmanager
    async def websocket(self, notifier: str, user_id: str) -> AsyncIterator[WebSocketConnection]:
        url = f"{self.url(notifier, 'notifier')}?token={self.token(user_id)}"
        async with open_websocket_url(url) as ws:
            with trio.fail_after(5):
                hello = json.loads(await ws.get_message())
            assert hello["type"] == "hello", hello
            yield ws

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{self.url('api', 'api')}/api/v1/calculations", json=body)
            assert r.status_code == 202, r.text
            return r.json()  # type: ignore[no-any-return]

    async def control(self, insurer: str, **behaviour: Any) -> None:
        async with httpx.AsyncClient() as http:
            r = await http.put(
                f"{self.url('insurers', 'insurers')}/_control/{insurer}", json=behaviour
            )
            assert r.status_code == 200, r.text

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.process.returncode is None:
                proc.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(10):
            for proc in self.procs.values():
                await proc.process.wait()
        for proc in self.procs.values():
            if proc.process.returncode is None:
                proc.kill()


async def receive_until_completed(
    ws: WebSocketConnection, calculation_id: str, *, within: float
) -> list[tuple[float, dict[str, Any]]]:
    """Frames for one calculation, with their arrival (wall) time, until ``completed``."""
    got = []
    with trio.fail_after(within):
        while True:
            event = json.loads(await ws.get_message())
            if event.get("calculation_id") != calculation_id:
                continue
            got.append((time.time(), event))
            if event["type"] == "completed":
                return got


async def refusal(url: str) -> tuple[int, str | None]:
    """The HTTP status and JSON ``error`` of a handshake: (101, None) when accepted.

    A raw handshake: trio-websocket's client leaves its socket open when refused."""
    where = urlsplit(url)
    request = (
        f"GET {where.path}{'?' + where.query if where.query else ''} HTTP/1.1\r\n"
        f"Host: {where.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(where.hostname or "", where.port or 80)
        async with stream:
            await stream.send_all(request.encode())
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith((b"}", b" 101")):
                if reply.startswith(b"HTTP/1.1 101 "):
                    return 101, None
                chunk = await stream.receive_some()
                if not chunk:
                    break
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def all_role_env(**settings: str) -> dict[str, str]:
    """The environment of an `osago --role all` test process: no OSAGO_* from outside,
    free ports, the test secret, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSAGO_")}
    env.update(
        OSAGO_API_BIND="127.0.0.1:0",
        OSAGO_NOTIFIER_BIND="127.0.0.1:0",
        OSAGO_INSURERS_BIND="127.0.0.1:0",
        OSAGO_CALLBACKS_BIND="127.0.0.1:0",
        OSAGO_WS_SECRET=SECRET,
        OSAGO_CALLBACK_SECRET=CALLBACK_SECRET,
        PYTHONWARNINGS="ignore",
        **settings,
    )
    return env


@asynccontextmanager
async def start_cluster(
    *,
    database_url: str,
    broker_url: str,
    suffix: str,
    deadline: float,
    insurers: str,
    delays: str,
    workers: int = 2,
    notifiers: int = 2,
    extra_env: dict[str, str] | None = None,
    callbacks: bool = True,
) -> AsyncIterator[Cluster]:
    """Simulator, api (with relay), N workers and N notifiers, each its own process.

    ``callbacks``: insurers in callback mode (the insurers file's) call the api back, on
    its callbacks listener (OSAGO_CALLBACKS_BIND, as a deployment exposes it to insurers);
    else the workers poll them (no OSAGO_CALLBACK_URL)."""
    env = {
        **os.environ,
        "OSAGO_DATABASE_URL": database_url,
        "OSAGO_BROKER_URL": broker_url,
        "OSAGO_REQUESTS_QUEUE": f"/queue/osago.test.{suffix}",
        "OSAGO_RESULTS_TOPIC": f"/topic/osago.test.{suffix}",
        "OSAGO_LOAD_TOPIC": f"/topic/osago.test.load.{suffix}",
        "OSAGO_DEADLINE_SECONDS": str(deadline),
        "OSAGO_INSURERS": insurers,
        "OSAGO_SIMULATOR_DELAYS": delays,
        "OSAGO_WS_SECRET": SECRET,
        "OSAGO_CALLBACK_SECRET": CALLBACK_SECRET,
        "OSAGO_API_BIND": "127.0.0.1:0",
        "OSAGO_NOTIFIER_BIND": "127.0.0.1:0",
        "OSAGO_INSURERS_BIND": "127.0.0.1:0",
        "OSAGO_CALLBACKS_BIND": "127.0.0.1:0",
        "PYTHONWARNINGS": "ignore",
        **(extra_env or {}),
    }
    async with trio.open_nursery() as nursery:
        cluster = Cluster(env, nursery)
        try:
            sim = await cluster.start("insurers", "insurers")
            cluster.env["OSAGO_INSURERS_URL"] = sim.urls["insurers"]
            api = await cluster.start("api", "api")
            if callbacks:
                cluster.env["OSAGO_CALLBACK_URL"] = api.urls["callbacks"]
            for i in range(1, workers + 1):
                await cluster.start(f"worker{i}", "worker")
            for i in range(1, notifiers + 1):
                await cluster.start(f"notifier{i}", "notifier")
            yield cluster
        finally:
            with trio.CancelScope(shield=True):
                await cluster.stop()
            nursery.cancel_scope.cancel()
