"""Builders for test data."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from osago.domain.request import validate_request
from osago.models import NewCalculation, NewExchange

# Relative to today: a fixed start date would fall out of the 60-day window.
START = (date.today() + timedelta(days=7)).isoformat()

MINIMAL_BODY: dict[str, Any] = {
    "user_id": "user-42",
    "policy": {"start_date": START, "period_months": 12},
    "vehicle": {"category": "B", "engine_power_hp": 150},
    "owner": {"region_kladr": "7700000000000"},
    "drivers": [{"birth_date": "1985-04-12", "experience_start_date": "2005-06-01"}],
}


def validated(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the api stores it after validation."""
    return validate_request(body, today=date.today())


def new_calculation(
    *,
    insurers: tuple[str, ...] = ("aurora", "borealis"),
    created_at: float = 1000.0,
    deadline: float = 60.0,
    user_id: str = "user-42",
) -> NewCalculation:
    return NewCalculation(
        id=uuid.uuid4(),
        user_id=user_id,
        request=validated({**MINIMAL_BODY, "user_id": user_id}),
        created_at=created_at,
        deadline_at=created_at + deadline,
        exchanges=tuple(NewExchange(uuid.uuid4(), code, code.title()) for code in insurers),
        stub={"message": "no insurer answered in time"},
    )
