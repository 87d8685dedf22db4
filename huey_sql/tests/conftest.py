"""Fixtures of the sql backend tests.

`sql_url` is the database under test: by default every one of SQLite, PostgreSQL and
MariaDB/MySQL in turn; a module about one database overrides it. Each module works under its own
table prefix (`sql_prefix`) and drops those tables afterwards, because the servers are shared
with other test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from huey_sql.backend import SQLBackend
from huey_sql.testing import (
    MYSQL_URL,
    POSTGRES_URL,
    drop_prefix,
    make_factory,
    require_database,
    unique_prefix,
)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'huey.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_database(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    require_database(MYSQL_URL)
    return MYSQL_URL


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def sql_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="module")
def sql_prefix(sql_url: str) -> Iterator[str]:
    prefix = unique_prefix()
    yield prefix
    if not sql_url.startswith("sqlite"):  # a SQLite file goes with its temporary folder
        drop_prefix(sql_url, prefix)


@pytest.fixture
def factory(sql_url: str, sql_prefix: str) -> Iterator[Callable[..., SQLBackend]]:
    """factory(name=None, **options) -> SQLBackend; the same name shares data."""
    yield from make_factory(sql_url, sql_prefix)
