"""`pip` inside documentation blocks (tests/docs): `pip install X` resolves X against wheels
built from this checkout instead of installing from an index, and fails on an extra that does
not exist (pip itself only warns). Other pip commands are refused: a docs block must not change
the test environment."""

from __future__ import annotations

import os
import subprocess
import sys

args = sys.argv[1:]
if not args or args[0] != "install":
    sys.exit(f"docs_pip: only `pip install` can run in a docs block, not: pip {' '.join(args)}")
proc = subprocess.run(
    [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
     "--find-links", os.environ["DOCS_WHEELS"], *args[1:]],
    capture_output=True, text=True,
)  # fmt: skip
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
if proc.returncode == 0 and "does not provide the extra" in proc.stderr:
    sys.exit("docs_pip: an extra in the docs does not exist")
sys.exit(proc.returncode)
