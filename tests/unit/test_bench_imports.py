"""Every bench script imports: a helper that moved between bench modules once left
bench/inflight.py failing at its first line, and nothing ran it to notice."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py")))
def test_a_bench_script_imports(name: str) -> None:
    try:
        importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("bench", "osago", "tests"):
            raise
        pytest.skip(f"{exc.name} comes with the bench extra (pip install -e '.[bench]')")
