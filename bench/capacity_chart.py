"""bench/capacity.py's chart: latency and CPU per calculation against rate (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def chart(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r["rate"] for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [("overhead", "overhead"), ("wait", "wait (ready -> frame)")]
    if any(r.get("added") for r in results):  # calm: all the user waits for us, queue included
        series.append(("added", "added (202 -> frame, less the insurer's time)"))
    for key, label in series:
        for p, style in ((50, "-o"), (99, "--o")):
            a.plot(rates, [1000 * pct(r[key], p) for r in results], style, label=f"{label} p{p}")
    a.set(xlabel="calculations/s", ylabel="ms", yscale="log", title="latency")
    a.legend(fontsize=8)
    groups = sorted({g for r in results for g in r["cpu_ms"]})
    bottom = [0.0] * len(results)
    for g in groups:
        vals = [r["cpu_ms"].get(g, 0.0) for r in results]
        b.bar([str(x) for x in rates], vals, bottom=bottom, label=g)
        bottom = [x + y for x, y in zip(bottom, vals, strict=True)]
    for x, top, r in zip(rates, bottom, results, strict=True):
        # What each bar stands for: offers delivered, and how busy the box was meanwhile.
        delivered = 100 * r["offers"] / max(r["expected"], 1)
        note = f"{delivered:.0f}% delivered\n{r['cores']:.2f} cores"
        b.annotate(note, (str(x), top), ha="center", va="bottom", fontsize=7)
    b.set(xlabel="calculations/s", ylabel="CPU ms per calculation", title="CPU per calculation")
    b.margins(y=0.15)  # room for the notes above the bars
    b.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"chart: {path}")
