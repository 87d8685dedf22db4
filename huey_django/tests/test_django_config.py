"""settings.HUEY builds the project's Huey; a Django database becomes the sql backend's URL."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import override_settings
from sqlalchemy.engine import make_url

from huey_core import Huey
from huey_django import build_huey, database_url

# Only database_url() reads these overrides; no connection is made through them.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")

PG = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app"}


def url_of(database: dict[str, Any]) -> Any:
    with override_settings(DATABASES={"db": database}):
        return make_url(database_url("db"))


def test_a_postgresql_database_keeps_every_connection_setting() -> None:
    url = url_of(
        {**PG, "PASSWORD": "p@ss:/w%rd#1", "HOST": "db.internal", "PORT": "6432",
         "OPTIONS": {"sslmode": "require", "application_name": "shop", "isolation_level": 1}}
    )  # fmt: skip
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password) == ("app", "p@ss:/w%rd#1")  # quoted, not mangled
    assert (url.host, url.port, url.database) == ("db.internal", 6432, "shop")
    # libpq parameters carry over; Django's own (isolation_level) mean nothing to the driver
    assert dict(url.query) == {"sslmode": "require", "application_name": "shop"}


def test_a_unix_socket_directory_becomes_the_host_parameter() -> None:
    url = url_of({**PG, "HOST": "/var/run/postgresql"})
    assert url.host is None
    assert url.query["host"] == "/var/run/postgresql"


def test_a_sqlite_file_gets_an_absolute_path() -> None:
    # The consumer may start in another directory than the web server.
    url = url_of({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"})
    assert url.drivername == "sqlite"
    assert url.database == os.path.abspath("db.sqlite3")


def test_mysql_uses_the_sql_backends_driver() -> None:
    url = url_of({"ENGINE": "django.db.backends.mysql", "NAME": "shop", "USER": "root",
                  "HOST": "127.0.0.1", "OPTIONS": {"charset": "utf8mb4"}})  # fmt: skip
    assert url.drivername == "mysql+pymysql"
    assert url.query["charset"] == "utf8mb4"


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}, "in-memory"),
        ({"ENGINE": "django.db.backends.oracle", "NAME": "x"}, "Set settings.HUEY['url'] instead"),
    ],
)
def test_databases_the_sql_backend_cannot_share_are_refused(
    database: dict[str, str], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        url_of(database)


def test_an_unknown_alias_names_the_known_ones() -> None:
    with pytest.raises(ImproperlyConfigured, match="no such alias.*'default'"):
        database_url("replica")


def test_a_password_never_appears_in_configuration_errors() -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    cases = [
        {**PG, "ENGINE": "django.db.backends.oracle", "PASSWORD": secret},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:", "PASSWORD": secret},
    ]
    for database in cases:
        with override_settings(DATABASES={"db": database}):
            with pytest.raises(ImproperlyConfigured) as caught:
                build_huey({"database": "db"})
        assert secret not in str(caught.value)


def test_immediate_mode_follows_debug_unless_set() -> None:
    with override_settings(DEBUG=True):
        assert build_huey({"backend": "memory"}).immediate is True
        assert build_huey({"backend": "memory", "immediate": False}).immediate is False
    with override_settings(DEBUG=False):
        assert build_huey({"backend": "memory"}).immediate is False


def test_huey_keys_reach_the_instance() -> None:
    huey = build_huey({"name": "shop", "backend": "memory", "results": False, "utc": False,
                       "lease_timeout": 12, "max_deliveries": 3})  # fmt: skip
    assert (huey.name, huey.results, huey.utc) == ("shop", False, False)
    assert (huey.lease_timeout, huey.max_deliveries) == (12.0, 3)


def test_the_name_defaults_to_the_settings_package() -> None:
    with override_settings(SETTINGS_MODULE="shopsite.settings.production"):
        assert build_huey({"backend": "memory"}).name == "shopsite"


def test_a_misspelt_key_is_refused_with_the_known_ones() -> None:
    from huey_django.config import settings_dict

    with override_settings(HUEY={"name": "x", "worker": 4}):
        with pytest.raises(ImproperlyConfigured, match=r"unknown key\(s\) 'worker'; known keys:"):
            settings_dict()


def test_database_and_url_together_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="keep one of them"):
        build_huey({"database": "default", "url": "redis://127.0.0.1:6379/0"})


def test_a_huey_instance_in_settings_is_used_as_it_is() -> None:
    mine = Huey("mine", backend="memory")
    with override_settings(HUEY=mine):
        assert build_huey() is mine


def test_the_queue_lives_in_the_django_database(alias: str) -> None:
    # The URL built from DATABASES reaches the very database Django uses: the sql backend's
    # tables appear there and hold the message.
    huey = build_huey({"name": f"t-{uuid.uuid4().hex[:8]}", "database": alias,
                       "options": {"table_prefix": "hdjq_"}})  # fmt: skip

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    try:
        add(1, 2)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM hdjq_queue WHERE name = %s", [huey.name])
            assert cursor.fetchone() == (1,)
    finally:
        huey.flush()
        huey.storage.close()
