from __future__ import annotations

import os
import socket

import pytest


@pytest.fixture
def redis_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not running on 127.0.0.1:6379 (required in CI)")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/0"
