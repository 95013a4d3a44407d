"""A/B: the same capacity steps, alternately on two versions of the code, on one noisy box.

Why: on a shared 2-core VM the same code measured 58.7 and 69.1 ms of CPU per calculation
ten minutes apart (calm 30/s, 2026-12-06); a change worth a few percent is invisible between
two runs made at different times. This runs ``bench/capacity.py`` with the arguments after
``--`` on REV (a git worktree in /tmp) and on this working tree, alternately (A B A B ...),
ROUNDS times, prints every step line as it comes (prefixed A or B) and then each version's
mean CPU per calculation, per process. Each role process runs the code of the tree the step
was started in (``python -m osago`` from that directory).

    .venv/bin/python bench/ab.py --base HEAD --rounds 2 -- --rates 25 --seconds 45
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
CPU_LINE = re.compile(r"CPU ms per calculation: ours\+activemq\+postgres ([\d.]+)\s+\(([^)]*)\)")
HOST = re.compile(r"host reference workload ([\d.]+)/([\d.]+) ms")


def worktree(rev: str) -> Path:
    """A detached worktree of ``rev`` (made once per commit, kept for the next run)."""
    sha = subprocess.check_output(["git", "rev-parse", rev], cwd=ROOT, text=True).strip()
    path = Path(f"/tmp/osago-ab-{sha[:12]}")
    if not path.exists():
        add = ["git", "worktree", "add", "-q", "--detach", str(path), sha]
        subprocess.check_call(add, cwd=ROOT)
    return path


def step(tree: Path, label: str, args: list[str]) -> list[dict[str, float]]:
    """Run capacity.py in ``tree``; echo its step lines; the CPU figures of each step."""
    proc = subprocess.Popen(
        [sys.executable, "bench/capacity.py", *args],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    found = []
    for line in proc.stdout:
        print(f"{label} {line}", end="", flush=True)
        if m := CPU_LINE.search(line):
            figures = {"total": float(m[1])}
            parts = m[2].split()
            figures |= {name: float(v) for name, v in zip(parts[::2], parts[1::2], strict=True)}
            if h := HOST.search(line):
                figures["host reference"] = (float(h[1]) + float(h[2])) / 2
            found.append(figures)
    proc.wait()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="version A (B: this working tree)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("capacity_args", nargs=argparse.REMAINDER)
    a = parser.parse_args()
    args = [x for x in a.capacity_args if x != "--"]
    trees = {"A": worktree(a.base), "B": ROOT}
    seen: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(a.rounds):
        for label, tree in trees.items():
            seen[label] += step(tree, label, args)
    print(f"mean CPU ms per calculation over every step (A = {a.base}, B = working tree):")
    for label, steps in seen.items():
        if steps:
            names = sorted(steps[0])
            cells = "  ".join(f"{n} {mean(s[n] for s in steps):.1f}" for n in names)
            print(f"  {label}: {cells}  ({len(steps)} steps)")


if __name__ == "__main__":
    main()
