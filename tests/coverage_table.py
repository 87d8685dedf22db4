"""Print the per-module table of `make test`'s combined coverage: lines and branches.

Reads the combined data file (`coverage combine` first). Usage: python tests/coverage_table.py
[MODULE=MIN_BRANCH_PERCENT ...]; exit status 1 when a named module's branch coverage is below
its minimum (the Makefile holds consumer.py to 85%, issue 16).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


def main(argv: list[str]) -> int:
    minimums = {name: float(pct) for name, _, pct in (arg.partition("=") for arg in argv)}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "coverage.json")
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", out], check=True)
        with open(out) as f:
            files = json.load(f)["files"]
    rows = []
    for path, data in files.items():
        summary = data["summary"]
        module = path.split("/src/", 1)[-1]
        rows.append((module, summary))
    print(f"{'module':44} {'lines':>6} {'line %':>7} {'branches':>8} {'branch %':>8}")
    total_lines = total_cov = total_br = total_brcov = 0
    failed = []
    for module, s in sorted(rows):
        lines, covered = s["num_statements"], s["covered_lines"]
        branches, brcov = s.get("num_branches", 0), s.get("covered_branches", 0)
        total_lines, total_cov = total_lines + lines, total_cov + covered
        total_br, total_brcov = total_br + branches, total_brcov + brcov
        branch_pct = 100 * brcov / branches if branches else 100.0
        print(
            f"{module:44} {lines:6} {_pct(covered, lines):>7} {branches:8} {_pct(brcov, branches):>8}"
        )
        for name, minimum in minimums.items():
            if module.endswith(name) and branch_pct < minimum:
                failed.append(f"{module}: {branch_pct:.1f}% of branches, below {minimum:.0f}%")
    print(
        f"{'TOTAL':44} {total_lines:6} {_pct(total_cov, total_lines):>7} {total_br:8} "
        f"{_pct(total_brcov, total_br):>8}"
    )
    for line in failed:
        print(f"coverage: {line}", file=sys.stderr)
    return 1 if failed else 0


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
