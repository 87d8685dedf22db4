"""Security: signed messages, passwords that never leak, configuration that cannot inject SQL.

- With a secret set, unsigned or tampered messages are never executed (they are dead-lettered).
- A password in a backend URL never appears in consumer logs, events, `huey info`, `huey
  dead-letters`, or error messages and tracebacks of a failed command.
- Table prefixes are validated before any SQL is built; instance names, keys and payloads are
  always bound parameters (SQL) or binary-safe arguments (Redis), never part of a statement.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from huey_core import Huey
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, drop_prefix, require_database
from tests.reliability.support import (
    PrivateRedis,
    logs,
    port_free,
    read_log,
    require_redis,
    server_url,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow

SECRET = "security-test-secret"
PASSWORD = "Pa55-never-shown-7f3a"


# -- signed messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_with_a_secret_unsigned_and_tampered_messages_never_run(kind, make_app, tmp_path):
    url = server_url(kind, tmp_path)
    app = make_app(url, TEST_SECRET=SECRET)
    module = app.load()
    huey = module.huey
    # The same instance without the secret (a forger who can write to the queue), and one with
    # another secret; both enqueue record() calls that must never run.
    options = {"table_prefix": app.prefix} if app.prefix else {}
    forger = Huey(app.name, url=url, **options)
    forger_task = forger.task(name="record")(lambda i: i)
    forger_task.task_class.__module__ = module.__name__  # the same registry name as the real one
    other = Huey(app.name, url=url, secret="another-secret", **options)
    other_task = other.task(name="record")(lambda i: i)
    other_task.task_class.__module__ = module.__name__
    assert forger.serialize_task(forger_task.s(1))  # sanity: these are real task messages
    forger_task("unsigned")
    other_task("other-secret")
    signed = bytearray(huey.serialize_task(module.record.s("tampered")))
    signed[-5] ^= 0x01
    huey.storage.queue.enqueue(bytes(signed))
    module.record("genuine")

    proc = app.start_consumer("-n", "-s", "0.2", "-d", "0.01", "-m", "0.2")
    assert wait_for(lambda: "genuine" in app.executions()), logs(app)
    assert wait_for(lambda: len(huey.dead_letters()) == 3), (huey.dead_letters(), logs(app))
    assert stop(proc) == 0
    runs = app.executions()
    assert set(runs) == {"genuine"}, runs
    reasons = sorted(d["reason"] for d in huey.dead_letters())
    assert sum("not signed" in r for r in reasons) == 1, reasons
    assert sum("does not match" in r for r in reasons) == 2, reasons
    for store in (forger, other):
        store.storage.close()


# -- passwords ----------------------------------------------------------------------------------


@pytest.fixture
def redis_with_password(tmp_path):
    server = PrivateRedis(tmp_path / "redis", "--requirepass", PASSWORD)
    server.start()
    yield server
    server.stop()


def assert_hidden(text: str) -> None:
    assert PASSWORD not in text, text
    assert PASSWORD[:8] not in text, text  # not even partly (e.g. cut by a width limit)


def test_redis_password_never_appears_in_logs_events_info_or_errors(redis_with_password,
                                                                     make_app):  # fmt: skip
    server = redis_with_password
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    app = make_app(url, TEST_MAX_DELIVERIES="1")
    module = app.load()
    assert_hidden(repr(module.huey.storage.describe()))
    events_out = open(app.directory / "events.jsonl", "w+")
    listener = subprocess.Popen(
        [sys.executable, "-m", "huey_core.cli", "events", app.import_path], cwd=app.directory,
        env=app.env, stdout=events_out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    listener.log = events_out
    app.procs.append(listener)
    n = 0
    while not wait_for(lambda: events_out.tell() or (app.directory / "events.jsonl").stat().st_size,
                       0.3):  # fmt: skip
        module.record(f"warm{n}")
        n += 1
        assert n < 100
    module.huey.storage.queue.enqueue(b"garbage")  # a dead letter, for `huey dead-letters`
    for i in range(5):
        module.record(i)
    proc = app.start_consumer("-v", "-n", "-s", "0.2", "-d", "0.01", "-m", "0.2",
                              "--lease-timeout", "2")  # fmt: skip
    assert wait_for(lambda: {"0", "4"} <= set(app.executions())), logs(app)
    assert wait_for(lambda: module.huey.dead_letters())

    outputs = []
    for args in (["info", app.import_path], ["info", app.import_path, "--json"],
                 ["dead-letters", app.import_path], ["dead-letters", app.import_path, "--json"],
                 ["consume", app.import_path, "--backend", "nosuch"]):  # fmt: skip
        result = app.cli(*args)
        outputs.append(result.stdout + result.stderr)
    info = json.loads(app.cli("info", app.import_path, "--json").stdout)
    assert "***" in info["backend"]

    # The server goes away: the consumer logs connection errors; commands fail with one line,
    # and with HUEY_DEBUG=1 a traceback; none of it shows the password.
    server.stop()
    assert wait_for(lambda: "failed" in read_log(proc), timeout=20), logs(app)
    down = app.cli("info", app.import_path)
    assert down.returncode == 1, down
    outputs.append(down.stdout + down.stderr)
    debug = app.cli("info", app.import_path, HUEY_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr, debug
    outputs.append(debug.stdout + debug.stderr)
    wrong = app.cli("info", app.import_path, "--url",
                    f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0")  # fmt: skip
    outputs.append(wrong.stdout + wrong.stderr)
    server.start()  # back, so the listener and the consumer stop cleanly
    assert stop(proc) == 0, logs(app)
    listener.terminate()
    listener.wait(10)

    events_text = (app.directory / "events.jsonl").read_text()
    assert '"status"' in events_text and "dead-lettered" in events_text
    for text in [logs(app), events_text, *outputs]:
        assert_hidden(text)
    assert "***" in logs(app)  # the banner names the URL, masked


@pytest.fixture
def sql_user_url(request, tmp_path):
    """A URL with a password for the shared server of `kind`: PostgreSQL trusts loopback and
    ignores it; on MariaDB a throw-away user with that password is created and dropped."""
    import uuid

    import sqlalchemy as sa

    kind = request.param
    server_url(kind, tmp_path)  # skips (or fails in CI) when the server is down
    base = POSTGRES_URL if kind == "postgresql" else MYSQL_URL
    scheme, rest = base.split("://", 1)
    user, host = rest.split("@", 1)
    if kind == "postgresql":
        yield f"{scheme}://{user}:{PASSWORD}@{host}"
        return
    user = f"hrel_{uuid.uuid4().hex[:8]}"
    database = host.split("/", 1)[1]
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
        conn.exec_driver_sql(f"GRANT ALL ON `{database}`.* TO '{user}'@'127.0.0.1'")
    try:
        yield f"{scheme}://{user}:{PASSWORD}@{host}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        engine.dispose()


@pytest.mark.parametrize("sql_user_url", ["postgresql", "mysql"], indirect=True)
def test_sql_password_never_appears_in_info_logs_or_errors(sql_user_url, make_app):
    scheme, rest = sql_user_url.split("://", 1)
    user, host = rest.split("@", 1)
    user = user.split(":", 1)[0]
    app = make_app(sql_user_url)
    module = app.load()
    module.record(1)
    proc = app.start_consumer("-v", "-n", "-s", "0.2", "-d", "0.01", "-m", "0.2")
    assert wait_for(lambda: "1" in app.executions()), logs(app)
    assert stop(proc) == 0
    outputs = [logs(app)]
    for args in (["info", app.import_path], ["info", app.import_path, "--json"]):
        result = app.cli(*args)
        assert result.returncode == 0, result
        outputs.append(result.stdout + result.stderr)
    port = next(p for p in range(47000, 48000) if port_free(p))
    dead = f"{scheme}://{user}:{PASSWORD}@127.0.0.1:{port}/{host.split('/', 1)[1]}"
    for env in ({}, {"HUEY_DEBUG": "1"}):
        result = app.cli("info", app.import_path, "--url", dead, **env)
        assert result.returncode != 0, result
        outputs.append(result.stdout + result.stderr)
    consumer = app.start_consumer("-n", "--url", dead, "-d", "0.05", "-m", "0.1", "-s", "0.1")
    assert wait_for(lambda: "failed" in read_log(consumer), timeout=20), read_log(consumer)
    assert stop(consumer) == 0
    outputs.append(read_log(consumer))
    for text in outputs:
        assert_hidden(text)
    assert "***" in outputs[1]


# -- SQL injection ------------------------------------------------------------------------------

BAD_PREFIXES = [
    "x; DROP TABLE huey_tk_queue; --", "a'b", 'a"b', "a b", "a-b", "Upper_", "1abc", "_x",
    "", "a" * 21, "a`b", "a\x00b", "a.b", "é_",
]  # fmt: skip

HOSTILE = "x'); DROP TABLE {p}queue; DELETE FROM {p}kv; -- \" ` \\ % _ *"


def sql_urls(tmp_path) -> list[str]:
    urls = [f"sqlite:///{tmp_path}/inject.db"]
    for url in (POSTGRES_URL, MYSQL_URL):
        require_database(url)
        urls.append(url)
    return urls


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_table_prefixes_that_are_not_plain_identifiers_are_refused(prefix, tmp_path):
    with pytest.raises(Exception) as info:  # noqa: B017 - ConfigurationError or ValueError
        Huey("inject", url=f"sqlite:///{tmp_path}/p.db", table_prefix=prefix).storage  # noqa: B018
    assert "table_prefix" in str(info.value)
    assert not (tmp_path / "p.db").exists() or (tmp_path / "p.db").stat().st_size == 0


def test_names_keys_and_payloads_are_data_never_sql(tmp_path):
    import uuid

    from huey_sql.backend import SQLBackend

    for url in sql_urls(tmp_path):
        prefix = f"hi{uuid.uuid4().hex[:8]}_"
        hostile = HOSTILE.format(p=prefix)
        try:
            bystander = SQLBackend("bystander", url, table_prefix=prefix)
            bystander.queue.enqueue(b"keep me")
            bystander.store.put("keep", b"me")
            backend = SQLBackend(hostile[:100], url, table_prefix=prefix)
            backend.queue.enqueue(hostile.encode())
            backend.store.put(hostile, hostile.encode())
            backend.schedule.add(hostile.encode(), 0.0)
            assert backend.store.peek(hostile) == hostile.encode()
            assert list(backend.store.items(hostile[:5])) == [hostile]
            assert backend.queue.dequeue("w'--", 30).data == hostile.encode()
            assert backend.schedule.move_due(1.0, 10) == 1
            backend.store.flush()
            backend.queue.flush() if hasattr(backend.queue, "flush") else None
            # The other instance's rows (and the tables) are untouched.
            assert bystander.queue.size() == 1 and bystander.store.peek("keep") == b"me"
            backend.close()
            bystander.close()
        finally:
            if not url.startswith("sqlite"):
                drop_prefix(url, prefix)


def test_redis_names_keys_and_payloads_are_data_never_commands():
    import redis as redis_lib

    from huey_redis.backend import RedisBackend

    url = require_redis()
    hostile = "x\r\nFLUSHALL\r\n' \" ]] -- redis.call('FLUSHALL') * ? [a]"
    bystander = RedisBackend("bystander-" + hostile[:5].strip(), url)
    name = f"inj-{hostile}"
    backend = RedisBackend(name, url)
    client = redis_lib.Redis.from_url(url)
    try:
        bystander.store.put("keep", b"me")
        backend.queue.enqueue(hostile.encode())
        backend.store.put(hostile, hostile.encode())
        assert backend.store.peek(hostile) == hostile.encode()
        assert list(backend.store.items("x\r\n")) == [hostile]
        assert backend.queue.dequeue(hostile, 30).data == hostile.encode()
        backend.store.flush()
        assert backend.store.size() == 0
        assert bystander.store.peek("keep") == b"me"
    finally:
        for b in (backend, bystander):
            for key in client.scan_iter(match=b.key("*").replace("[", "\\[").replace("]", "\\]")
                                        .replace("?", "\\?")):  # fmt: skip
                client.delete(key)
            b.close()
        client.close()
