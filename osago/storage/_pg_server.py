"""What the PostgreSQL server's own settings mean for the store: checked once, at open.

Why: the outbox is a queue in a table. Each row is written unsent and updated sent, and
the partial index of unsent rows (the relay's claim, the outbox gauge) keeps an entry for
every row that was ever unsent until VACUUM removes the dead ones. Where autovacuum is off
nothing does: those statements then slow down with every calculation ever made
(``bench/settle_statement.py --ops``: the claim 80 -> 340 µs of PostgreSQL's CPU and the
gauge 60 -> 360 µs over 150 000 outbox rows; flat with a VACUUM of the outbox every tenth,
which took 11-53 ms), and retention's deletes free no space. Nothing fails, so the
operator hears of it only from us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SETTINGS_READ", "server_warnings"]

Conn = Any  # asyncpg.Connection (untyped library)

# The settings server_warnings reads, as (name, value) rows.
SETTINGS_READ = "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts')"


def server_warnings(settings: Mapping[str, str]) -> list[str]:
    """What an operator must hear about these server settings (name -> value, as
    ``pg_settings`` gives them); empty when all is well."""
    out = []
    if settings.get("autovacuum") == "off":
        out.append(
            "PostgreSQL's autovacuum is off: nothing removes the outbox's sent rows from its "
            "index of unsent ones, so the relay's claim and the outbox gauge slow down with "
            "every calculation, and retention's deletes free no space; turn autovacuum on, "
            "or VACUUM the outbox regularly"
        )
    if settings.get("track_counts") == "off":
        out.append(
            "PostgreSQL's track_counts is off: autovacuum cannot tell which tables need it; "
            "turn it on"
        )
    return out
