"""huey 3.5's storage construction, ported by changing imports only (issue 13, items 1 and 2).

Each constructor option huey users pass is shown to take effect against the real server, and
each option this project cannot honour is refused at construction in one line. The mapping is
tabled in docs/backends.md ("huey storage classes").
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from huey_core import (
    BlackHoleHuey,
    CySqliteHuey,
    FileHuey,
    Huey,
    MemoryHuey,
    PostgresHuey,
    PriorityRedisExpireHuey,
    PriorityRedisHuey,
    RedisExpireHuey,
    RedisHuey,
    SqliteHuey,
)
from huey_core.contrib.sql_huey import SqlHuey, SqlStorage
from huey_core.exceptions import ConfigurationError
from huey_core.storage import (
    BlackHoleStorage,
    FileStorage,
    MemoryStorage,
    RedisExpireStorage,
    RedisStorage,
    SqliteStorage,
)
from huey_core.testing import BackendConformance
from huey_redis.backend import RedisBackend
from huey_redis.testing import RedisServer, free_ports, require_binaries
from huey_redis.testing import require_server as require_redis
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, drop_prefix, postgres_sql, require_database
from huey_sql.testing import malformed_rows as sql_malformed_rows

DB = 7  # a Redis database no other test uses, so db= is visible as where the keys land


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, text
    return text


def name(prefix: str = "parity") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"  # clean_name keeps it as is


def add_task(huey: Huey) -> Any:
    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    return add


def run_next(huey: Huey) -> Any:
    task = huey.dequeue()
    assert task is not None
    return huey.execute(task)


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """A plain client on database DB; deletes what a test left there."""
    require_redis()
    client = redis.Redis(db=DB)
    yield client
    for key in client.scan_iter("huey:{parity*"):
        client.delete(key)
    client.close()


def instance_keys(client: redis.Redis, instance: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(f"huey:{{{instance}}}:*")}


def test_redis_huey_db_selects_that_database_and_conn_is_the_redis_client(raw):
    instance = name()
    huey = RedisHuey(instance, host="127.0.0.1", port=6379, db=DB)
    add_task(huey)(1, 2)
    assert instance_keys(raw, instance), "the message is in database 7"
    assert not instance_keys(redis.Redis(db=0), instance)
    # apps keep their own keys through huey.storage.conn
    conn = huey.storage.conn
    assert isinstance(conn, redis.Redis)
    conn.set("parity-app-key", b"v1")
    try:
        assert raw.get("parity-app-key") == b"v1"
    finally:
        raw.delete("parity-app-key")
    huey.flush()


def test_redis_huey_url_and_storage_class_spelling_are_the_same_store(raw):
    instance = name()
    by_url = RedisHuey(instance, url=f"redis://127.0.0.1:6379/{DB}")
    by_class = Huey(instance, storage_class=RedisStorage, host="127.0.0.1", db=DB)
    add_task(by_class)
    add_task(by_url)(2, 3)
    assert by_class.pending_count() == 1
    assert run_next(by_class) == 5
    by_url.flush()


def test_redis_huey_client_name_names_its_connections(raw):
    client_name = name("parity_client")
    huey = RedisHuey(name(), db=DB, client_name=client_name)
    huey.pending_count()
    assert client_name in {c["name"] for c in raw.client_list()}


def test_redis_huey_connection_pool_is_used(raw):
    pool = redis.ConnectionPool(host="127.0.0.1", port=6379, db=DB)
    instance = name()
    huey = RedisHuey(instance, connection_pool=pool)
    add_task(huey)(1, 1)
    assert huey.storage.conn.connection_pool is pool
    assert instance_keys(raw, instance)
    assert "password" not in huey.storage.describe()
    huey.flush()


def test_redis_huey_refuses_an_over_determined_connection_in_one_line():
    with pytest.raises(ConfigurationError) as exc:
        RedisHuey("x", url="redis://127.0.0.1:6379/0", host="127.0.0.1")
    assert "only one of url=, connection_pool= or host=" in one_line(exc)
    with pytest.raises(ConfigurationError) as exc:
        RedisHuey("x", connection_pool=redis.ConnectionPool(), db=2)
    one_line(exc)


def test_redis_huey_refuses_an_unknown_keyword_at_construction_not_first_use():
    with pytest.raises(ConfigurationError) as exc:
        RedisHuey("x", hots="127.0.0.1")  # a typo huey would only meet at the first command
    assert "does not take hots" in one_line(exc)
    # redis-py's own connection options still pass
    assert RedisHuey("x", socket_connect_timeout=2, retry_on_timeout=True).backend_spec


def test_redis_huey_password_reaches_the_server_and_stays_out_of_descriptions(tmp_path):
    require_binaries()
    secret = "pw-parity-never-shown"
    server = RedisServer(free_ports(1)[0], tmp_path, password=secret)
    server.start()
    try:
        good = RedisHuey("pw", host="127.0.0.1", port=server.port, password=secret)
        add_task(good)(1, 2)
        assert good.pending_count() == 1
        assert secret not in good.storage.describe()
        bad = RedisHuey("pw", host="127.0.0.1", port=server.port, password="wrong")
        with pytest.raises(redis.AuthenticationError):
            bad.pending_count()
    finally:
        server.stop()


def test_redis_huey_blocking_false_makes_the_consumer_poll(raw):
    polling = RedisHuey(name(), db=DB, blocking=False)
    blocking = RedisHuey(name(), db=DB)
    assert polling.create_consumer().blocking is False
    assert blocking.create_consumer().blocking is True


def blpop_timeouts(client: redis.Redis, instance: str, action: Any) -> list[float]:
    """The timeout argument of every BLPOP on `instance`'s keys while `action()` ran (MONITOR
    sees every client of the server, so others are filtered out)."""
    seen: list[float] = []
    marker = f"parity-stop-{uuid.uuid4().hex}"
    ready = threading.Event()

    def watch() -> None:
        with redis.Redis(db=DB, socket_timeout=10).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                text = command["command"]
                if marker in text:
                    return
                if text.upper().startswith("BLPOP") and f"{{{instance}}}" in text:
                    seen.append(float(text.split()[-1]))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)  # MONITOR is registered once its reply came back; give it a moment
    action()
    client.echo(marker)
    thread.join(10)
    return seen


def test_redis_huey_read_timeout_is_the_longest_blocking_read(raw):
    huey = RedisHuey(name(), db=DB, read_timeout=0.2)
    queue = huey.storage.queue
    timeouts = blpop_timeouts(raw, huey.name, lambda: queue.dequeue("parity", 30, wait=0.7))
    assert len(timeouts) >= 3, timeouts
    assert max(timeouts) <= 0.2
    longer = RedisHuey(name(), db=DB, read_timeout=2)
    queue = longer.storage.queue
    timeouts = blpop_timeouts(raw, longer.name, lambda: queue.dequeue("parity", 30, wait=0.7))
    assert len(timeouts) == 1 and 0.5 < timeouts[0] <= 0.7, timeouts


def test_redis_huey_clean_name_is_honoured(raw):
    suffix = uuid.uuid4().hex[:8]
    cleaned = RedisHuey(f"parity-x.{suffix}", db=DB)  # huey's default: clean_name=True
    kept = RedisHuey(f"parity-y.{suffix}", db=DB, clean_name=False)
    add_task(cleaned)(1, 1)
    add_task(kept)(1, 1)
    assert instance_keys(raw, f"parityx{suffix}")
    assert instance_keys(raw, f"parity-y.{suffix}")
    cleaned.flush()
    kept.flush()
    with pytest.raises(ConfigurationError) as exc:
        RedisHuey("---", db=DB).storage  # noqa: B018 - building the backend is the point
    one_line(exc)


def test_redis_huey_notify_result_wakes_a_blocking_get(raw):
    huey = RedisHuey(name(), db=DB, notify_result=True, notify_result_ttl=30)
    result = add_task(huey)(20, 22)
    threading.Timer(0.2, lambda: run_next(huey)).start()
    assert result.get(blocking=True, timeout=10) == 42


@pytest.mark.parametrize("cls", [RedisExpireHuey, PriorityRedisExpireHuey])
def test_redis_expire_huey_results_carry_a_ttl_and_vanish_after_it(raw, cls):
    instance = name()
    huey = cls(instance, db=DB, expire_time=1)
    add = add_task(huey)
    result = add(1, 2)
    assert run_next(huey) == 3
    result_key = f"huey:{{{instance}}}:kv:{result.id}"
    assert 0 < raw.pttl(result_key) <= 1000
    # as huey's RedisExpireStorage: reading does not delete, the TTL does
    assert huey.result(result.id) == 3
    assert huey.result(result.id) == 3
    # a value without a ttl is still taken by the one reader that pops it (a dead letter
    # requeued once, a revoke_once revocation)
    huey.put("plain", 1)
    assert huey.get("plain") == 1 and huey.get("plain") is None
    other = add(5, 5)
    other.revoke()
    revocations = list(raw.scan_iter(f"huey:{{{instance}}}:kv:*{other.id}*"))
    assert revocations and all(raw.pttl(k) == -1 for k in revocations), "never expire"
    time.sleep(1.2)
    assert raw.exists(result_key) == 0
    assert huey.result(result.id) is None
    huey.flush()


def test_priority_redis_hueys_take_the_highest_priority_first(raw):
    for cls in (PriorityRedisHuey, PriorityRedisExpireHuey):
        huey = cls(name(), db=DB)

        @huey.task()
        def echo(x: str) -> str:
            return x

        huey.enqueue(echo.s("low", priority=1))
        huey.enqueue(echo.s("high", priority=9))
        assert run_next(huey) == "high"
        assert run_next(huey) == "low"


def test_redis_storage_called_directly_builds_a_backend(raw):
    instance = name()
    backend = RedisStorage(instance, db=DB)
    assert isinstance(backend, RedisBackend)
    huey = Huey(instance, backend=backend)
    add_task(huey)(1, 1)
    assert instance_keys(raw, instance)
    huey.flush()


# -- SQLite --------------------------------------------------------------------------------------


def pragmas(huey: Huey) -> dict[str, Any]:
    huey.pending_count()  # builds the schema and a pooled connection
    raw = huey.storage.engine.raw_connection()
    try:
        cur = raw.cursor()
        return {
            p: cur.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("journal_mode", "cache_size", "synchronous", "busy_timeout")
        }
    finally:
        raw.close()


def test_sqlite_huey_defaults_are_huey_s(tmp_path):
    huey = SqliteHuey("app", filename=str(tmp_path / "app.db"))
    assert pragmas(huey) == {
        "journal_mode": "wal",
        "cache_size": -8000,  # cache_mb=8
        "synchronous": 1,  # NORMAL: fsync=None leaves the backend's safe-against-kill default
        "busy_timeout": 5000,  # timeout=5
    }
    assert (tmp_path / "app.db").exists()


def test_sqlite_huey_options_are_pragmas_on_every_connection(tmp_path):
    huey = SqliteHuey(
        "app",
        filename=str(tmp_path / "app.db"),
        journal_mode="truncate",
        cache_mb=16,
        fsync=True,
        timeout=7,
    )
    assert pragmas(huey) == {
        "journal_mode": "truncate",
        "cache_size": -16000,
        "synchronous": 2,  # FULL
        "busy_timeout": 7000,
    }
    no_fsync = SqliteHuey("app", filename=str(tmp_path / "b.db"), fsync=False)
    assert pragmas(no_fsync)["synchronous"] == 0  # OFF
    wal = SqliteHuey("app", filename=str(tmp_path / "c.db"), journal_mode="WAL")
    pragmas(wal)
    with sqlite3.connect(tmp_path / "c.db") as other:  # WAL is a mode of the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cysqlite_huey_pragmas_apply_on_the_same_sqlite_database(tmp_path):
    pragmas_ = {"journal_mode": "delete", "cache_size": -4000, "synchronous": 2}
    huey = CySqliteHuey("cy", filename=str(tmp_path / "cy.db"), pragmas=pragmas_, timeout=3)
    assert pragmas(huey) == {
        "journal_mode": "delete",
        "cache_size": -4000,
        "synchronous": 2,
        "busy_timeout": 3000,
    }
    with pytest.raises(ConfigurationError) as exc:
        CySqliteHuey("cy", filename=str(tmp_path / "cy.db"), pragmas={"foreign_keys": 1})
    assert "foreign_keys" in one_line(exc)


def test_sqlite_huey_strict_fifo_keeps_arrival_order_across_acks(tmp_path):
    huey = SqliteHuey("fifo", filename=str(tmp_path / "fifo.db"), strict_fifo=True)

    @huey.task()
    def echo(x: int) -> int:
        return x

    order = []
    for i in range(3):
        echo(i)
    order.append(run_next(huey))  # the rows left are 1, 2; the next ids follow them
    for i in range(3, 6):
        echo(i)
    while huey.pending_count():
        order.append(run_next(huey))
    assert order == [0, 1, 2, 3, 4, 5]


def test_sqlite_huey_refusals_are_one_line_at_construction(tmp_path):
    with pytest.raises(ConfigurationError) as exc:
        SqliteHuey("app", filename=str(tmp_path / "x.db"), detect_types=1)
    assert "detect_types" in one_line(exc)
    with pytest.raises(ConfigurationError) as exc:
        SqliteHuey("app", filename=str(tmp_path / "x.db"), journal_mode="sideways")
    assert "journal_mode" in one_line(exc)
    # the sql backend's own options still pass
    assert (
        SqliteHuey("app", filename=str(tmp_path / "x.db"), events_keep=10).backend_spec[2][
            "events_keep"
        ]
        == 10
    )


def test_huey_subclass_with_a_storage_class_attribute(tmp_path):
    class AppHuey(Huey):
        storage_class = SqliteStorage

    huey = AppHuey("sub", filename=str(tmp_path / "sub.db"))
    add_task(huey)(2, 2)
    assert run_next(huey) == 4
    assert (tmp_path / "sub.db").exists()


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
def pg_prefix() -> Iterator[str]:
    require_database(POSTGRES_URL)
    prefix = f"pp{uuid.uuid4().hex[:8]}"
    yield prefix
    drop_prefix(POSTGRES_URL, f"{prefix}_tk_")


def pg_tables(prefix: str) -> set[str]:
    rows = postgres_sql(
        f"SELECT tablename FROM pg_tables WHERE left(tablename, {len(prefix)}) = '{prefix}'"
    )
    return {row[0] for row in rows}


@pytest.mark.parametrize(
    "connect",
    [
        {"dsn": "host=127.0.0.1 port=5432 dbname=test user=postgres"},
        {"dsn": "postgresql://postgres@127.0.0.1:5432/test"},
        {"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"},
    ],
    ids=["libpq-dsn", "url-dsn", "keywords"],
)
def test_postgres_huey_connects_as_huey_does(pg_prefix, connect):
    huey = PostgresHuey("pg", table_prefix=pg_prefix, **connect)
    add_task(huey)(3, 4)
    assert run_next(huey) == 7
    assert f"{pg_prefix}_tk_queue" in pg_tables(pg_prefix)
    assert "notify" in huey.storage.describe()  # blocking=True: LISTEN/NOTIFY


def test_postgres_huey_password_keyword_stays_out_of_descriptions(pg_prefix):
    secret = "pg-parity-never-shown"  # the test server trusts loopback, so any password works
    huey = PostgresHuey("pg", host="127.0.0.1", dbname="test", user="postgres",
                        password=secret, table_prefix=pg_prefix)  # fmt: skip
    assert huey.pending_count() == 0
    assert secret not in huey.storage.describe() and secret not in repr(huey.storage)


def test_postgres_huey_blocking_false_polls_every_read_timeout(pg_prefix):
    huey = PostgresHuey(
        "pg", dsn=POSTGRES_URL, table_prefix=pg_prefix, blocking=False, read_timeout=0.5
    )
    assert "polling" in huey.storage.describe()
    assert huey.backend_spec[2]["poll_interval"] == 0.5


def test_postgres_huey_refuses_a_connection_callable_in_one_line():
    with pytest.raises(ConfigurationError) as exc:
        PostgresHuey("pg", connection=lambda: None)
    assert "dsn=" in one_line(exc)


def test_sql_huey_takes_a_database_url(pg_prefix, tmp_path):
    huey = SqlHuey("sqlh", database="postgres://postgres@127.0.0.1:5432/test",
                   table_prefix=f"{pg_prefix}_tk_")  # fmt: skip
    add_task(huey)(1, 1)
    assert run_next(huey) == 2
    local = Huey("sqlh", storage_class=SqlStorage, database=f"sqlite:///{tmp_path / 'l.db'}")
    add_task(local)(1, 2)
    assert run_next(local) == 3
    with pytest.raises(ConfigurationError) as exc:
        SqlHuey("sqlh", database=object())
    assert "URL" in one_line(exc)


def test_sql_huey_takes_a_peewee_mysql_url():
    require_database(MYSQL_URL)
    prefix = f"pm{uuid.uuid4().hex[:8]}_"
    url = MYSQL_URL.replace("mysql+pymysql://", "mysql://")  # peewee's spelling
    try:
        huey = SqlHuey("sqlm", database=url, table_prefix=prefix)
        add_task(huey)(4, 4)
        assert run_next(huey) == 8
        assert huey.storage.url.startswith("mysql+pymysql://")
    finally:
        drop_prefix(MYSQL_URL, prefix)


# -- files, memory, black hole -------------------------------------------------------------------


def test_file_huey_keeps_its_queue_in_that_directory(tmp_path):
    folder = tmp_path / "queue-dir"
    huey = FileHuey("files", path=str(folder), levels=2, use_thread_lock=True)
    add_task(huey)(5, 6)
    assert (folder / "huey.db").exists()
    again = FileHuey("files", path=str(folder))  # another process would see the same
    add_task(again)
    assert run_next(again) == 11


def test_file_huey_refusals(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigurationError) as exc:
        FileHuey("files", path=str(tmp_path / "a-file"))
    assert "not a directory" in one_line(exc)
    with pytest.raises(ConfigurationError) as exc:
        FileHuey("files", path=str(tmp_path), levels=9)
    one_line(exc)


class TestFileStorageConformance(BackendConformance):
    """FileStorage is the sql backend on a file in the folder: it passes the whole suite."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path):
        yield lambda instance: FileStorage(instance, path=str(tmp_path / "files"))

    @pytest.fixture
    def malformed_rows(self, tmp_path: Path):
        return sql_malformed_rows(f"sqlite:///{tmp_path / 'files' / 'huey.db'}")


