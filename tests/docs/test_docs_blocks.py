"""Every fenced Python and shell block of the documentation runs (issue 12): README.md,
docs/*.md and each distribution's README.md. The conventions are in docs/contributing.md and
tests/docs/harness.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from huey_core.testing import in_ci
from tests.docs import harness
from tests.docs.harness import Block, DocsError

pytestmark = pytest.mark.slow

DISTRIBUTIONS = [
    "huey_core",
    "huey_memory",
    "huey_redis",
    "huey_sql",
    "huey_dashboard",
    "huey_django",
]


def _collect() -> tuple[list[Block], list[str]]:
    found: list[Block] = []
    errors: list[str] = []
    for page in harness.pages():
        try:
            found += [b for b in harness.blocks(page) if b.kind]
        except DocsError as exc:
            errors.append(str(exc))
    return found, errors


BLOCKS, PARSE_ERRORS = _collect()
# Blocks by name, and file blocks also by their path (`after=myapp/tasks.py`).
NAMED: dict[tuple[Path, str], Block] = {
    (b.page, b.options[key]): b for b in BLOCKS for key in ("file", "name") if key in b.options
}


def test_every_directive_is_understood() -> None:
    assert PARSE_ERRORS == []


def test_pages_are_found_by_glob() -> None:
    docs = set((harness.ROOT / "docs").glob("*.md"))
    assert docs and docs <= set(harness.pages())


# -- the session's servers and wheels -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def private_redis() -> Iterator[int]:
    """A Redis of the docs' own on a free loopback port: blocks that say 127.0.0.1:6379 use it,
    so the fixed instance names of the docs never meet another test run's data."""
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is needed for the docs' Redis blocks (CI=true)")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of this checkout, which `pip install` in a docs block resolves against."""
    out = tmp_path_factory.mktemp("docs-wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
        + [str(harness.ROOT / d) for d in DISTRIBUTIONS],
        check=True,
    )
    return out


@pytest.fixture(scope="session")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    return {}


def _workspace(page: Path, workspaces: dict[Path, Path], tmp: pytest.TempPathFactory) -> Path:
    """The page's working directory, with the files its `file=` blocks write."""
    if page not in workspaces:
        directory = tmp.mktemp(page.stem.lower())
        for block in harness.blocks(page):
            path = block.options.get("file")
            if path:
                target = directory / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code, encoding="utf-8")
                for parent in target.relative_to(directory).parents:
                    init = directory / parent / "__init__.py"
                    if parent != Path(".") and not init.exists():
                        init.write_text("")
        workspaces[page] = directory
    return workspaces[page]


def _environment(workspace: Path, request: pytest.FixtureRequest, code: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUEY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(workspace)
    env["PYTHONUNBUFFERED"] = "1"
    env["DOCS_PYTHON"] = sys.executable
    env["DOCS_PIP"] = str(Path(__file__).with_name("docs_pip.py"))
    if "pip install" in code:
        env["DOCS_WHEELS"] = str(request.getfixturevalue("wheelhouse"))
    return env


def _with_servers(code: str, request: pytest.FixtureRequest) -> str:
    for address in ("127.0.0.1:6379", "localhost:6379"):
        if address in code:
            port = request.getfixturevalue("private_redis")
            code = code.replace(address, f"127.0.0.1:{port}")
    return code


def _id(block: Block) -> str:
    return f"{block.where}-{block.language}"


@pytest.mark.parametrize("block", BLOCKS, ids=_id)
def test_block(
    block: Block,
    request: pytest.FixtureRequest,
    workspaces: dict[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if "skip" in block.options:
        pytest.skip(f"{block.where}: not run: {block.options['skip']}")
    if block.quoted_file:
        problem = harness.check_quote(block)
        assert problem is None, problem
        return
    workspace = _workspace(block.page, workspaces, tmp_path_factory)
    if "file" in block.options:
        if block.kind == "python":
            compile(block.code, block.options["file"], "exec")  # a file must at least parse
        return
    named = {name: b for (page, name), b in NAMED.items() if page == block.page}
    code = _with_servers(harness.program(block, named), request)
    env = _environment(workspace, request, code)
    if "long-running" in block.options:
        for line in harness.command_lines(code):
            problem = harness.run_long_running(line, workspace, env, settle=3.0)
            assert problem is None, f"{block.where}: {problem}"
        return
    if block.kind == "python":
        script = workspace / f"_block_{block.line}.py"
        script.write_text(code, encoding="utf-8")
        args = [sys.executable, str(script)]
    else:
        script = workspace / f"_block_{block.line}.sh"
        script.write_text(harness.shell_script(block, code), encoding="utf-8")
        args = ["bash", str(script)]
    consumer = None
    if "consumer" in block.options:
        consumer = harness.start_consumer(block.options["consumer"], workspace, env)
    try:
        result = harness.run_process(args, workspace, env, block.timeout)
    finally:
        consumer_output = harness.stop_consumer(consumer) if consumer else ""
    if consumer_output:
        result.output += f"\n--- the consumer's output ---\n{consumer_output}"
    expected = int(block.options.get("expect-exit", "0"))
    assert result.code is not None, (
        f"{block.where}: still running after {block.timeout} s\n{result.output}"
    )
    assert result.code == expected, (
        f"{block.where}: exit code {result.code}, expected {expected}\n{result.output}"
    )
    if "expect-line" in block.options:
        wanted = block.options["expect-line"].strip()
        lines = [line.strip() for line in result.output.splitlines()]
        assert wanted in lines, f"{block.where}: no line {wanted!r} in the output\n{result.output}"
