"""Finds and runs the code blocks of the documentation (the conventions: docs/contributing.md).

Every fenced ```python, ```bash, ```sh, ```shell and ```console block of README.md, docs/*.md and
the distributions' README.md runs, unless an HTML comment right above it says otherwise:

    <!-- docs: name=tasks -->              names a block, for fragments
    <!-- docs: after=tasks -->             a fragment: runs after the code of block "tasks"
                                           (after a file block: after `from <module> import *`)
    <!-- docs: file=myapp/tasks.py -->     the block is that file: written, not run
    <!-- docs: long-running -->            shell: each command runs until stopped
    <!-- docs: consumer=myapp.tasks.huey -->  `huey consume` of that app runs meanwhile
    <!-- docs: timeout=120 -->             seconds (default 60)
    <!-- docs: skip: the reason -->        not run, with the reason
    <!-- docs: expect-exit=2 -->           the exit code it must end with (default 0)
    <!-- docs: expect-line="3" -->         a line it must print, exactly (stripped)

A block whose first line is `# from <path>` quotes that file: its lines must appear there, in
order. Blocks of one page run in order in one working directory, as a reader follows the page.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = {"python": "python", "py": "python", "bash": "shell", "sh": "shell",
                 "shell": "shell", "console": "console"}  # fmt: skip
KEYS = {"name", "after", "file", "long-running", "consumer", "timeout", "skip", "expect-exit",
        "expect-line"}  # fmt: skip
DEFAULT_TIMEOUT = 60.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs:\s*(?P<body>.*?)\s*-->\s*$")


class DocsError(Exception):
    """A directive the harness cannot follow: the page must be fixed."""


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str  # the fence's info string, first word
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str | None:
        return RUN_LANGUAGES.get(self.language)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def quoted_file(self) -> str | None:
        first = self.code.lstrip("\n").split("\n", 1)[0].strip()
        return first[len("# from ") :].strip() if first.startswith("# from ") else None

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))


def pages() -> list[Path]:
    """Every page whose blocks must run: found by glob, so a new page is covered at once."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found += sorted(p for p in ROOT.glob("*/README.md") if (p.parent / "pyproject.toml").exists())
    return found


def parse_directive(body: str) -> dict[str, str]:
    """`name=x after=y long-running` or `skip: reason` -> options."""
    if body.startswith("skip:"):
        reason = body[len("skip:") :].strip()
        if not reason:
            raise DocsError("`docs: skip:` needs a reason")
        return {"skip": reason}
    options: dict[str, str] = {}
    for word in shlex.split(body):
        key, _, value = word.partition("=")
        if key not in KEYS or key == "skip":
            raise DocsError(f"unknown docs directive {word!r} (known: {', '.join(sorted(KEYS))})")
        options[key] = value
    return options


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page with the options of the directive right above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = match["info"].strip().split(" ", 1)[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and lines[j].strip().strip("`") == ""
        ):
            text = lines[j]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            j += 1
        options: dict[str, str] = {}
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        directive = _DIRECTIVE.match(lines[k]) if k >= 0 else None
        if directive:
            try:
                options = parse_directive(directive["body"])
            except DocsError as exc:
                raise DocsError(f"{page.relative_to(ROOT)}:{k + 1}: {exc}") from None
        found.append(Block(page, i + 1, language, "\n".join(body) + "\n", options))
        i = j + 1
    return found


def program(block: Block, named: dict[str, Block]) -> str:
    """The code to run for `block`: the chain of blocks it continues, then its own."""
    parts = [block.code]
    seen = {id(block)}
    current = block
    while "after" in current.options:
        target = named.get(current.options["after"])
        if target is None:
            raise DocsError(
                f"{current.where}: after={current.options['after']} names no block above"
            )
        if id(target) in seen:
            raise DocsError(f"{current.where}: after= chain loops")
        seen.add(id(target))
        if "file" in target.options:
            module = target.options["file"].removesuffix(".py").replace("/", ".")
            module = module.removesuffix(".__init__")
            parts.append(f"from {module} import *  # noqa: F403\n")
            break
        parts.append(target.code)
        current = target
    return "\n".join(reversed(parts))