def test_memory_huey_takes_huey_s_generic_options():
    huey = MemoryHuey("m", results=False, store_none=True, utc=False, immediate=True)
    assert huey.immediate and not huey.utc
    assert add_task(huey)(1, 2) is None  # results=False: calling returns no Result
    with pytest.raises(ConfigurationError) as exc:
        MemoryHuey("m", host="127.0.0.1")
    assert "host" in one_line(exc)
    assert Huey("m", storage_class=MemoryStorage).backend_spec[0] == "memory"


def test_black_hole_huey_discards_everything():
    huey = BlackHoleHuey("void")
    add = add_task(huey)
    result = add(1, 2)
    assert huey.pending_count() == 0 and huey.dequeue() is None
    add.schedule((1, 2), delay=60)
    assert huey.scheduled() == []
    huey.put("k", "v")
    assert huey.get("k") is None
    assert result.get() is None
    lock = huey.lock_task("always-free")
    with lock:
        with lock:  # nothing is stored, so the lock is never held (huey's BlackHoleStorage)
            pass
    assert Huey("void", storage_class=BlackHoleStorage).storage.queue.size() == 0
    assert Huey("void", backend="blackhole").storage.store.items() == {}


def test_storage_class_refusals_are_one_line():
    with pytest.raises(ConfigurationError) as exc:
        Huey("x", storage_class=RedisExpireStorage, backend="sql")
    assert "not both" in one_line(exc)

    class HueyStorage:  # what `from huey.storage import RedisStorage` hands over
        pass

    with pytest.raises(ConfigurationError) as exc:
        Huey("x", storage_class=HueyStorage)  # type: ignore[arg-type]
    assert "huey_core.storage_classes" in one_line(exc)


def test_every_huey_class_and_storage_name_is_importable_where_huey_has_it():
    import huey_core
    import huey_core.storage

    for cls in ("BlackHoleHuey", "CySqliteHuey", "FileHuey", "MemoryHuey", "PostgresHuey", "RedisHuey",
                "RedisExpireHuey", "PriorityRedisHuey", "PriorityRedisExpireHuey", "SqliteHuey"):  # fmt: skip
        assert issubclass(getattr(huey_core, cls), Huey), cls
    for cls in ("BaseStorage", "BlackHoleStorage", "CySqliteStorage", "FileStorage", "MemoryStorage",
                "PostgresStorage", "PriorityRedisStorage", "PriorityRedisExpireStorage",
                "RedisExpireStorage", "RedisStorage", "SqliteStorage"):  # fmt: skip
        assert hasattr(huey_core.storage, cls), cls
    assert os.path.basename(huey_core.storage.__file__) == "storage.py"
