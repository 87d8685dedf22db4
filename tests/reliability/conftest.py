"""The reliability suite's fixtures live in reliability_support (imported by name by the tests)."""

from __future__ import annotations

from reliability_support import make_app  # noqa: F401 - a fixture for every test here
