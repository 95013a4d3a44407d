"""The stub answer, made useful: the legal premium range for the user's own coefficients."""

from __future__ import annotations

from typing import Any

from osago.domain.request import tariff_input
from osago.domain.tariff import CURRENCY, coefficients, corridor

__all__ = ["stub_for"]


def stub_for(req: dict[str, Any], deadline_seconds: float) -> dict[str, Any]:
    """What the user gets when no insurer answered by the deadline."""
    t = tariff_input(req)
    low, high = corridor(t)
    return {
        "reason": "no_offers",
        "message": (
            f"Insurers did not answer within {deadline_seconds:g} seconds. By the Bank of "
            f"Russia tariff your policy costs between {low:,.0f} and {high:,.0f} RUB; "
            "please try again later."
        ).replace(",", " "),
        "premium_min": low,
        "premium_max": high,
        "currency": CURRENCY,
        "breakdown": coefficients(t).to_json(),
    }
