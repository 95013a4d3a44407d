"""The Bank of Russia formula: premium = ТБ × КТ × КБМ × КВС × КО × КМ × КС.

``coefficients`` gives the user's own coefficients (everything but the insurer's ТБ);
``corridor`` the legal min and max premium for them; ``premium`` one insurer's price.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from osago.domain import tables

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
    "territory_pattern",
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


@dataclass(frozen=True)
class Breakdown:
    """The user's coefficients and their product."""

    kt: float
    kbm: float
    kvs: float
    ko: float
    km: float
    ks: float
    territory: str

    @property
    def product(self) -> float:
        return self.kt * self.kbm * self.kvs * self.ko * self.km * self.ks

    def to_json(self) -> dict[str, float | str]:
        return {**asdict(self), "product": round(self.product, 6)}


def territory(region_kladr: str) -> tuple[str, float] | None:
    """(name, КТ) of a KLADR code, or None for a territory the table does not know."""
    for name, code, coefficient in tables.TERRITORIES:
        if code[2:] == "0" * 11:  # a federal city or a region: match the subject
            if region_kladr[:2] == code[:2] and region_kladr[2:11] == "0" * 9:
                return name, coefficient
        elif region_kladr[:11] == code[:11]:
            return name, coefficient
    # A place of the Moscow or Leningrad region outside the listed cities.
    for name, code, coefficient in tables.TERRITORIES:
        if code[2:] == "0" * 11 and region_kladr[:2] == code[:2] and code[:2] in ("50", "47"):
            return name, coefficient
    return None


def territory_pattern() -> str:
    """A regular expression matching exactly the 13-digit codes :func:`territory` knows:
    the OpenAPI document states the rule the server applies."""
    alternatives = []
    for _, code, _ in tables.TERRITORIES:
        if code[2:] == "0" * 11:
            alternatives.append(
                code[:2] + ("\\d{11}" if code[:2] in ("50", "47") else "0{9}\\d{2}")
            )
        else:
            alternatives.append(code[:11] + "\\d{2}")
    return "|".join(alternatives)


def kt(region_kladr: str) -> float:
    found = territory(region_kladr)
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


def ks(months: int) -> float:
    return tables.KS[min(max(months, 3), 12)]


def base_corridor(t: TariffInput) -> tuple[float, float]:
    """The ТБ corridor for the vehicle, owner and purpose."""
    group = "moto" if t.category == "A" else "car"
    return tables.BASE_RATE[(group, t.owner_type, t.purpose)]


def coefficients(t: TariffInput) -> Breakdown:
    """The user's coefficients. Several drivers: the highest КБМ and КВС apply; an unlimited
    list applies no КВС and takes the owner's КБМ."""
    name, kt_ = territory(t.region_kladr) or ("unknown", 0.0)
    if not kt_:
        raise ValueError(f"unknown territory {t.region_kladr}")
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
        ks=ks(t.period_months),
        territory=name,
    )


def premium(base_rate: float, breakdown: Breakdown) -> float:
    """One insurer's premium, in rubles with kopecks."""
    return round(base_rate * breakdown.product, 2)


def corridor(t: TariffInput) -> tuple[float, float]:
    """The legal min and max premium for these coefficients."""
    low, high = base_corridor(t)
    b = coefficients(t)
    return premium(low, b), premium(high, b)
