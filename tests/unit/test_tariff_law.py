"""Issue 13: prices the law allows (the cap, КС, КН), places inside federal cities, motorcycle
categories and plates. Each case failed before the change that pins it."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osago.domain import tables, territories
from osago.domain.request import tariff_input, validate_request
from osago.domain.stub import stub_for
from osago.domain.tariff import (
    Driver,
    TariffInput,
    base_corridor,
    coefficients,
    corridor,
    kvs,
    premium,
    territory,
    years_between,
)
from osago.errors import ValidationFailed
from tests.factories import MINIMAL_BODY

TODAY = date(2026, 11, 30)
START = TODAY + timedelta(days=7)


def _body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL_BODY)
    body["policy"]["start_date"] = START.isoformat()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = body
        for p in parents:
            node = node[p]
        node[leaf] = value
    return body


def _errors(body: dict[str, Any]) -> dict[str, str]:
    try:
        validate_request(body, today=TODAY)
    except ValidationFailed as exc:
        return {e.field: e.message for e in exc.errors}
    return {}


def _young_driver(age: int, experience: int = 0) -> dict[str, str]:
    born = START.replace(year=START.year - age) - timedelta(days=1)
    since = START.replace(year=START.year - experience) - timedelta(days=1)
    return {"birth_date": born.isoformat(), "experience_start_date": since.isoformat()}


# --- the cap -----------------------------------------------------------------------------


def test_a_novice_in_moscow_with_200_hp_is_priced_within_the_cap() -> None:
    """The issue's case: both stub bounds were above the legal maximum (10 701-66 279 RUB
    against a cap of 7 555-46 791)."""
    body = _body(vehicle__engine_power_hp=200, drivers=[_young_driver(19)])
    stub = stub_for(validate_request(body, today=TODAY), 60.0)
    assert (stub["premium_min"], stub["premium_max"]) == (
        round(3 * 1399 * 1.8, 2),
        round(3 * 8665 * 1.8, 2),
    )
    b = stub["breakdown"]
    assert b["capped"] is True
    assert b["product"] > b["cap"] == pytest.approx(3 * 1.8)
    assert b["factor"] == b["cap"]


def test_the_cap_is_five_times_with_kn_and_only_binds_above_it() -> None:
    t = tariff_input(validate_request(_body(drivers=[_young_driver(19)]), today=TODAY))
    risky = TariffInput(**{**t.__dict__, "engine_power_hp": 200.0})
    with_kn = TariffInput(**{**risky.__dict__, "gross_violations": True})
    b, b_kn = coefficients(risky), coefficients(with_kn)
    assert b_kn.kn == tables.KN
    assert b_kn.cap == pytest.approx(5 * b.kt)
    assert b_kn.product == pytest.approx(b.product * tables.KN)
    assert premium(1000.0, b_kn) == round(1000.0 * min(b_kn.product, 5 * b.kt), 2)
    mild = coefficients(tariff_input(validate_request(_body(), today=TODAY)))
    assert not mild.capped
    assert premium(1000.0, mild) == round(1000.0 * mild.product, 2)


def test_gross_violations_is_a_field_of_the_policy() -> None:
    body = validate_request(_body(policy__gross_violations=True), today=TODAY)
    assert tariff_input(body).gross_violations is True
    assert validate_request(_body(), today=TODAY)["policy"]["gross_violations"] is False
    assert "policy.gross_violations" in _errors(_body(policy__gross_violations="yes"))


# --- КС ----------------------------------------------------------------------------------


def test_a_legal_entitys_short_policy_is_priced_for_the_year() -> None:
    legal = _body(owner__type="legal", policy__period_months=3, drivers=[])
    individual = _body(policy__period_months=3)
    assert coefficients(tariff_input(validate_request(legal, today=TODAY))).ks == 1.0
    assert coefficients(tariff_input(validate_request(individual, today=TODAY))).ks == 0.5


# --- territories -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "city", "expected"),
    [
        ("7700000200000", None, ("Moscow", 1.80)),  # Zelenograd
        ("7700000000012", None, ("Moscow", 1.80)),
        ("7800000200000", None, ("St Petersburg", 1.64)),  # a district of St Petersburg
        ("9200000100000", None, ("Sevastopol", 0.82)),
        ("5000002300000", None, ("Moscow region", 1.56)),  # a town of the region
        ("1600000100000", None, ("Kazan", 1.70)),
        ("1600000100012", None, ("Kazan", 1.70)),  # a settlement code inside Kazan
        ("1600000000000", "1600000100000", ("Kazan", 1.70)),  # region + city, as partners send
        ("5000000000000", "5000002300000", ("Moscow region", 1.56)),
        ("1600000000000", None, None),  # Tatarstan's other places: no value transcribed
        ("1600000000000", "7700000000000", None),  # a city outside the region's subject
        ("7100000100000", None, None),  # Tula: not transcribed
    ],
)
def test_places_are_found_by_subject_then_city(
    region: str, city: str | None, expected: tuple[str, float] | None
) -> None:
    assert territory(region, city) == expected


def test_a_place_inside_a_federal_city_is_accepted_and_an_unknown_one_refused_by_field() -> None:
    assert not _errors(_body(owner__region_kladr="7700000200000"))
    assert not _errors(
        _body(owner__region_kladr="1600000000000", owner__city_kladr="1600000100000")
    )
    assert "owner.city_kladr" in _errors(
        _body(owner__region_kladr="1600000000000", owner__city_kladr="1600000200000")
    )
    assert "owner.region_kladr" in _errors(_body(owner__region_kladr="7100000100000"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[[subject]]\ncode = "7"\nname = "x"\nkt = 1.0', "2 digits"),
        ('[[subject]]\ncode = "77"\nname = "x"', "no value"),
        ('[[subject]]\ncode = "77"\nname = "x"\nkt = "1.8"', "coefficient"),
        ('[[subject]]\ncode = "77"\nname = "x"\nkt = 1.8\nother = 1.0', "kt alone"),
        (
            '[[subject]]\ncode = "16"\nname = "x"\n'
            'cities = [{ code = "17000001000", name = "y", kt = 1.0 }]',
            "not in subject 16",
        ),
        ('[[subject]]\ncode = "77"\nname = "x"\nkt = 1.8\n' * 2, "twice"),
    ],
)
def test_a_malformed_territory_table_fails_at_load(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        territories.load(text)


def test_every_listed_place_is_priced_as_listed() -> None:
    for name, code in territories.listing():
        found = territory(code)
        assert found is not None
        assert found[0] == name


# --- categories and plates ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "age", "refused"),
    [("A1", 16, False), ("M", 17, False), ("A", 17, True), ("B", 17, True), ("M", 15, True)],
)
def test_light_motorcycles_and_mopeds_may_be_driven_from_16(
    category: str, age: int, refused: bool
) -> None:
    body = _body(vehicle__category=category, drivers=[_young_driver(age)])
    assert ("drivers.0.birth_date" in _errors(body)) is refused


def test_light_motorcycles_and_mopeds_are_priced_on_the_motorcycle_row() -> None:
    for category in ("A", "A1", "M"):
        t = tariff_input(validate_request(_body(vehicle__category=category), today=TODAY))
        assert base_corridor(t) == tables.BASE_RATE[("moto", "individual", "personal")]
        assert "policy.purpose" in _errors(
            _body(vehicle__category=category, policy__purpose="taxi")
        )


@pytest.mark.parametrize(
    ("plate", "ok"),
    [
        ("А123ВС77", True),  # car
        ("A123BC777", True),  # Latin twins
        ("АВ12377", True),  # taxi
        ("АВ123477", True),  # trailer
        ("1234АВ77", True),  # motorcycle
        ("1234АВ7", False),
        ("Ж123ВС77", False),  # not a plate letter
        ("А12ВС77", False),
    ],
)
def test_plate_formats(plate: str, ok: bool) -> None:
    assert ("vehicle.plate" not in _errors(_body(vehicle__plate=plate))) is ok


# --- the legal range, for any request ----------------------------------------------------

_MIN_OTHERS = (
    min(tables.KBM.values())
    * min(c for row in tables.KVS for c in row if c is not None)
    * tables.KO_LIMITED
    * min(c for _, c in tables.KM)
    * min(tables.KS.values())
)


@st.composite
def tariff_inputs(draw: st.DrawFn) -> TariffInput:
    category = draw(st.sampled_from(["A", "A1", "M", "B", "BE"]))
    owner = draw(st.sampled_from(["individual", "legal"]))
    unlimited = owner == "individual" and draw(st.booleans())
    purpose = (
        "personal"
        if category in tables.MOTO_CATEGORIES
        else draw(st.sampled_from(["personal", "taxi"]))
    )
    drivers: tuple[Driver, ...] = ()
    if owner == "individual" and not unlimited:
        n = draw(st.integers(1, 5))
        cells = [
            (a, e) for a in range(16, 90, 3) for e in range(0, a - 15) if kvs(a, e) is not None
        ]
        chosen = draw(st.lists(st.sampled_from(cells), min_size=n, max_size=n))
        drivers = tuple(
            Driver(
                START.replace(year=START.year - a) - timedelta(days=1),
                START.replace(year=START.year - e) - timedelta(days=1),
                draw(st.sampled_from(list(tables.KBM))),
            )
            for a, e in chosen
        )
    _, region = draw(st.sampled_from(territories.listing()))
    return TariffInput(
        start_date=START,
        period_months=draw(st.integers(3, 12)),
        region_kladr=region,
        engine_power_hp=draw(st.floats(1, 2000)),
        category=category,
        owner_type=owner,
        purpose=purpose,
        unlimited_drivers=unlimited,
        drivers=drivers,
        owner_kbm_class=draw(st.sampled_from(list(tables.KBM))),
        gross_violations=draw(st.booleans()),
    )


@settings(max_examples=400)
@given(tariff_inputs(), st.floats(0, 1))
def test_no_request_however_risky_is_priced_outside_the_legal_range(
    t: TariffInput, where: float
) -> None:
    low_tb, high_tb = base_corridor(t)
    b = coefficients(t)
    multiple = tables.CAP_MULTIPLE_KN if t.gross_violations else tables.CAP_MULTIPLE
    legal = (round(low_tb * b.kt * _MIN_OTHERS, 2), round(multiple * high_tb * b.kt, 2))
    price = premium(low_tb + (high_tb - low_tb) * where, b)
    assert legal[0] <= price <= legal[1]
    low, high = corridor(t)
    assert legal[0] <= low <= price <= high <= legal[1]
    for d in t.drivers:  # every driver the engine priced is one the law lets drive
        assert years_between(d.birth_date, t.start_date) >= 16


@settings(max_examples=200)
@given(tariff_inputs())
def test_the_stubs_range_always_lies_inside_the_legal_range(t: TariffInput) -> None:
    low, high = corridor(t)
    b = coefficients(t)
    low_tb, high_tb = base_corridor(t)
    assert low <= high <= round(3 * high_tb * b.kt * (5 / 3 if t.gross_violations else 1), 2)
    assert low >= round(low_tb * b.kt * _MIN_OTHERS, 2)
