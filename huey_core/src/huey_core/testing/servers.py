"""Skip tests whose server is not running, except in CI, where a missing server is a failure."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["in_ci", "require_port", "require_server"]

T = TypeVar("T")


def in_ci() -> bool:
    """True when the environment variable CI is exactly "true" (GitHub Actions, GitLab, ...)."""
    return os.environ.get("CI") == "true"


def require_server(kind: str, check: Callable[[], T]) -> T:
    """Return `check()`, or skip the test when it raises or returns False; fail instead in CI.

    `kind` names the server for the message ("redis at 127.0.0.1:6379"). `check` typically opens a
    connection and pings; whatever it returns (e.g. the client) is handed back. Use it inside a
    fixture, so the skip or failure lands on every test that needs the server:

        @pytest.fixture(scope="session")
        def redis_url():
            require_server("redis at 127.0.0.1:6379", lambda: redis.Redis().ping())
            return "redis://127.0.0.1:6379/0"
    """
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "down"
        reason = f"{kind} is not available: {type(exc).__name__}: {exc}"
    else:
        if result is not False:
            return result
        reason = f"{kind} is not available: the check returned False"
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so a missing server fails instead of skipping)")
    pytest.skip(reason)


def require_port(kind: str, port: int, host: str = "127.0.0.1") -> None:
    """require_server() for a server known only by its TCP port: something must accept there."""

    def connect() -> None:
        socket.create_connection((host, port), timeout=2).close()

    require_server(f"{kind} at {host}:{port}", connect)
