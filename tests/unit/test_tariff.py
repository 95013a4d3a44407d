"""The tariff engine against the reference's worked example and each coefficient's edges."""

from __future__ import annotations

from datetime import date

import pytest

from osago.domain.tariff import Driver, TariffInput, coefficients, corridor, km, ks, kvs, territory

START = date(2026, 12, 1)


def driver(age: int, experience: int, kbm: str = "3") -> Driver:
    born = date(START.year - age, 6, 1) if START.month < 6 else date(START.year - age, 1, 1)
    since = date(START.year - experience, 1, 1) if experience else date(START.year, 1, 1)
    return Driver(born, since, kbm)


def request(**kw: object) -> TariffInput:
    base: dict[str, object] = dict(
        start_date=START,
        period_months=12,
        region_kladr="7700000000000",
        engine_power_hp=87,
        drivers=(driver(24, 4, "4"),),
    )
    base.update(kw)
    return TariffInput(**base)  # type: ignore[arg-type]


def test_worked_example_from_the_reference() -> None:
    t = request()
    b = coefficients(t)
    assert (b.kt, b.kvs, b.kbm, b.ko, b.km, b.ks) == (1.8, 1.13, 1.0, 1.0, 1.1, 1.0)
    assert b.product == pytest.approx(2.2374)
    low, high = corridor(t)
    assert (round(low), round(high)) == (3130, 19387)


@pytest.mark.parametrize(
    ("changes", "product"),
    [
        # КМ band edges: lower-exclusive, upper-inclusive
        ({"engine_power_hp": 50}, 1.8 * 1.13 * 0.6),
        ({"engine_power_hp": 50.5}, 1.8 * 1.13 * 1.0),
        ({"engine_power_hp": 100}, 1.8 * 1.13 * 1.1),
        ({"engine_power_hp": 150}, 1.8 * 1.13 * 1.4),
        ({"engine_power_hp": 151}, 1.8 * 1.13 * 1.6),
        # КС edges
        ({"period_months": 3}, 2.2374 * 0.5),
        ({"period_months": 9}, 2.2374 * 0.95),
        ({"period_months": 10}, 2.2374 * 1.0),
        # КТ: other territories, a town of the Moscow region
        ({"region_kladr": "5400000100000"}, 3.12 * 1.13 * 1.1),
        ({"region_kladr": "9200000000000"}, 0.82 * 1.13 * 1.1),
        ({"region_kladr": "5000002300000"}, 1.56 * 1.13 * 1.1),
        # КБМ: the extremes, and the highest of several drivers
        ({"drivers": (driver(24, 4, "M"),)}, 1.8 * 1.13 * 3.92 * 1.1),
        ({"drivers": (driver(24, 4, "13"),)}, 1.8 * 1.13 * 0.46 * 1.1),
        ({"drivers": (driver(24, 4, "13"), driver(40, 20, "0"))}, 1.8 * 1.13 * 2.94 * 1.1),
        # КВС: the highest of several drivers; band edges
        ({"drivers": (driver(24, 4, "4"), driver(19, 1, "4"))}, 1.8 * 1.92 * 1.1),
        ({"drivers": (driver(60, 15, "4"),)}, 1.8 * 0.83 * 1.1),
        ({"drivers": (driver(59, 15, "4"),)}, 1.8 * 0.86 * 1.1),
        # КО: unlimited list (no КВС, owner's КБМ) and legal entities
        ({"unlimited_drivers": True, "drivers": (), "owner_kbm_class": "4"}, 1.8 * 3.16 * 1.1),
        ({"owner_type": "legal", "drivers": (), "owner_kbm_class": "4"}, 1.8 * 1.97 * 1.1),
    ],
)
def test_each_coefficient(changes: dict[str, object], product: float) -> None:
    assert coefficients(request(**changes)).product == pytest.approx(product)


@pytest.mark.parametrize(
    ("changes", "low", "high"),
    [
        ({"purpose": "taxi"}, 1267, 18119),
        ({"owner_type": "legal", "drivers": (), "owner_kbm_class": "4"}, 724, 6580),
        ({"category": "A"}, 155, 4260),
    ],
)
def test_corridor_follows_the_base_rate_row(
    changes: dict[str, object], low: float, high: float
) -> None:
    t = request(**changes)
    got = corridor(t)
    product = coefficients(t).product
    assert got == (round(low * product, 2), round(high * product, 2))


def test_tables_at_their_edges() -> None:
    assert [km(h) for h in (1, 50, 70, 70.1, 120, 120.5)] == [0.6, 0.6, 1.0, 1.1, 1.2, 1.4]
    assert [ks(m) for m in (3, 4, 8, 12)] == [0.5, 0.6, 0.9, 1.0]
    assert kvs(21, 2) == 1.84
    assert kvs(22, 3) == 1.13
    assert kvs(25, 0) == 1.72
    assert kvs(21, 7) is None  # impossible cell
    assert kvs(15, 0) is None
    assert territory("0300000100000") is None  # a city the table does not list
    assert territory("7700000000000") == ("Moscow", 1.8)
