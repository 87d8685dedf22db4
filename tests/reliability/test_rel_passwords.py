"""Passwords with "@ : / % #" in them never leak (issue 11, item 7).

An unencoded "@" in a password (`postgresql://user:S3cret@tail@host/db`) made SQLAlchemy read
host "tail@host": the consumer connected to the wrong host and every retry line quoted "tail".
The sql backend now reads the password to the last "@" (as libpq and redis-py do), and
`huey_core.plugins.mask_url` hides a URL's password as the parsers read it and scrubs every
password it has seen, in each form a driver may quote, from any text.

Each backend with passwords is tried with such passwords against a server that is down (retry
lines, `huey info`, `huey consume`) and, where the test can create a user, one that is up.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from huey_core.plugins import mask_url
from huey_sql.backend import SQLBackend
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, require_database
from tests.reliability.support import (
    PrivateRedis,
    logs,
    port_free,
    read_log,
    require_redis,
    stop,
    wait_for,
)

# Written unencoded where URL parsers allow it ("@" and ":"), percent-encoded where they do not.
RAW = ["S3cret@tail", "Sesame:open:wide", "Two@at@signs-here"]
ENCODED = ["sl/ash/secret", "per%cent%41x", "hash#tag#secret", "all@of:it/%#here"]


def pieces(password: str) -> list[str]:
    """The password and each fragment of it long enough to give something away."""
    found = {password, *password.replace(":", "@").replace("/", "@").split("@")}
    return [p for p in found if len(p) >= 4]


def assert_hidden(text: str, password: str) -> None:
    for piece in pieces(password):
        assert piece not in text, (piece, text[-2000:])


def url_with(scheme_and_user: str, password: str, rest: str) -> str:
    secret = password if password in RAW else quote(password, safe="")
    return f"{scheme_and_user}:{secret}@{rest}"


@pytest.mark.parametrize("password", RAW + ENCODED)
@pytest.mark.parametrize(
    "template",
    [
        ("postgresql://user", "127.0.0.1:5432/test"),
        ("mysql+pymysql://user", "db.example:3306/test?charset=utf8mb4"),
        ("redis://", "127.0.0.1:6379/0"),
        ("rediss://default", "cache.example:6380/1"),
        ("unix://", "/run/redis.sock?db=0"),
    ],
)
def test_mask_url_hides_the_password_and_keeps_the_host(template, password):
    url = url_with(template[0], password, template[1])
    masked = mask_url(url)
    assert_hidden(masked, password)
    assert masked.endswith(f"***@{template[1]}"), masked
    # A driver's message about the URL, without the URL: what was seen is scrubbed all the same.
    assert_hidden(mask_url(f'could not connect as {password!r} to "tail@{template[1]}"'), password)


def test_the_sql_backend_reads_an_unencoded_at_sign_as_part_of_the_password():
    require_database(POSTGRES_URL)
    scheme, rest = POSTGRES_URL.split("://", 1)
    user, location = rest.split("@", 1)
    backend = SQLBackend(f"pw-{uuid.uuid4().hex[:8]}", f"{scheme}://{user}:S3cret@tail@{location}")
    try:
        assert backend._db.url.host == "127.0.0.1" and backend._db.url.password == "S3cret@tail"
        backend.queue.enqueue(b"reached the right server")  # trust auth: the host is what counts
        assert backend.queue.peek() == [b"reached the right server"]
        assert_hidden(backend.describe(), "S3cret@tail")
    finally:
        backend.queue.flush()
        backend.close()


def dead_port() -> int:
    return next(p for p in range(47000, 48000) if port_free(p))


DOWN = {
    "postgresql": "postgresql://user",
    "mysql": "mysql+pymysql://user",
    "redis": "redis://",
}


@pytest.mark.parametrize("password", ["S3cret@tail", "all@of:it/%#here"])
@pytest.mark.parametrize("kind", list(DOWN))
def test_a_server_that_is_down_never_hears_the_password_in_logs_or_errors(
    kind, password, make_app, tmp_path
):
    port = dead_port()
    tail = "0" if kind == "redis" else "test"
    url = url_with(DOWN[kind], password, f"127.0.0.1:{port}/{tail}")
    app = make_app(f"sqlite:///{tmp_path}/unused.db")
    outputs = []
    for env in ({}, {"HUEY_DEBUG": "1"}):
        done = app.cli("info", app.import_path, "--url", url, **env)
        assert done.returncode != 0, done
        outputs.append(done.stdout + done.stderr)
    consumer = app.start_consumer("-n", "--url", url, "-d", "0.05", "-m", "0.1", "-s", "0.1")
    assert wait_for(lambda: "failed" in read_log(consumer), timeout=30), read_log(consumer)
    assert stop(consumer) == 0, logs(app)
    outputs.append(read_log(consumer))
    for text in outputs:
        assert_hidden(text, password)
    assert f"127.0.0.1:{port}" in outputs[0] or str(port) in outputs[-1]  # the host is named


SPECIAL = "S3c@re:t/%#x-pw"


@pytest.fixture
def mariadb_user():
    """A throw-away MariaDB user whose password holds @ : / % #; its URL (encoded)."""
    import sqlalchemy as sa

    require_database(MYSQL_URL)
    user = f"hpw_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(MYSQL_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (SPECIAL,))
        conn.exec_driver_sql(f"GRANT ALL ON `test`.* TO '{user}'@'127.0.0.1'")
    try:
        yield f"mysql+pymysql://{user}:{quote(SPECIAL, safe='')}@127.0.0.1:3306/test"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        engine.dispose()


@pytest.fixture
def redis_special(tmp_path):
    require_redis()
    server = PrivateRedis(tmp_path / "redis", "--requirepass", SPECIAL)
    server.start()
    yield f"redis://:{quote(SPECIAL, safe='')}@127.0.0.1:{server.port}/0"
    server.stop()


@pytest.mark.parametrize("server", ["mariadb_user", "redis_special"])
def test_a_password_with_every_special_character_works_and_stays_hidden(server, request, make_app):
    url = request.getfixturevalue(server)
    app = make_app(url)
    module = app.load()
    module.record(1)
    consumer = app.start_consumer("-v", "-n", "-s", "0.2", "-d", "0.01", "-m", "0.2")
    assert wait_for(lambda: "1" in app.executions(), timeout=30), logs(app)
    assert stop(consumer) == 0, logs(app)
    outputs = [logs(app)]
    for args in (["info", app.import_path], ["info", app.import_path, "--json"]):
        done = app.cli(*args)
        assert done.returncode == 0, done
        outputs.append(done.stdout + done.stderr)
    wrong = url.replace(quote(SPECIAL, safe=""), quote("wrong" + SPECIAL, safe=""))
    done = app.cli("info", app.import_path, "--url", wrong, HUEY_DEBUG="1")
    assert done.returncode != 0, done
    outputs.append(done.stdout + done.stderr)
    for text in outputs:
        assert_hidden(text, SPECIAL)
        assert_hidden(text, "wrong" + SPECIAL)
    assert "***" in outputs[1]
