"""PostgreSQL's CPU per settle statement (``carry_out``), as the outbox and tables grow.

Why: the settle statement is most of PostgreSQL's work per calculation (about eight a
calculation of ten answers at calm 50/s), and a statement whose cost grows with a table is
invisible in a capacity step on a fresh database. This fills a fresh database with
``--calcs`` calculations of ten exchanges, settles every exchange, one answer per
statement, each event marked sent after its calculation (as the relay does; or never, with
``--unmarked``), and prints PostgreSQL's CPU (its backend's, from /proc) and the wall time
per statement, per tenth of the run: a flat line is a statement that does not scan. Every
tenth answer completes its calculation (the statement then also flushes the calculation's
unsent events).

    .venv/bin/python bench/settle_statement.py --calcs 1500
    .venv/bin/python bench/settle_statement.py --calcs 1500 --ops

``--ops`` also closes each calculation after its last answer (as the keeper does at the end
of its late window) and, per tenth, prints PostgreSQL's CPU per call of each statement the
roles run on a timer rather than per answer (the relay's claim, the keeper's look for due
calculations and for the next deadline, the outbox gauge): they read partial indexes of
open or unsent rows, which without VACUUM keep an entry for every row that ever was.
``--vacuum`` runs ``VACUUM outbox`` after each tenth (and prints how long it took).

On a server without autovacuum (this box), the partial index of unsent outbox rows keeps an
entry for every row version ever unsent; the statement that read it (before a63b30d) grew
from 0.37 to 1.72 ms of PostgreSQL's CPU over 15 000 settles; the one now stays near 0.3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import asyncpg

from osago.lifecycle import CalcState, NewEvent, Plan
from osago.models import Outcome, OutcomeKind
from osago.storage._migrate import migrate
from osago.storage._pg_lifecycle import carry_out, complete_due
from osago.storage._pg_ops import claim_outbox, next_deadline, outbox_backlog
from osago.storage._pg_session import SESSION_SETTINGS, init_connection

ADMIN = os.environ.get("OSAGO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BODY = json.dumps({"type": "offer", "premium": 1234.5, "pad": "x" * 300}).encode()


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the backend ``pid`` has used (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fill(conn: Any, n: int, now: float) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
    """``n`` open calculations with ten exchanges each."""
    calcs = [(uuid.uuid4(), [uuid.uuid4() for _ in range(10)]) for _ in range(n)]
    await conn.executemany(
        "INSERT INTO calculations (id, user_id, request, stub, created_at, deadline_at,"
        " closes_at) VALUES ($1, 'u', '{}', '{}', $2, $3, $3)",
        [(c, now, now + 60) for c, _ in calcs],
    )
    await conn.executemany(
        "INSERT INTO exchanges (correlation_id, calculation_id, insurer, insurer_name)"
        " VALUES ($1, $2, $3, $3)",
        [(x, c, f"i{k}") for c, xs in calcs for k, x in enumerate(xs)],
    )
    return calcs


OPS_CALLS = 500  # of each periodic statement per tenth: /proc counts CPU in 10 ms ticks


def periodic(now: float) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    """The statements the roles run on timers, each as its store runs it."""

    async def keeper_look(conn: Any) -> Any:
        async with conn.transaction():
            return await complete_due("/topic/t", now, 10.0, 100, conn)

    return {
        "claim": partial(claim_outbox, now, 10.0, 100),
        "due": keeper_look,
        "next": next_deadline,
        "backlog": outbox_backlog,
    }


async def ops_cpu(conn: Any, pid: int, now: float) -> list[float]:
    """PostgreSQL's CPU per call, µs, of each periodic statement."""
    out = []
    for statement in periodic(now).values():
        cpu0 = backend_cpu(pid)
        for _ in range(OPS_CALLS):
            await statement(conn)
        out.append(1e6 * (backend_cpu(pid) - cpu0) / OPS_CALLS)
    return out


async def run(calcs_n: int, marked: bool, ops: bool, vacuum: bool) -> None:
    name = "osago_settle_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pool = await asyncpg.create_pool(
            ADMIN.rsplit("/", 1)[0] + "/" + name,
            min_size=1,
            max_size=1,
            init=init_connection,
            server_settings=SESSION_SETTINGS,
        )
        await migrate(pool)
        async with pool.acquire() as conn:
            now = time.time()
            calcs = await fill(conn, calcs_n, now)
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            versions = {
                r["id"]: r["v"]
                for r in await conn.fetch("SELECT id, xmin::text v FROM calculations")
            }
            tenth = max(1, calcs_n // 10)
            never = "" if marked else "never "
            print(f"{calcs_n} calculations, one answer a statement, events {never}marked sent")
            head = "part  statements  PostgreSQL CPU µs/statement  wall µs/statement"
            if ops:
                head += "  | periodic, CPU µs/call: " + "  ".join(periodic(now))
            print(head)
            cpu0, wall0, done = backend_cpu(pid), time.perf_counter(), 0
            for i, (calc_id, exchanges) in enumerate(calcs):
                for k, x in enumerate(exchanges):
                    state = CalcState(calc_id, "u", {}, now + 60, now + 60, None, None, k, ())
                    last = k == len(exchanges) - 1
                    plan = Plan(
                        seq=k + 1,
                        settled=x,
                        settle=Outcome(OutcomeKind.OFFER, now, 1234.5, None, now),
                        events=(NewEvent(BODY, {"content-type": "application/json"}),),
                        complete=last,
                        flush=last,
                    )
                    carried = await carry_out(
                        conn,
                        [(state, plan)],
                        versions=versions,
                        topic="/topic/t",
                        now=now,
                        lease=10.0,
                        steps={x: "[]"},
                    )
                    versions.update(carried.versions)
                    done += 1
                if marked:
                    await conn.execute(
                        "UPDATE outbox SET sent_at = $1 WHERE calculation_id = $2", now, calc_id
                    )
                if ops:  # its late window over: the keeper closes it
                    await conn.execute(
                        "UPDATE calculations SET closed_at = $1 WHERE id = $2", now, calc_id
                    )
                if (i + 1) % tenth == 0:
                    cpu1, wall1 = backend_cpu(pid), time.perf_counter()
                    cpu_us, wall_us = 1e6 * (cpu1 - cpu0) / done, 1e6 * (wall1 - wall0) / done
                    line = f"{(i + 1) // tenth:4d}  {done:10d}  {cpu_us:27.0f}  {wall_us:17.0f}"
                    if ops:
                        costs = await ops_cpu(conn, pid, now)
                        line += "  | " + "  ".join(f"{c:6.0f}" for c in costs)
                    if vacuum:
                        began = time.perf_counter()
                        await conn.execute("VACUUM outbox")
                        line += f"  | VACUUM outbox {1e3 * (time.perf_counter() - began):.0f} ms"
                    print(line)
                    cpu0, wall0, done = backend_cpu(pid), time.perf_counter(), 0
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calcs", type=int, default=1500)
    parser.add_argument("--unmarked", action="store_true", help="never mark events sent")
    parser.add_argument(
        "--ops", action="store_true", help="close calculations; time the periodic statements"
    )
    parser.add_argument("--vacuum", action="store_true", help="VACUUM the outbox every tenth")
    args = parser.parse_args()
    asyncio.run(run(args.calcs, not args.unmarked, args.ops, args.vacuum))


if __name__ == "__main__":
    main()
