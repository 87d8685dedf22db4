"""The Python blocks of docs/asyncio.md, docs/flask.md and docs/fastapi.md run as written, each
in a fresh interpreter (until issue 12's harness runs every page's blocks). Their `console`
blocks are the transcripts of `make flask-demo` / `make fastapi-demo`, which the example tests
run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("asyncio.md", "flask.md", "fastapi.md")
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        for index, match in enumerate(BLOCK.finditer((DOCS / page).read_text())):
            found.append((page, index, match.group(1)))
    return found


@pytest.mark.parametrize(
    ("page", "index", "code"), [pytest.param(*b, id=f"{b[0]}-{b[1]}") for b in blocks()]
)
def test_doc_block_runs(page: str, index: int, code: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{page} block {index} failed:\n{done.stderr[-3000:]}"


def test_every_page_has_blocks() -> None:
    pages = {page for page, _, _ in blocks()}
    assert pages == set(PAGES)
