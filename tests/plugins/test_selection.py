"""Which backend a process gets: explicit choice > HUEY_BACKEND/HUEY_URL > the sqlite default."""

from __future__ import annotations

import pytest

from huey_core import plugins
from huey_core.exceptions import ConfigurationError, UnknownBackend
from huey_core.plugins import create_backend, mask_url, resolve
from huey_core.protocols import BaseBackend


def _installed() -> str:
    """What an error lists: every installed backend (the example's "lite" too, under make dev)."""
    return "installed backends: " + ", ".join(sorted(plugins.backends()))


# docs/backends.md: every scheme a URL alone may use, and the backend it picks.
SCHEMES = {
    "redis://127.0.0.1:6379/0": "redis",
    "rediss://cache.example.com:6380/0": "redis",
    "unix:///var/run/redis.sock?db=0": "redis",
    "sqlite:///huey.db": "sql",
    "postgresql://postgres@127.0.0.1/test": "sql",
    "postgresql+psycopg://postgres@127.0.0.1/test": "sql",
    "mysql+pymysql://root@127.0.0.1/test": "sql",
    "mariadb+pymysql://root@127.0.0.1/test": "sql",
    "memory://": "memory",
}


@pytest.mark.parametrize("url,expected", SCHEMES.items())
def test_a_url_alone_picks_its_backend_by_scheme(url: str, expected: str) -> None:
    info, chosen_url = resolve(url=url)
    assert info.name == expected
    assert chosen_url == url


def test_scheme_match_ignores_case() -> None:
    assert resolve(url="REDIS://127.0.0.1:6379/0")[0].name == "redis"


def test_default_is_sql_on_sqlite_in_the_working_directory() -> None:
    info, url = resolve()
    assert (info.name, url) == ("sql", "sqlite:///huey.db")


def test_environment_names_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_BACKEND", "memory")
    assert resolve()[0].name == "memory"


def test_environment_url_picks_by_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_URL", "redis://127.0.0.1:6379/3")
    info, url = resolve()
    assert (info.name, url) == ("redis", "redis://127.0.0.1:6379/3")


def test_explicit_backend_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_BACKEND", "redis")
    monkeypatch.setenv("HUEY_URL", "redis://127.0.0.1:6379/3")
    info, url = resolve(backend="memory")
    assert (info.name, url) == ("memory", None)  # HUEY_URL is for another backend: ignored


def test_explicit_url_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_BACKEND", "redis")
    monkeypatch.setenv("HUEY_URL", "redis://127.0.0.1:6379/3")
    info, url = resolve(url="sqlite:///other.db")
    assert (info.name, url) == ("sql", "sqlite:///other.db")


def test_explicit_backend_takes_where_from_huey_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_URL", "redis://127.0.0.1:6379/3")
    info, url = resolve(backend="redis")
    assert (info.name, url) == ("redis", "redis://127.0.0.1:6379/3")


def test_url_for_another_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(backend="redis", url="postgresql://app:hunter2@db/app")
    message = str(caught.value)
    assert "'sql'" in message and "'redis'" in message
    assert "hunter2" not in message


def test_a_backend_is_never_handed_a_scheme_it_did_not_register() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(backend="sql", url="sqlite+weird://user:hunter2@host/huey.db")
    message = str(caught.value)
    assert "backend 'sql'" in message and "sqlite://" in message
    assert "scheme 'sqlite+weird'" in message and "hunter2" not in message


def test_a_url_of_another_backend_names_its_owner() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(backend="memory", url="sqlite:///x.db")
    message = str(caught.value)
    assert "backend 'memory'" in message and "memory://" in message
    assert "scheme 'sqlite'" in message and "that is a 'sql' URL" in message


def test_unknown_backend_names_installed_ones_and_suggests() -> None:
    with pytest.raises(UnknownBackend) as caught:
        resolve(backend="reddis")
    message = str(caught.value)
    assert f"{_installed()}." in message and "memory, redis, sql" in message
    assert "Did you mean 'redis'?" in message


def test_unknown_backend_without_a_close_name_has_no_suggestion() -> None:
    with pytest.raises(UnknownBackend) as caught:
        resolve(backend="zzzzzz")
    assert "Did you mean" not in str(caught.value)
    assert "memory, redis, sql" in str(caught.value)


def test_unknown_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUEY_BACKEND", "sqll")
    with pytest.raises(UnknownBackend, match="Did you mean 'sql'"):
        resolve()


def test_unknown_scheme_lists_schemes_suggests_and_masks() -> None:
    with pytest.raises(UnknownBackend) as caught:
        resolve(url="redsi://admin:t0p-secret@127.0.0.1:6379/0")
    message = str(caught.value)
    assert "t0p-secret" not in message
    assert "admin:***@" in message
    assert "known schemes:" in message and "rediss" in message
    assert "Did you mean 'redis://'?" in message


def test_missing_default_backend_names_installed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "DEFAULT_BACKEND", "not-installed")
    with pytest.raises(UnknownBackend) as caught:
        resolve()
    assert f"{_installed()})" in str(caught.value) and "memory, redis, sql" in str(caught.value)
    assert 'pip install "huey-core[sql]"' in str(caught.value) and "HUEY_URL" in str(caught.value)


def test_create_backend_builds_the_chosen_backend() -> None:
    backend = create_backend("app", url="memory://")
    try:
        assert type(backend).__name__ == "MemoryBackend"
        assert backend.name == "app"
        backend.queue.enqueue(b"job")
        assert backend.queue.size() == 1
    finally:
        backend.close()


def test_create_backend_passes_options_to_the_factory() -> None:
    with pytest.raises(
        ConfigurationError, match="backend 'memory' refused its options: .*no options"
    ):
        create_backend("app", backend="memory", pool_size=3)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:s3cret@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        ("postgresql+psycopg://app:s3cret@db:5432/app", "postgresql+psycopg://app:***@db:5432/app"),
        ("redis://:p@ss@w0rd@host/0", "redis://:***@host/0"),  # "@" inside the password
        ("mysql+pymysql://root@127.0.0.1/test", "mysql+pymysql://root@127.0.0.1/test"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # a port is not a password
        ("redis://host/0?password=s3cret&db=1", "redis://host/0?password=***&db=1"),
        ("sqlite:////tmp/a@b/huey.db", "sqlite:////tmp/a@b/huey.db"),
        (
            "cannot connect to redis://u:s3cret@h:6379/0 (user@example.com)",
            "cannot connect to redis://u:***@h:6379/0 (user@example.com)",
        ),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_url_hides_passwords(url: str | None, expected: str) -> None:
    assert mask_url(url) == expected
    assert mask_url(mask_url(url)) == expected  # masking twice changes nothing


def test_describe_never_shows_the_password() -> None:
    backend = BaseBackend()
    backend.name = "app"
    backend.url = "redis://:s3cret@127.0.0.1:6379/0"
    assert "s3cret" not in backend.describe()
    assert "***" in backend.describe()
