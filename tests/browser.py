"""Headless Chromium (Debian's package) driven over the DevTools protocol with trio-websocket.

No test tool downloads a browser: scripts/test installs `chromium` from Debian.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


class Page:
    """One tab: navigate, evaluate JavaScript (awaiting promises), take screenshots."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> Any:
        mid = next(self._ids)
        await self._ws.send_message(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self._ws.get_message())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)
        await self.js(
            "new Promise(r => document.readyState === 'complete' ? r() : "
            "addEventListener('load', () => r()))"
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await trio.Path(path).write_bytes(base64.b64decode(shot["data"]))


async def _devtools_port(stderr: trio.abc.ReceiveStream, task_status: trio.TaskStatus[int]) -> None:
    """Read Chromium's stderr: report its DevTools port, then keep draining the pipe."""
    buf = b""
    started = False
    async for chunk in stderr:
        if not started:
            buf += chunk
            m = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", buf)
            if m:
                task_status.started(int(m.group(1)))
                started = True
    if not started:
        raise RuntimeError(f"chromium exited: {buf.decode(errors='replace')[-500:]}")


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    """A fresh headless Chromium with one blank tab."""
    profile = tempfile.mkdtemp(prefix="osago-chromium-")
    process = await trio.lowlevel.open_process(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                port = await nursery.start(_devtools_port, process.stderr)
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with open_websocket_url(
                page["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024
            ) as ws:
                yield Page(ws)
            nursery.cancel_scope.cancel()
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)
