"""The quote request: its schema (validation + OpenAPI), cross-field rules, and the tariff view.

The tariff fields are required; identity fields (plate, VIN, documents, names) are checked
when given, as a preliminary quote does not need them. Field names of the skeleton's
minimal body are kept.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Any

from osago.domain import tables, territories
from osago.domain.schema import Arr, Bool, Day, Int, Num, Obj, Str, Uuid, check, opt, req
from osago.domain.tariff import (
    Driver,
    TariffInput,
    kvs,
    territory,
    years_between,
)
from osago.errors import FieldError, ValidationFailed

__all__ = [
    "QUOTE_REQUEST",
    "request_hash",
    "sample_request",
    "tariff_input",
    "validate_request",
]


KBM_CLASSES = tuple(tables.KBM)


def _digits(n: int) -> Str:
    """A string of exactly ``n`` digits (document series and numbers, KPP, OGRN)."""
    return Str(max_len=n, pattern=rf"\d{{{n}}}", pattern_message=f"must be {n} digits")


# Cyrillic letters that look Latin (as on plates) and their Latin twins.
_L = "[ABEKMHOPCTYXАВЕКМНОРСТУХ]"
_REGION = r"\d{2,3}"
# Plate formats (ГОСТ Р 50577): a car's А123ВС77, a taxi's АВ12377, a trailer's АВ123477,
# a motorcycle's 1234АВ77.
_PLATE = "|".join(
    (
        rf"{_L}\d{{3}}{_L}{{2}}{_REGION}",
        rf"{_L}{{2}}\d{{3}}{_REGION}",
        rf"{_L}{{2}}\d{{4}}{_REGION}",
        rf"\d{{4}}{_L}{{2}}{_REGION}",
    )
)
_VIN = r"[A-HJ-NPR-Z0-9]{17}"  # no I, O, Q

PERSON = {
    "last_name": opt(Str(max_len=100)),
    "first_name": opt(Str(max_len=100)),
    "middle_name": opt(Str(max_len=100)),
    "birth_date": opt(Day()),
}

POLICY = Obj(
    fields={
        "start_date": req(Day(description="Not before today (Moscow), at most 60 days ahead.")),
        "period_months": req(Int(3, 12, description="Months of use in the year.")),
        "purpose": opt(Str(enum=("personal", "taxi")), "personal"),
        "unlimited_drivers": opt(Bool(), False),
        "gross_violations": opt(
            Bool(
                description="The insurer found a gross violation of the terms in the previous "
                "period (40-ФЗ art. 9 §3): КН applies and the premium cap is 5 × ТБ × КТ."
            ),
            False,
        ),
    }
)


def _has(path: str, value: Any) -> dict[str, Any]:
    """JSON Schema: the object has ``path`` (dotted) equal to ``value``."""
    head, _, rest = path.partition(".")
    inner = _has(rest, value) if rest else {"const": value}
    return {"type": "object", "properties": {head: inner}, "required": [head]}


_IDS = ("vin", "body_number", "chassis_number")

VEHICLE = Obj(
    description="At most one of vin, body_number, chassis_number; year not after the "
    "policy's start year.",
    # At most one identifier, as if/then (a string one makes the later ones null or absent):
    # the same rule as `not anyOf` pairs, which schemathesis mutates into "violations" that
    # still satisfy it. The `if` says "present and a string" without `required`, which
    # schemathesis's coverage phase also dropped from it as if the object required it
    # (seed 111302023138513375245817927773432296143: a body without body_number "invalid").
    rules=tuple(
        {
            "if": {"not": {"properties": {a: {"not": {"type": "string"}}}}},
            "then": {"properties": {b: {"type": "null"} for b in _IDS[i + 1 :]}},
        }
        for i, a in enumerate(_IDS[:-1])
    ),
    fields={
        "category": req(
            Str(
                enum=("A", "A1", "M", "B", "BE"),
                description="A motorcycle, A1 a light motorcycle, M a moped or light "
                "quadricycle (the motorcycle tariff; A1 and M drivers from 16), B/BE a car.",
            )
        ),
        "engine_power_hp": req(Num(1, 2000)),
        "year": opt(Int(1950, 2100)),
        "plate": opt(
            Str(
                max_len=12,
                pattern=_PLATE,
                pattern_message="must be a plate like А123ВС77 (car), АВ12377 (taxi), "
                "АВ123477 (trailer) or 1234АВ77 (motorcycle)",
            )
        ),
        "vin": opt(
            Str(
                max_len=17,
                pattern=_VIN,
                pattern_message="must be 17 characters, digits and Latin letters except I, O, Q",
            )
        ),
        "body_number": opt(Str(max_len=32)),
        "chassis_number": opt(Str(max_len=32)),
        "trailer": opt(Bool(), False),
        "registration_document": opt(
            Obj(
                fields={
                    "type": req(Str(enum=("STS", "PTS", "EPTS"))),
                    "series": opt(Str(max_len=4, pattern=r"[0-9A-ZА-Я]{2,4}")),
                    "number": req(
                        Str(
                            max_len=15,
                            pattern=r"\d{6,15}",
                            pattern_message="must be 6 to 15 digits",
                        )
                    ),
                    "issued_at": opt(Day()),
                }
            )
        ),
    },
)

_SUBJECTS = "|".join(territories.SUBJECTS)
_KLADR = {"max_len": 13, "pattern": r"\d{13}", "pattern_message": "must be a 13-digit KLADR code"}

OWNER = Obj(
    description="Without city_kladr, region_kladr must be a place the tariff prices on its "
    "own (the pattern lists them); with it, the city must lie in the region's subject and be "
    "a listed city, or the subject must have a value for its other places.",
    rules=(
        {
            "anyOf": [
                {"properties": {"city_kladr": {"type": "string"}}, "required": ["city_kladr"]},
                {
                    "properties": {
                        "region_kladr": {"pattern": f"^(?:{territories.places_pattern()})$"}
                    }
                },
            ]
        },
    ),
    fields={
        "type": opt(Str(enum=("individual", "legal")), "individual"),
        "region_kladr": req(
            Str(
                **_KLADR,  # type: ignore[arg-type]
                description="The registration address's KLADR code (subject, and down to the "
                "city where city_kladr is not given).",
                rules=({"pattern": f"^(?:{_SUBJECTS})\\d{{11}}$"},),
            )
        ),
        "city_kladr": opt(
            Str(
                **_KLADR,  # type: ignore[arg-type]
                description="The city or settlement of the registration address, as partner "
                "contracts send it beside the region.",
            )
        ),
        "kbm_class": opt(Str(enum=KBM_CLASSES, description="For an unlimited list.")),
        **PERSON,
        "passport": opt(Obj(fields={"series": req(_digits(4)), "number": req(_digits(6))})),
        "inn": opt(
            Str(
                max_len=12,
                pattern=r"\d{10}|\d{12}",
                pattern_message="must be 10 (legal) or 12 digits",
            )
        ),
        "kpp": opt(_digits(9)),
        "ogrn": opt(_digits(13)),
    },
)

DRIVER = Obj(
    fields={
        "birth_date": req(Day()),
        "experience_start_date": req(Day()),
        "licence": opt(
            Obj(
                fields={
                    "series": req(Str(max_len=4, pattern=r"[0-9А-ЯA-Z]{4}")),
                    "number": req(_digits(6)),
                }
            )
        ),
        "kbm_class": opt(
            Str(enum=KBM_CLASSES, description="Bonus-malus class; absent means the start class 3.")
        ),
    }
)

_DRIVERS = (
    "Drivers: 1 to 5 unless policy.unlimited_drivers is true or owner.type is legal, "
    "then none. Each driver at least 18 on the start date (16 for categories A1 and M), "
    "with experience from the 16th "
    "birthday at the earliest, not after the start date, and an age and experience the "
    "КВС table has a cell for."
)
_NO_DRIVERS = {"properties": {"drivers": {"maxItems": 0}}}
_LIMITED = {  # null is taken as absent: the defaults, false and individual
    "properties": {
        "policy": {"properties": {"unlimited_drivers": {"enum": [False, None]}}},
        "owner": {"properties": {"type": {"enum": ["individual", None]}}},
        "drivers": {"type": "array", "minItems": 1},
    },
    "required": ["drivers"],
}

QUOTE_REQUEST = Obj(
    description="An OSAGO quote request. Rules across fields, each refused with 422 and the "
    "field's path: policy.start_date not before today and at most 60 days ahead; "
    "purpose taxi only for categories B and BE; at most one of the vehicle's identifiers; "
    "vehicle.year not after the start year; owner.region_kladr a known territory. " + _DRIVERS,
    rules=(
        *(
            {"not": {"allOf": [_has("policy.purpose", "taxi"), _has("vehicle.category", c)]}}
            for c in sorted(tables.MOTO_CATEGORIES)
        ),
        {
            "anyOf": [
                {"allOf": [_has("policy.unlimited_drivers", True), _NO_DRIVERS]},
                {"allOf": [_has("owner.type", "legal"), _NO_DRIVERS]},
                _LIMITED,
            ]
        },
    ),
    fields={
        "request_id": opt(
            Uuid(
                description="Idempotency key: the same id and body give the "
                "same calculation; another body with it gives 409."
            )
        ),
        "user_id": req(Str(description="The core application's user.")),
        "policy": req(POLICY),
        "vehicle": req(VEHICLE),
        "owner": req(OWNER),
        "drivers": opt(Arr(min_items=0, max_items=5, items=DRIVER)),
    },
)


def _rules(req: dict[str, Any], today: date) -> list[FieldError]:
    """Cross-field rules; run only on a body whose fields are individually valid."""
    errors: list[FieldError] = []
    policy, vehicle, owner = req["policy"], req["vehicle"], req["owner"]
    start = date.fromisoformat(policy["start_date"])
    if start < today:
        errors.append(FieldError("policy.start_date", "must not be in the past"))
    elif start > today + timedelta(days=60):
        errors.append(FieldError("policy.start_date", "must be at most 60 days ahead"))
    if policy["purpose"] == "taxi" and vehicle["category"] in tables.MOTO_CATEGORIES:
        errors.append(FieldError("policy.purpose", "taxi applies to categories B and BE only"))
    ids = [k for k in ("vin", "body_number", "chassis_number") if vehicle.get(k)]
    if len(ids) > 1:
        errors.append(
            FieldError(f"vehicle.{ids[1]}", "give only one of vin, body_number, chassis_number")
        )
    if vehicle.get("year") is not None and vehicle["year"] > start.year:
        errors.append(FieldError("vehicle.year", "cannot be after the policy start"))
    if territory(owner["region_kladr"], owner.get("city_kladr")) is None:
        where = "owner.city_kladr" if owner.get("city_kladr") else "owner.region_kladr"
        errors.append(FieldError(where, "is not a territory the tariff knows"))
    drivers = req.get("drivers") or []
    if policy["unlimited_drivers"] or owner["type"] == "legal":
        if drivers:
            errors.append(FieldError("drivers", "must be empty for an unlimited list of drivers"))
        return errors
    if not drivers:
        errors.append(
            FieldError(
                "drivers", "1 to 5 drivers are required unless policy.unlimited_drivers is true"
            )
        )
    for i, d in enumerate(drivers):
        born = date.fromisoformat(d["birth_date"])
        since = date.fromisoformat(d["experience_start_date"])
        age, experience = years_between(born, start), years_between(since, start)
        youngest = 16 if vehicle["category"] in ("A1", "M") else 18
        if age < youngest:
            errors.append(
                FieldError(
                    f"drivers.{i}.birth_date",
                    f"driver must be at least {youngest} on the start date",
                )
            )
        elif years_between(born, since) < 16:
            errors.append(
                FieldError(
                    f"drivers.{i}.experience_start_date", "cannot start before the 16th birthday"
                )
            )
        elif since > start:
            errors.append(
                FieldError(f"drivers.{i}.experience_start_date", "cannot be after the policy start")
            )
        elif kvs(age, experience) is None:
            errors.append(
                FieldError(
                    f"drivers.{i}.experience_start_date",
                    f"{experience} years of experience at {age} is not in the age-experience table",
                )
            )
    return errors


def sample_request(today: date) -> dict[str, Any]:
    """A valid request starting a week after ``today`` (the demo form, the document's example)."""
    return {
        "user_id": "user-42",
        "policy": {
            "start_date": (today + timedelta(days=7)).isoformat(),
            "period_months": 12,
            "purpose": "personal",
            "unlimited_drivers": False,
        },
        "vehicle": {"category": "B", "engine_power_hp": 150},
        "owner": {"region_kladr": "7700000000000"},
        "drivers": [
            {"birth_date": "1985-04-12", "experience_start_date": "2005-06-01", "kbm_class": "3"}
        ],
    }


def validate_request(body: Any, *, today: date) -> dict[str, Any]:
    """Return the request with defaults filled in, or raise :class:`ValidationFailed`."""
    cleaned, errors = check(QUOTE_REQUEST, body)
    if not errors:
        errors = _rules(cleaned, today)
    if errors:
        raise ValidationFailed(errors)
    return dict(cleaned)


def tariff_input(req: dict[str, Any]) -> TariffInput:
    """The tariff's view of a validated request."""
    p, v, o = req["policy"], req["vehicle"], req["owner"]
    return TariffInput(
        start_date=date.fromisoformat(p["start_date"]),
        period_months=p["period_months"],
        region_kladr=o["region_kladr"],
        engine_power_hp=v["engine_power_hp"],
        category=v["category"],
        owner_type=o["type"],
        purpose=p["purpose"],
        unlimited_drivers=p["unlimited_drivers"],
        drivers=tuple(
            Driver(
                date.fromisoformat(d["birth_date"]),
                date.fromisoformat(d["experience_start_date"]),
                d.get("kbm_class") or "3",
            )
            for d in req.get("drivers") or []
        ),
        owner_kbm_class=o.get("kbm_class") or "3",
        city_kladr=o.get("city_kladr"),
        gross_violations=bool(p.get("gross_violations")),
    )


def request_hash(req: dict[str, Any]) -> str:
    """A digest of the request as validated: equal for equal bodies whatever the key order."""
    canonical = json.dumps(req, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
