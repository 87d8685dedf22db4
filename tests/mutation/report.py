"""Per-module kill rates of the last `make mutate` run, and the survivors SURVIVORS.md lacks.

Run from .mutation/ (the Makefile does): reads `mutmut results --all true`. Exit status 1 when
a surviving mutant is not listed in tests/mutation/SURVIVORS.md (by its mutmut name).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

SURVIVORS = Path(__file__).resolve().with_name("SURVIVORS.md")
# Mutants a test run killed: a failing test, or a test that hung (mutmut's timeout).
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_RUN = {"not checked", "skipped", "check was interrupted by user"}


def results() -> list[tuple[str, str]]:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("huey_core."):
            rows.append((name, status))
    return rows


def module_of(name: str) -> str:
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def main() -> int:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors = []
    for name, status in results():
        by_module[module_of(name)][status] += 1
        if status in ("survived", "no tests", "suspicious"):
            survivors.append(name)
    total = Counter[str]()
    print(f"{'module':28} {'mutants':>7} {'run':>5} {'killed':>6} {'survived':>8} {'rate':>6}")
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        _row(module, counts)
    _row("TOTAL", total)
    listed = SURVIVORS.read_text() if SURVIVORS.exists() else ""
    missing = [name for name in survivors if f"`{name}`" not in listed]
    if missing:
        print(f"\n{len(missing)} surviving mutant(s) not explained in {SURVIVORS.name}:")
        for name in missing:
            print(f"  {name}   (mutmut show {name})")
        return 1
    return 0


def _row(module: str, counts: Counter[str]) -> None:
    mutants = sum(counts.values())
    run = mutants - sum(counts[s] for s in NOT_RUN)
    killed = sum(counts[s] for s in KILLED)
    rate = f"{100 * killed / run:5.1f}%" if run else "  -  "
    print(f"{module:28} {mutants:7} {run:5} {killed:6} {run - killed:8} {rate:>6}")


if __name__ == "__main__":
    sys.exit(main())
