"""What the PostgreSQL server's settings mean for the store (osago/storage/_pg_server.py)."""

from __future__ import annotations

from osago.storage._pg_server import server_warnings


def test_a_server_that_vacuums_and_counts_needs_no_warning() -> None:
    assert server_warnings({"autovacuum": "on", "track_counts": "on"}) == []


def test_autovacuum_off_is_named_with_what_it_costs_and_what_to_do() -> None:
    (warning,) = server_warnings({"autovacuum": "off", "track_counts": "on"})
    assert "autovacuum is off" in warning
    assert "outbox" in warning
    assert "turn autovacuum on" in warning


def test_track_counts_off_is_named_too() -> None:
    warnings = server_warnings({"autovacuum": "off", "track_counts": "off"})
    assert len(warnings) == 2
    assert "track_counts is off" in warnings[1]
