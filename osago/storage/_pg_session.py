"""How the pool treats its connections: set up once, not reset between transactions."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SESSION_SETTINGS", "init_connection", "keep_session"]

Conn = Any  # asyncpg.Connection (untyped library)

# Set on every pooled connection at connect time (no round trip of its own).
SESSION_SETTINGS = {
    # Why: asyncpg prepares every statement, and after five runs PostgreSQL may keep one
    # generic plan for it, chosen while the tables were nearly empty: a sequential scan,
    # which it then kept as the tables grew, until an ANALYZE (never, where autovacuum is
    # off). A capacity run found `exchanges` read in full about 180 times a second (15 M
    # rows in 40 s) and most of PostgreSQL's CPU spent there. Planning every call instead
    # (force_custom_plan) fixed that, but then planning was half of PostgreSQL's CPU (perf:
    # GetCachedPlan 46 %, the executor 17 %). Every statement here finds its rows through
    # an index (keys, partial indexes of what is open or unsent), so: one generic plan per
    # statement and session, made on the premise that tables are big. A statement with no
    # index to use still scans; one with an index never scans because a table was small.
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    # Why: a bad row estimate can cross jit_above_cost and compile a one-row statement.
    "jit": "off",
}


async def init_connection(conn: Conn) -> None:
    """Each new connection: jsonb as Python objects."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def keep_session(conn: Conn) -> None:
    """The pool's reset between transactions: none.

    Why: asyncpg's default reset is a query (advisory unlock, CLOSE ALL, UNLISTEN, RESET
    ALL) on every release, one more round trip than the transaction itself needs. Nothing
    here leaves session state behind: every use is one transaction that ends, the only
    advisory lock is transaction-scoped (migrations), and LISTEN has its own connection.
    asyncpg still rolls back a transaction left open before calling this.
    """
