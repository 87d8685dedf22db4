from __future__ import annotations

import pytest

from huey_core.testing import require_port


@pytest.fixture
def redis_url() -> str:
    require_port("Redis", 6379)
    return "redis://127.0.0.1:6379/0"
