"""ActiveMQ master/slave on a shared store, as its users run HA (issue 11): every role is given
both brokers (failover:(...)), the master is killed under load, the slave takes the store's
lock and opens its ports, and every role fails over: nothing is lost, no role restarts."""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.chaos.harness import API_TOKEN, Load, clients, dead_letters, verify
from tests.chaos.postgres import free_port
from tests.cluster import start_cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]

ACTIVEMQ = str(Path(__file__).resolve().parents[2] / "scripts" / "activemq.sh")
DEADLINE = 6.0


class Pair:
    """Two brokers on one KahaDB directory; the first started is the master."""

    def __init__(self) -> None:
        root = Path("/var/tmp") / f"osago-ha-{uuid.uuid4().hex[:8]}"
        self.root = root
        self.env = [
            {
                **os.environ,
                "OSAGO_ACTIVEMQ_BASE": str(root / name),
                "OSAGO_ACTIVEMQ_DATA": str(root / "shared"),
                "OSAGO_ACTIVEMQ_STOMP_PORT": str(free_port()),
                "OSAGO_ACTIVEMQ_OPENWIRE_PORT": str(free_port()),
            }
            for name in ("a", "b")
        ]
        ports = [e["OSAGO_ACTIVEMQ_STOMP_PORT"] for e in self.env]
        self.url = f"failover:(stomp://127.0.0.1:{ports[0]},stomp://127.0.0.1:{ports[1]})"

    async def run(self, which: int, command: str, **extra: str) -> None:
        await trio.run_process([ACTIVEMQ, command], env={**self.env[which], **extra})


@asynccontextmanager
async def master_and_slave() -> AsyncIterator[Pair]:
    pair = Pair()
    try:
        await pair.run(0, "start")
        await pair.run(1, "start", OSAGO_ACTIVEMQ_WAIT="0")  # waits for the lock
        yield pair
    finally:
        with trio.CancelScope(shield=True):
            for which in (0, 1):
                await pair.run(which, "kill")
            shutil.rmtree(pair.root, ignore_errors=True)


async def test_the_slave_takes_over_when_the_master_dies_and_nothing_is_lost(
    pg_url: str, unique: str
) -> None:
    async with (
        master_and_slave() as pair,
        start_cluster(
            database_url=pg_url,
            broker_url=pair.url,
            suffix=unique,
            deadline=DEADLINE,
            insurers="aurora,borealis,cedar",
            delays="aurora=0.5,borealis=1.5,cedar=3",
            extra_env={"OSAGO_API_TOKEN": API_TOKEN, "OSAGO_LATE_WINDOW_SECONDS": "5"},
        ) as cluster,
        clients(cluster, 4) as tabs,
    ):
        load = Load(cluster, tabs)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run, 3.0, 14.0)
            await trio.sleep(3.0)
            await pair.run(0, "kill")
        await verify(load, within=DEADLINE + 30)
        slave = f"stomp://127.0.0.1:{pair.env[1]['OSAGO_ACTIVEMQ_STOMP_PORT']}"
        assert await dead_letters(f"osago.test.{unique}", url=slave) == 0
        for name, proc in cluster.procs.items():
            assert proc.process.returncode is None, f"{name} exited"
            if name != "insurers":  # the simulator has no broker
                assert proc.grep("reconnected to ActiveMQ"), f"{name} never failed over"
    gc.collect()
