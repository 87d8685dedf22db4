"""Helpers of the web examples' tests: `from tests.examples.support import ...`."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from huey_core.testing.apps import read_log

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def output(proc: subprocess.Popen[str]) -> str:
    """What a process started by the `processes` fixture printed so far."""
    return read_log(proc)


def consume(start: Callable[..., subprocess.Popen[str]], package: str) -> subprocess.Popen[str]:
    """`huey consume <package>.tasks.huey -w 2`, as the example's docs say."""
    return start("-m", "huey_core.cli", "consume", f"{package}.tasks.huey", "-w", "2")
