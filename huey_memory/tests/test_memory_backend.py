"""The memory backend runs the conformance suite exactly as a third-party backend would."""

from __future__ import annotations

import pytest

from huey_core.testing import BackendConformance
from huey_memory.backend import MemoryBackend


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        shared: dict[str, MemoryBackend] = {}  # same name, same in-process instance
        yield lambda name: shared.setdefault(name, MemoryBackend(name))
