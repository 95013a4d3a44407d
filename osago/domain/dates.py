"""Dates as the policy means them: Moscow's."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

__all__ = ["MOSCOW", "moscow_today"]

# Policy dates are Moscow dates (UTC+3 all year since 2014): between 21:00 and 24:00 UTC it is
# already tomorrow there, and "not before today" means Moscow's today.
MOSCOW = timezone(timedelta(hours=3), "MSK")


def moscow_today(now: float) -> date:
    """The date in Moscow at unix time ``now``."""
    return datetime.fromtimestamp(now, MOSCOW).date()
