"""huey-lite adopts the whole conformance suite: this file is all it takes."""

import pytest

from huey_core.testing import BackendConformance
from huey_lite.backend import LiteBackend


class TestLiteBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path):
        url = f"lite:///{tmp_path / 'huey.db'}"
        yield lambda name: LiteBackend(name, url)
