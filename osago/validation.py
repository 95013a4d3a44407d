"""Validate a quote request body; every broken rule is reported with its field path.

The minimal schema of the walking skeleton (the domain issue completes it). Unknown fields
are kept as given, so the core application can send more than we check today.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from osago.errors import FieldError, ValidationFailed

__all__ = ["CATEGORIES", "validate_request"]

CATEGORIES = ("A", "B", "BE", "C", "CE", "D", "DE")
_KLADR = re.compile(r"^\d{13}$")


class _Check:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def section(self, data: dict[str, Any], key: str) -> dict[str, Any] | None:
        """A required nested object, or None (with the error recorded)."""
        value = self.required(data, key, key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, "must be an object")
            return None
        return value

    def required(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data or data[key] is None:
            self.fail(path, "is required")
            return None
        return data[key]

    def string(
        self, data: dict[str, Any], key: str, path: str, *, max_len: int = 128
    ) -> str | None:
        value = self.required(data, key, path)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(path, "must be a non-empty string")
            return None
        if len(value) > max_len:
            self.fail(path, f"must be at most {max_len} characters")
            return None
        return value

    def integer(self, data: dict[str, Any], key: str, path: str, lo: int, hi: int) -> int | None:
        value = self.required(data, key, path)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            self.fail(path, "must be a whole number")
            return None
        if not lo <= value <= hi:
            self.fail(path, f"must be between {lo} and {hi}")
            return None
        return int(value)

    def day(self, data: dict[str, Any], key: str, path: str) -> date | None:
        value = self.required(data, key, path)
        if value is None:
            return None
        try:
            if not isinstance(value, str):
                raise TypeError
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            self.fail(path, "must be a date as YYYY-MM-DD")
            return None


def _years_between(earlier: date, later: date) -> int:
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


def validate_request(body: Any) -> dict[str, Any]:
    """Return the request if every rule holds, else raise :class:`ValidationFailed`."""
    c = _Check()
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    root: dict[str, Any] = body
    c.string(root, "user_id", "user_id")

    policy = c.section(root, "policy")
    start = c.day(policy, "start_date", "policy.start_date") if policy is not None else None
    if policy is not None:
        c.integer(policy, "period_months", "policy.period_months", 3, 12)

    vehicle = c.section(root, "vehicle")
    if vehicle is not None:
        category = c.required(vehicle, "category", "vehicle.category")
        if category is not None and category not in CATEGORIES:
            c.fail("vehicle.category", f"must be one of {', '.join(CATEGORIES)}")
        c.integer(vehicle, "engine_power_hp", "vehicle.engine_power_hp", 1, 2000)

    owner = c.section(root, "owner")
    if owner is not None:
        region = c.required(owner, "region_kladr", "owner.region_kladr")
        if region is not None and not (isinstance(region, str) and _KLADR.match(region)):
            c.fail("owner.region_kladr", "must be a 13-digit KLADR code")

    drivers = c.required(root, "drivers", "drivers")
    if drivers is not None:
        if not isinstance(drivers, list) or not 1 <= len(drivers) <= 5:
            c.fail("drivers", "must be a list of 1 to 5 drivers")
        else:
            for i, raw in enumerate(drivers):
                path = f"drivers.{i}"
                if not isinstance(raw, dict):
                    c.fail(path, "must be an object")
                    continue
                d = raw
                born = c.day(d, "birth_date", f"{path}.birth_date")
                since = c.day(d, "experience_start_date", f"{path}.experience_start_date")
                if born and start and _years_between(born, start) < 18:
                    c.fail(f"{path}.birth_date", "driver must be at least 18 on the start date")
                if born and since and _years_between(born, since) < 16:
                    c.fail(f"{path}.experience_start_date", "cannot start before the 16th birthday")
                if since and start and since > start:
                    c.fail(f"{path}.experience_start_date", "cannot be after the policy start")
    if c.errors:
        raise ValidationFailed(c.errors)
    return root
