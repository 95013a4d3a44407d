"""`osago dlq`: list the dead letters with their reasons, purge one, replay the rest, and the
user gets those offers (issue 12). Every role its own process on the real services."""

from __future__ import annotations

import json
import sys

import pytest
import trio

from tests.cluster import Cluster, start_cluster
from tests.conftest import STOMP_URL
from tests.factories import MINIMAL_BODY

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def dlq(cluster: Cluster, *args: str) -> list[str]:
    result = await trio.run_process(
        [sys.executable, "-m", "osago", "dlq", *args],
        env=cluster.env,
        capture_stdout=True,
        capture_stderr=True,
    )
    return result.stdout.decode().splitlines()


async def test_list_purge_one_replay_the_rest_and_the_user_gets_the_offers(
    pg_url: str, unique: str
) -> None:
    async with start_cluster(
        database_url=pg_url,
        broker_url=STOMP_URL,
        suffix=unique,
        deadline=40.0,
        insurers="delta,ember",  # both polled: no wait for a callback's safety check
        delays="delta=0.2,ember=0.2",
        workers=0,
        notifiers=1,
    ) as cluster:
        # A worker that does not know ember: its jobs are poison there, and dead-lettered.
        await cluster.start("worker1", "worker", OSAGO_INSURERS="delta")
        calcs = [
            (await cluster.post({**MINIMAL_BODY, "user_id": "dana"}))["calculation_id"]
            for _ in range(3)
        ]
        lines: list[str] = []
        # Three attempts ~1.1 s apart, then the DLQ. Each waits for delta's job in the same
        # message, which its first poll ends (a second in).
        for _ in range(80):
            await trio.sleep(0.5)
            if len(lines := await dlq(cluster, "list")) == 3:
                break
        rows = [line.split("\t") for line in lines]
        assert {r[1] for r in rows} == set(calcs)
        # Each dead letter is its calculation's message, both jobs (delta's was answered,
        # so a replay runs only ember's).
        assert {r[2] for r in rows} == {"delta,ember"}
        assert all("insurer ember is not configured" in r[3] for r in rows)

        purged = rows[0]
        assert await dlq(cluster, "purge", purged[0]) == ["purged 1"]
        assert len(await dlq(cluster, "list")) == 2

        cluster.procs["worker1"].process.terminate()
        await cluster.procs["worker1"].process.wait()
        await cluster.start("worker2", "worker")  # knows both
        # Opened now: a session nobody reads stops answering pings, and is dropped.
        async with cluster.websocket("notifier1", "dana") as ws:
            assert await dlq(cluster, "replay", "--all") == ["replayed 2"]
            assert await dlq(cluster, "list") == []

            replayed = {r[1] for r in rows[1:]}
            got: set[str] = set()
            with trio.fail_after(20):
                while got != replayed:
                    event = json.loads(await ws.get_message())
                    if event["type"] == "offer" and event["insurer"] == "ember":
                        got.add(event["calculation_id"])
            assert purged[1] not in got
