"""How the pool treats its connections: set up once, not reset between transactions."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["init_connection", "keep_session"]

Conn = Any  # asyncpg.Connection (untyped library)


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
