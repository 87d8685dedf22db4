"""URLs users already have (Django settings, SQLAlchemy configs) work as written, and a driver
that is not installed is named with the extra that installs it."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from huey_core import Huey, plugins
from huey_core.exceptions import ConfigurationError
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, drop_prefix, require_database, unique_name
from huey_sql.testing import unique_prefix as new_prefix

POSTGRES_AT = POSTGRES_URL.split("://", 1)[1]  # postgres@127.0.0.1:5432/test
MYSQL_AT = MYSQL_URL.split("://", 1)[1]


@pytest.fixture
def prefix() -> Iterator[str]:
    made = new_prefix()
    yield made
    for url in (POSTGRES_URL, MYSQL_URL):
        try:
            drop_prefix(url, made)
        except Exception:  # noqa: BLE001 - that server was not used (or is down) in this test
            pass


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://{POSTGRES_AT}",  # Heroku, dj-database-url
        f"postgresql://{POSTGRES_AT}",
        f"postgresql+psycopg2://{POSTGRES_AT}",  # psycopg2 settings
        f"mysql://{MYSQL_AT}",  # Django's mysql:// (mysqlclient)
        f"mysql+mysqldb://{MYSQL_AT}",
        f"mysql+pymysql://{MYSQL_AT}",
        f"mariadb://{MYSQL_AT}",
    ],
)
def test_a_url_as_users_write_it_runs_a_task(url: str, prefix: str) -> None:
    require_database(POSTGRES_URL if url.startswith("postgres") else MYSQL_URL)
    assert plugins.resolve(url=url)[0].name == "sql"  # the scheme alone picks the sql backend
    huey = Huey(unique_name("url"), url=url, table_prefix=prefix)

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        result = add(20, 22)
        task = huey.dequeue()
        assert task is not None
        huey.execute(task)
        assert result.get() == 42
    finally:
        huey.storage.close()


@pytest.mark.parametrize(
    ("module", "url", "extra"),
    [
        ("psycopg", "postgresql://app:hunter2@127.0.0.1:1/app", "postgres"),
        ("pymysql", "mysql://app:hunter2@127.0.0.1:1/app", "mysql"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(
    module: str, url: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(sys.modules):  # as if the driver had never been installed
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    huey = Huey("no-driver", url=url)
    with pytest.raises(ConfigurationError) as caught:
        huey.storage  # noqa: B018
    message = str(caught.value)
    assert f'pip install "huey-core[{extra}]"' in message
    assert "hunter2" not in message and "\n" not in message


def test_a_driver_the_backend_does_not_take_lists_the_schemes_it_does() -> None:
    with pytest.raises(ConfigurationError) as caught:
        plugins.resolve(backend="sql", url="postgresql+asyncpg://app:hunter2@db/app")
    message = str(caught.value)
    assert "postgresql+psycopg2://" in message and "mysql+mysqldb://" in message
    assert "scheme 'postgresql+asyncpg'" in message and "hunter2" not in message
