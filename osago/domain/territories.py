"""КТ by place: the act's table as data (``territories.toml``), looked up by subject and city.

A place is given as KLADR codes: the owner's ``region_kladr`` (13 digits) and, optionally, a
``city_kladr`` (the Yandex partner contract sends both). The subject is the first two digits;
a city is matched on the first eleven (SS RRR GGG PPP), so a street-level or settlement code
of a listed city still finds it.

Lookup, as the act reads: a federal city covers every place inside it; a listed city takes
its own value; any other place of the subject takes the subject's "other places" value; a
subject whose values are not transcribed is refused, never priced on a guess.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

__all__ = ["SUBJECTS", "Place", "Subject", "listing", "load", "lookup", "places_pattern"]


@dataclass(frozen=True)
class Place:
    """Where a policy is priced: the name answers show, and its КТ."""

    name: str
    kt: float


@dataclass(frozen=True)
class Subject:
    """One subject of the Federation as the act lists it."""

    code: str
    name: str
    kt: float | None = None  # a federal city: every place inside it
    other: float | None = None  # places of the subject the act does not name
    cities: dict[str, Place] = field(default_factory=dict)  # 11-digit prefix -> place


def _coefficient(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 10:
        raise ValueError(f"territories: {where} must be a coefficient, got {value!r}")
    return float(value)


def _digits(value: Any, n: int, where: str) -> str:
    if not isinstance(value, str) or len(value) != n or not value.isdigit():
        raise ValueError(f"territories: {where} must be {n} digits, got {value!r}")
    return value


def load(text: str) -> dict[str, Subject]:
    """Parse and check the data file: a malformed row fails at import, not at a quote."""
    subjects: dict[str, Subject] = {}
    for row in tomllib.loads(text).get("subject", []):
        code = _digits(row.get("code"), 2, "a subject's code")
        where = f"subject {code}"
        if code in subjects:
            raise ValueError(f"territories: {where} is listed twice")
        cities: dict[str, Place] = {}
        for city in row.get("cities", []):
            prefix = _digits(city.get("code"), 11, f"a city of {where}")
            if not prefix.startswith(code):
                raise ValueError(f"territories: city {prefix} is not in {where}")
            cities[prefix] = Place(str(city["name"]), _coefficient(city.get("kt"), prefix))
        kt = _coefficient(row["kt"], where) if "kt" in row else None
        other = _coefficient(row["other"], where) if "other" in row else None
        if kt is not None and (other is not None or cities):
            raise ValueError(f"territories: {where} is a federal city: kt alone")
        if kt is None and other is None and not cities:
            raise ValueError(f"territories: {where} has no value")
        subjects[code] = Subject(code, str(row["name"]), kt, other, cities)
    return subjects


SUBJECTS: Final = load(resources.files(__package__).joinpath("territories.toml").read_text())


def lookup(region_kladr: str, city_kladr: str | None = None) -> Place | None:
    """The place a policy is priced for, or None where the table has no value for it.

    ``city_kladr``, when given, names the place inside the region's subject (and must lie in
    it); otherwise ``region_kladr`` itself is looked up down to its city part.
    """
    subject = SUBJECTS.get(region_kladr[:2])
    if subject is None:
        return None
    if city_kladr is not None and city_kladr[:2] != subject.code:
        return None
    if subject.kt is not None:
        return Place(subject.name, subject.kt)
    place = subject.cities.get((city_kladr or region_kladr)[:11])
    if place is not None:
        return place
    if subject.other is not None:
        return Place(subject.name, subject.other)
    return None


def places_pattern() -> str:
    """A regular expression matching exactly the 13-digit codes :func:`lookup` prices on
    their own: the OpenAPI document states the rule the server applies."""
    alternatives = []
    for subject in SUBJECTS.values():
        if subject.kt is not None or subject.other is not None:
            alternatives.append(subject.code + "\\d{11}")
        else:
            alternatives.extend(prefix + "\\d{2}" for prefix in subject.cities)
    return "|".join(alternatives)


def listing() -> list[tuple[str, str]]:
    """(name, 13-digit code) of every place with its own value: the demo form's choices."""
    out: list[tuple[str, str]] = []
    for subject in SUBJECTS.values():
        if subject.kt is not None or subject.other is not None:
            out.append((subject.name, subject.code + "0" * 11))
        out.extend((place.name, prefix + "00") for prefix, place in subject.cities.items())
    return out
