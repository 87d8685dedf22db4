"""The reliability suite's fixtures live in tests/reliability/support.py."""

from __future__ import annotations

from tests.reliability.support import make_app  # noqa: F401 - a fixture for every test here
