"""How a capacity step is printed: one line of counts and percentiles, then its details."""

from __future__ import annotations

from typing import Any

from bench.capacity_chart import pct
from bench.capacity_lag import lag_line

__all__ = ["line"]


def fmt_counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def line(r: dict[str, Any]) -> str:

    def ms(xs: list[float], p: float) -> float:
        return 1000 * pct(xs, p)

    cpu = r["cpu_ms"]
    ours = sum(v for k, v in cpu.items() if k != "simulator")
    parts = "  ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()))
    return (
        f"rate {r['rate']:>5g}/s  calcs {r['calculations']:>5}  refused {r['refused']}  "
        f"completed {r['completed']:>5}  "
        f"offers {r['offers']}/{r['expected']}  repeats {r['repeats']}  "
        f"overhead p50/p99 {ms(r['overhead'], 50):.1f}/{ms(r['overhead'], 99):.1f} ms  "
        f"wait p50/p99 {ms(r['wait'], 50):.0f}/{ms(r['wait'], 99):.0f} ms  "
        f"no_offer {r['no_offer']} ({fmt_counts(r['no_offer_by'])})  "
        f"stubs {r['stubs']}  late {r['late']} ({r['late_insurer']} ready past the deadline,"
        f" {r['late_faulted']} met a fault)  "
        f"polls/exchange {r['polls_per_exchange']:.2f}\n"
        + (
            f"      added (202 -> frame, less the insurer's fixed time) p50/p99 "
            f"{ms(r['added'], 50):.0f}/{ms(r['added'], 99):.0f} ms\n"
            if r["added"]
            else ""
        )
        + "      before the insurer has the job, p50/p99: "
        + ", ".join(
            f"{name} {ms(r['stages'][key], 50):.0f}/{ms(r['stages'][key], 99):.0f} ms"
            for key, name in (
                ("pickup", "commit -> picked up"),
                ("submit", "picked up -> submitted"),
            )
        )
        + "\n"
        + stages_line("after the answer (its overhead in stages)", r.get("after_answer", {}), 1)
        + "      wait p50/p99 by the insurer's mode: "
        + ", ".join(
            f"{mode} {ms(w, 50):.0f}/{ms(w, 99):.0f} ms"
            for mode, w in r["wait_by_mode"].items()
            if w
        )
        + "\n"
        + stages_line("callbacks, no fault", r.get("callback_split", {}), 0)
        + f"      CPU ms per calculation: ours+activemq+postgres {ours:.1f}  ({parts});"
        f" {r['cores']:.2f} cores busy over the step's {r['elapsed']:.0f} s;"
        " host reference workload {:.0f}/{:.0f} ms before/after (bench/capacity_cpu.py)".format(
            *r["reference_ms"]
        )
        + gc_line(r)
        + lag_line(r)
    )


def stages_line(title: str, stages: dict[str, list[float]], digits: int) -> str:
    """A detail line of stages' p50/p99 in ms; none if no stage has a figure."""
    if not any(stages.values()):
        return ""
    return (
        f"      {title}, p50/p99: "
        + ", ".join(
            f"{name} {1000 * pct(xs, 50):.{digits}f}/{1000 * pct(xs, 99):.{digits}f} ms"
            for name, xs in stages.items()
        )
        + "\n"
    )


def gc_line(r: dict[str, Any]) -> str:
    """The garbage collector's pauses per calculation, per group: the CPU they took and its
    share of the group's CPU (a pause is wall time, a core waited for included), and per
    generation how many, how long on average, and how many of 25 ms or more (those show in
    the overhead's p99)."""
    parts = []
    for group, gens in sorted(r.get("gc", {}).items()):
        paused = sum(ms for ms, *_ in gens.values())
        spent = sum(cpu_ms for *_, cpu_ms in gens.values())
        cpu = r["cpu_ms"].get(group, 0.0)
        share = f"CPU {spent:.2f} ms, {100 * spent / cpu:.1f} % of its CPU" if cpu > 0 else "no CPU"
        each = ", ".join(
            f"gen {gen}: {k} x {ms * r['calculations'] / k:.1f} ms"
            + (f" ({long} of 25 ms or more)" if long else "")
            for gen, (ms, k, long, _) in sorted(gens.items())
            if k
        )
        parts.append(f"{group} {paused:.2f} ms ({share}; {each or 'none'})")
    return "\n      GC paused per calculation: " + "; ".join(parts) if parts else ""