def check_quote(block: Block) -> str | None:
    """Why a `# from <path>` block does not match its file (None when it does)."""
    path = block.quoted_file
    assert path is not None
    source = ROOT / path
    if not source.exists():
        return f"{block.where}: quotes {path}, which does not exist"
    text = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
    position = 0
    for quoted in block.code.strip("\n").splitlines()[1:]:
        wanted = quoted.strip()
        if not wanted:
            continue
        try:
            position = text.index(wanted, position) + 1
        except ValueError:
            return f"{block.where}: line {wanted!r} is not in {path} (in this order)"
    return None


# -- running ------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int | None  # None: still running at the timeout
    output: str


def shell_script(block: Block, code: str) -> str:
    """A shell block as a script: stop at the first failing command, pip through docs_pip."""
    if block.kind == "console":
        commands = [line[2:] for line in code.splitlines() if line.startswith("$ ")]
        code = "\n".join(commands) + "\n"
    prelude = 'pip() { "$DOCS_PYTHON" "$DOCS_PIP" "$@"; }\nset -euo pipefail\n'
    return prelude + code


def run_process(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """Run to completion in its own process group, then end whatever it left in the background
    (a consumer started with `&`). Output goes through a file: a background process keeps a
    pipe open after the script is done."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        _end_group(proc.pid)
        proc.wait()
        out.seek(0)
        return Result(code, out.read())


def _end_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def run_long_running(line: str, cwd: Path, env: dict[str, str], settle: float) -> str | None:
    """Start one command that runs until stopped: it must still run after `settle` seconds and,
    once it has installed its SIGTERM handler, exit 0 on SIGTERM. Why it did not (None when it
    did). Waiting for the handler keeps a slow start-up (a busy machine) from being killed
    before the program could handle the signal at all."""
    words = shlex.split(line)
    env = dict(env, PYTHONFAULTHANDLER="1")
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")  # `HUEY_URL=... huey consume ...`
        env[key] = value
    proc = subprocess.Popen(words, cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + settle + 60
        seen: tuple[bytes, bytes] | None = None
        wait = settle
        while True:  # running after `settle`, and holding its SIGTERM handler (a slow start-up)
            try:
                output, _ = proc.communicate(timeout=wait)  # reads on, so the pipe never fills
                return f"`{line}` exited with {proc.returncode} instead of running:\n{output}"
            except subprocess.TimeoutExpired:
                pass
            now = _sigterm_handled_by(proc.pid)
            if now is not None and now == seen:
                break  # the same program (a -k greenlet consumer execs itself) kept its handler
            if time.monotonic() > deadline:
                break  # SIGTERM now: a start-up of over a minute is for the exit code to show
            seen, wait = now, 0.5
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is
            output, _ = proc.communicate(timeout=20)
            return f"`{line}` did not stop within 40 s of SIGTERM:\n{output[-8000:]}"
        if proc.returncode != 0:
            return f"`{line}` exited with {proc.returncode} after SIGTERM:\n{output}"
        return None
    finally:
        _end_group(proc.pid)


def _sigterm_handled_by(pid: int) -> tuple[bytes, bytes] | None:
    """(command line, SigCgt mask) of a process that catches SIGTERM; None when it does not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    caught = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)
    if caught is None or not int(caught.group(1), 16) >> (signal.SIGTERM - 1) & 1:
        return None
    return cmdline, caught.group(1).encode()


def start_consumer(import_path: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`huey consume IMPORT_PATH -n` in the background, as a reader runs it in another terminal."""
    return subprocess.Popen(["huey", "consume", import_path, "-n"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip


def stop_consumer(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then what it printed; it must have stopped cleanly (exit 0)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=40)
    finally:
        _end_group(proc.pid)
    if proc.returncode != 0:
        raise AssertionError(f"the consumer exited with {proc.returncode}:\n{output}")
    return output


def command_lines(code: str) -> list[str]:
    """The commands of a shell block, one per line, comments and blank lines left out."""
    out = []
    for raw in code.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            out.append(line)
    return out


def python_command() -> list[str]:
    return [sys.executable]
