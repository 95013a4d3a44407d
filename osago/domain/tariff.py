"""The Bank of Russia formula: premium = ТБ × КТ × КБМ × КВС × КО × КМ × КС (× КН),
capped by law (40-ФЗ art. 9 §3) at 3 × ТБ × КТ, or 5 × ТБ × КТ when КН applies.

``coefficients`` gives the user's own coefficients (everything but the insurer's ТБ);
``corridor`` the legal min and max premium for them; ``premium`` one insurer's price. The cap
is applied in one place, :attr:`Breakdown.factor`, so the stub and the simulator inherit it.
Since the cap is a multiple of the same ТБ, whether it binds depends on the user alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from osago.domain import tables, territories

# Premiums, corridors and stubs are in roubles.
CURRENCY = "RUB"

__all__ = [
    "CURRENCY",
    "Breakdown",
    "Driver",
    "TariffInput",
    "base_corridor",
    "coefficients",
    "corridor",
    "km",
    "ks",
    "kt",
    "kvs",
    "premium",
    "territory",
    "years_between",
]


def years_between(earlier: date, later: date) -> int:
    """Whole years from ``earlier`` to ``later``."""
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


@dataclass(frozen=True)
class Driver:
    """What the tariff needs of a driver."""

    birth_date: date
    experience_start_date: date
    kbm_class: str = "3"


@dataclass(frozen=True)
class TariffInput:
    """What the tariff needs of a request."""

    start_date: date
    period_months: int
    region_kladr: str
    engine_power_hp: float
    category: str = "B"
    owner_type: str = "individual"
    purpose: str = "personal"
    unlimited_drivers: bool = False
    drivers: tuple[Driver, ...] = ()
    owner_kbm_class: str = "3"
    city_kladr: str | None = None
    gross_violations: bool = False


@dataclass(frozen=True)
class Breakdown:
    """The user's coefficients, their product, and the legal cap on it."""

    kt: float
    kbm: float
    kvs: float
    ko: float
    km: float
    ks: float
    territory: str
    kn: float = 1.0

    @property
    def product(self) -> float:
        """The coefficients' product, before the cap."""
        return self.kt * self.kbm * self.kvs * self.ko * self.km * self.ks * self.kn

    @property
    def cap(self) -> float:
        """The most the premium may be, as a multiple of ТБ: 3 × КТ, 5 × КТ with КН."""
        multiple = tables.CAP_MULTIPLE_KN if self.kn > 1.0 else tables.CAP_MULTIPLE
        return multiple * self.kt

    @property
    def capped(self) -> bool:
        """Whether the law's cap, not the product, sets the price."""
        return self.product > self.cap

    @property
    def factor(self) -> float:
        """What ТБ is multiplied by: the product, or the cap where the product exceeds it."""
        return min(self.product, self.cap)

    def to_json(self) -> dict[str, float | str | bool]:
        return {
            **asdict(self),
            "product": round(self.product, 6),
            "cap": round(self.cap, 6),
            "capped": self.capped,
            "factor": round(self.factor, 6),
        }


def territory(region_kladr: str, city_kladr: str | None = None) -> tuple[str, float] | None:
    """(name, КТ) of a place, or None where the table has no value for it."""
    place = territories.lookup(region_kladr, city_kladr)
    return None if place is None else (place.name, place.kt)


def kt(region_kladr: str, city_kladr: str | None = None) -> float:
    found = territory(region_kladr, city_kladr)
    if found is None:
        raise ValueError(f"unknown territory {region_kladr}")
    return found[1]


def kvs(age: int, experience: int) -> float | None:
    """КВС for an age and experience in whole years; None where the cell is impossible."""
    if age < tables.KVS_AGE_BANDS[0] or experience < 0:
        return None
    row = max(i for i, lo in enumerate(tables.KVS_AGE_BANDS) if age >= lo)
    col = max(i for i, lo in enumerate(tables.KVS_EXPERIENCE_BANDS) if experience >= lo)
    return tables.KVS[row][col]


def km(hp: float) -> float:
    for upper, coefficient in tables.KM:
        if hp <= upper:
            return coefficient
    raise AssertionError("the last band is unbounded")


def ks(months: int, owner_type: str = "individual") -> float:
    """КС, the period of use: individuals only; a legal entity's policy is priced for a year."""
    if owner_type != "individual":
        return 1.0
    return tables.KS[min(max(months, 3), 12)]


def base_corridor(t: TariffInput) -> tuple[float, float]:
    """The ТБ corridor for the vehicle, owner and purpose."""
    group = "moto" if t.category in tables.MOTO_CATEGORIES else "car"
    return tables.BASE_RATE[(group, t.owner_type, t.purpose)]


def coefficients(t: TariffInput) -> Breakdown:
    """The user's coefficients. Several drivers: the highest КБМ and the highest КВС apply,
    each taken separately (as calculators do; the act's text was not at hand to settle it);
    an unlimited list applies no КВС and takes the owner's КБМ."""
    found = territory(t.region_kladr, t.city_kladr)
    if found is None:
        raise ValueError(f"unknown territory {t.region_kladr}")
    name, kt_ = found
    if t.unlimited_drivers or t.owner_type == "legal":
        kbm_ = tables.KBM[t.owner_kbm_class]
        kvs_ = 1.0
        ko = tables.KO_LEGAL if t.owner_type == "legal" else tables.KO_UNLIMITED_INDIVIDUAL
    else:
        kbm_ = max(tables.KBM[d.kbm_class] for d in t.drivers)
        cells = []
        for d in t.drivers:
            cell = kvs(
                years_between(d.birth_date, t.start_date),
                years_between(d.experience_start_date, t.start_date),
            )
            if cell is None:
                raise ValueError("impossible age and experience")
            cells.append(cell)
        kvs_ = max(cells)
        ko = tables.KO_LIMITED
    return Breakdown(
        kt=kt_,
        kbm=kbm_,
        kvs=kvs_,
        ko=ko,
        km=km(t.engine_power_hp),
        ks=ks(t.period_months, t.owner_type),
        territory=name,
        kn=tables.KN if t.gross_violations else 1.0,
    )


def premium(base_rate: float, breakdown: Breakdown) -> float:
    """One insurer's premium, in rubles with kopecks, within the law's cap."""
    return round(base_rate * breakdown.factor, 2)


def corridor(t: TariffInput) -> tuple[float, float]:
    """The legal min and max premium for these coefficients."""
    low, high = base_corridor(t)
    b = coefficients(t)
    return premium(low, b), premium(high, b)
