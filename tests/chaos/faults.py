"""The faults the chaos suite and bench/soak.py inject into a running cluster. Each returns
the roles it killed (and started again)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from tests.chaos.harness import API_TOKEN, STORE_TIMEOUT
from tests.chaos.postgres import PrivatePostgres
from tests.cluster import Cluster
from tests.factories import MINIMAL_BODY

__all__ = [
    "FAULTS",
    "STORE_TIMEOUT",
    "Fault",
    "backlog_without_workers",
    "kill_activemq",
    "kill_api",
    "kill_notifier",
    "kill_worker",
    "pause_worker",
    "restart_activemq",
    "restart_postgres",
]

ACTIVEMQ = str(Path(__file__).resolve().parents[2] / "scripts" / "activemq.sh")

Fault = Callable[[Cluster, PrivatePostgres], Awaitable[set[str]]]  # -> roles it killed


async def _restart(cluster: Cluster, name: str) -> None:
    role = "".join(ch for ch in name if not ch.isdigit())
    await cluster.procs[name].process.wait()
    if role == "api":  # back on its address, as behind a real one: insurers call it back there
        where = urlsplit(cluster.url(name, "api"))
        await cluster.start(name, role, OSAGO_API_BIND=f"{where.hostname}:{where.port}")
        return
    await cluster.start(name, role)


async def kill_worker(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    cluster.procs["worker1"].kill()
    await _restart(cluster, "worker1")
    return {"worker1"}


async def kill_notifier(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    cluster.procs["notifier1"].kill()
    await _restart(cluster, "notifier1")
    return {"notifier1"}


async def kill_api(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    cluster.procs["api"].kill()
    await trio.sleep(1.0)
    await _restart(cluster, "api")
    return {"api"}


async def restart_activemq(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    await trio.run_process([ACTIVEMQ, "stop"])
    await trio.sleep(2.0)
    await trio.run_process([ACTIVEMQ, "start"])
    return set()


async def kill_activemq(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    await trio.run_process([ACTIVEMQ, "kill"])
    await trio.sleep(2.0)
    await trio.run_process([ACTIVEMQ, "start"])
    return set()


async def restart_postgres(cluster: Cluster, pg: PrivatePostgres) -> set[str]:
    await pg.stop("fast")
    # The api answers 503 within its bound while the database is away...
    async with httpx.AsyncClient(timeout=STORE_TIMEOUT + 5) as http:
        started = trio.current_time()
        r = await http.post(
            f"{cluster.url('api', 'api')}/api/v1/calculations",
            json={**MINIMAL_BODY, "user_id": "chaos-probe"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert r.status_code == 503
        assert trio.current_time() - started < STORE_TIMEOUT + 1.0
    await trio.sleep(3.0)
    await pg.start()  # ...and 202 again, with no restart: the load goes on through it
    return set()


async def pause_worker(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    # Past the STOMP heart-beat (2 x 4 s): the broker drops it and hands its jobs on.
    worker = cluster.procs["worker1"].process
    worker.send_signal(signal.SIGSTOP)
    await trio.sleep(10.0)
    worker.send_signal(signal.SIGCONT)
    return set()


async def backlog_without_workers(cluster: Cluster, _: PrivatePostgres) -> set[str]:
    for name in ("worker1", "worker2"):
        cluster.procs[name].process.send_signal(signal.SIGTERM)
    for name in ("worker1", "worker2"):
        await cluster.procs[name].process.wait()
        assert cluster.procs[name].process.returncode == 0
    await trio.sleep(6.0)  # the queue fills; no keeper runs either
    for name in ("worker1", "worker2"):
        await cluster.start(name, "worker")
    return {"worker1", "worker2"}


FAULTS: dict[str, Fault] = {
    f.__name__: f
    for f in (
        kill_worker,
        kill_notifier,
        kill_api,
        restart_activemq,
        kill_activemq,
        restart_postgres,
        pause_worker,
        backlog_without_workers,
    )
}
