"""A private PostgreSQL cluster that a chaos test may stop, restart and kill at will (the
machine's own serves every other test). Debian's binaries, run as the postgres user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import trio

__all__ = ["PrivatePostgres", "private_postgres"]


def _bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not versions:
        raise RuntimeError("no PostgreSQL binaries in /usr/lib/postgresql")
    return versions[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """``url`` stays valid across restarts (same port)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _as_postgres(self, *args: str) -> None:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        await trio.run_process([*runner, *args], stdout=subprocess.DEVNULL)

    async def init(self) -> None:
        self.root.mkdir(mode=0o755, parents=True)
        shutil.chown(self.root, "postgres") if os.geteuid() == 0 else None
        await self._as_postgres(
            str(_bin() / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"
        )

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._as_postgres(
            str(_bin() / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "log"), "-w", "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean restart's first half; ``immediate``: a crash."""
        await self._as_postgres(str(_bin() / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop")


@asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """Started; stopped and deleted afterwards."""
    pg = PrivatePostgres(Path("/var/tmp") / f"osago-chaos-pg-{uuid.uuid4().hex[:8]}")
    await pg.init()
    await pg.start()
    try:
        yield pg
    finally:
        with trio.CancelScope(shield=True):
            with suppress(subprocess.CalledProcessError):  # already down
                await pg.stop("immediate")
            shutil.rmtree(pg.root, ignore_errors=True)
