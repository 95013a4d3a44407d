"""Every tariff coefficient as data, in one place (source: shared/domain/osago-tariffs.md).

Values marked UNVERIFIED have a single public source; correct them here and nowhere else.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BASE_RATE",
    "CAP_MULTIPLE",
    "CAP_MULTIPLE_KN",
    "KBM",
    "KM",
    "KN",
    "KO_LEGAL",
    "KO_LIMITED",
    "KO_UNLIMITED_INDIVIDUAL",
    "KS",
    "KVS",
    "KVS_AGE_BANDS",
    "KVS_EXPERIENCE_BANDS",
    "MOTO_CATEGORIES",
]

# Categories priced on the motorcycle row: motorcycles (A), light motorcycles (A1) and mopeds
# and light quadricycles (M). A1 and M are licensed from 16.
MOTO_CATEGORIES: Final = frozenset({"A", "A1", "M"})

# ТБ corridors (rubles) since 2025-12-09 (act 7204-У), by (vehicle group, owner, purpose).
BASE_RATE: Final[dict[tuple[str, str, str], tuple[float, float]]] = {
    ("car", "individual", "personal"): (1399.0, 8665.0),
    ("car", "legal", "personal"): (724.0, 6580.0),
    ("car", "individual", "taxi"): (1267.0, 18119.0),
    ("car", "legal", "taxi"): (1267.0, 18119.0),
    ("moto", "individual", "personal"): (155.0, 4260.0),
    ("moto", "legal", "personal"): (155.0, 4260.0),
}

# КТ by territory lives in territories.toml (a data file: the act's table is long), read by
# osago.domain.territories.

# КБМ by bonus-malus class; a new driver starts at class 3.
KBM: Final[dict[str, float]] = {
    "M": 3.92,
    "0": 2.94,
    "1": 2.25,
    "2": 1.76,
    "3": 1.17,
    "4": 1.00,
    "5": 0.91,
    "6": 0.83,
    "7": 0.78,
    "8": 0.74,
    "9": 0.68,
    "10": 0.63,
    "11": 0.57,
    "12": 0.52,
    "13": 0.46,
}

# КВС: age x experience. Bands are lower-inclusive; None marks an impossible cell.
KVS_AGE_BANDS: Final[tuple[int, ...]] = (16, 22, 25, 30, 35, 40, 50, 60)
KVS_EXPERIENCE_BANDS: Final[tuple[int, ...]] = (0, 1, 2, 3, 5, 7, 10, 15)
KVS: Final[tuple[tuple[float | None, ...], ...]] = (
    (2.27, 1.92, 1.84, 1.65, 1.62, None, None, None),  # 16-21
    (1.88, 1.72, 1.71, 1.13, 1.10, 1.09, None, None),  # 22-24
    (1.72, 1.60, 1.54, 1.09, 1.08, 1.07, 1.02, None),  # 25-29
    (1.56, 1.50, 1.48, 1.05, 1.04, 1.01, 0.97, 0.95),  # 30-34
    (1.54, 1.47, 1.46, 1.00, 0.97, 0.95, 0.94, 0.93),  # 35-39
    (1.50, 1.44, 1.43, 0.96, 0.95, 0.94, 0.93, 0.91),  # 40-49
    (1.46, 1.40, 1.39, 0.93, 0.92, 0.91, 0.90, 0.86),  # 50-59
    (1.43, 1.36, 1.35, 0.91, 0.90, 0.89, 0.88, 0.83),  # 60+
)

# КО: limited list 1.00; unlimited list of an individual owner: 3.16 by the 2025 act's
# transcription -- UNVERIFIED (2.32 under the 2022 act); legal entities 1.97.
KO_LIMITED: Final = 1.00
KO_UNLIMITED_INDIVIDUAL: Final = 3.16
KO_LEGAL: Final = 1.97

# КМ by engine power (hp): bands lower-exclusive, upper-inclusive: (upper bound, coefficient).
KM: Final[tuple[tuple[float, float], ...]] = (
    (50, 0.6),
    (70, 1.0),
    (100, 1.1),
    (120, 1.2),
    (150, 1.4),
    (float("inf"), 1.6),
)

# КС by months of use in the year (3 is the minimum a policy can have). Individuals only: a
# legal entity's policy is priced for the year whatever its period (issue 13's audit of the
# act; a legal entity's short policy was priced at half the year).
KS: Final[dict[int, float]] = {
    3: 0.5,
    4: 0.6,
    5: 0.65,
    6: 0.7,
    7: 0.8,
    8: 0.9,
    9: 0.95,
    10: 1.0,
    11: 1.0,
    12: 1.0,
}

# КН, gross violations of the insurance terms (40-ФЗ art. 9 §3): UNVERIFIED value.
KN: Final = 1.5

# The premium cap, 40-ФЗ art. 9 §3: at most 3 × ТБ × КТ, 5 × ТБ × КТ when КН applies.
CAP_MULTIPLE: Final = 3.0
CAP_MULTIPLE_KN: Final = 5.0
