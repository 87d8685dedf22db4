"""Test helpers for code that runs on the sql backend: the shared database servers, table prefixes
and their cleanup, a private PostgreSQL cluster, and workers for child processes.

Needs pytest (`pip install "huey-sql[testing]"`). The PostgreSQL and MariaDB/MySQL servers at
POSTGRES_URL and MYSQL_URL are shared with other test runs at the same time: work under your own
table prefix (unique_prefix) and drop only those tables afterwards (drop_prefix). A private
cluster listens on a free loopback port and is stopped by whoever started it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core.testing import in_ci, require_server
from huey_sql.backend import SQLBackend

__all__ = [
    "MYSQL_URL",
    "POSTGRES_URL",
    "PrivatePostgres",
    "drop_prefix",
    "free_port",
    "make_factory",
    "postgres_database",
    "postgres_sql",
    "malformed_rows",
    "require_database",
    "unavailable",
    "unique_name",
    "unique_prefix",
]

POSTGRES_URL = os.environ.get(
    "HUEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("HUEY_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def unique_prefix() -> str:
    """A table prefix nobody else uses (schema.PREFIX_RE allows at most 20 characters)."""
    return f"ht{uuid.uuid4().hex[:8]}_"


def unique_name(prefix: str = "t") -> str:
    """A huey instance name nobody else uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def require_database(url: str) -> None:
    """Skip (or fail under CI=true) when the server behind `url` is not reachable."""
    import sqlalchemy as sa

    def ping() -> bool:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        finally:
            engine.dispose()

    require_server(f"database at {url}", ping)


def postgres_sql(statement: str, url: str = POSTGRES_URL) -> list[Any]:
    """Run one statement outside any transaction (CREATE DATABASE needs that); its rows."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.exec_driver_sql(statement)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database(prefix: str = "t") -> Iterator[str]:
    """A database of its own on the shared PostgreSQL server, dropped afterwards: for an
    application that creates its own tables (a Django project's migrations). Yields its name."""
    require_database(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    postgres_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        # Only this database's sessions (a process the test could not stop) are ended.
        postgres_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        postgres_sql(f'DROP DATABASE IF EXISTS "{name}"')


def drop_prefix(url: str, prefix: str) -> None:
    """Drop the tables created under `prefix`, and nothing else."""
    backend = SQLBackend("cleanup", url, table_prefix=prefix)
    try:
        backend._db.tables.metadata.drop_all(backend.engine, checkfirst=True)
    finally:
        backend.close()


def make_factory(url: str, prefix: str, **options: Any) -> Iterator[Callable[..., SQLBackend]]:
    """Yield factory(name=None, **extra) -> SQLBackend (same name and prefix share data), and
    close every backend it made afterwards. For `yield from` in a fixture."""
    made: list[SQLBackend] = []

    def factory(name: str | None = None, **extra: Any) -> SQLBackend:
        backend = SQLBackend(
            name or unique_name(), url, **{"table_prefix": prefix, **options, **extra}
        )
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


# -- malformed rows (huey_core.testing.MalformedRowsConformance) -------------------------------


def malformed_rows(url: str) -> dict[str, Callable[[SQLBackend], bytes]]:
    """How to write each kind of malformed row the database at `url` can hold, for the
    `malformed_rows` fixture of the conformance suite. PostgreSQL and MySQL enforce the column
    types, so only SQLite can hold a payload or a priority of the wrong type."""
    import sqlalchemy as sa

    top = 2**31 - 1

    def run(backend: SQLBackend, sql: str, **params: Any) -> None:
        backend._db.ensure_schema()
        tables = backend._db.tables
        text = sql.format(q=tables.queue.name, s=tables.schedule.name)
        with backend.engine.begin() as conn:
            conn.execute(sa.text(text), {"name": backend.name, **params})

    def deliveries(backend: SQLBackend) -> bytes:
        backend.queue.enqueue(b"counted out")
        run(backend, "UPDATE {q} SET deliveries = :n WHERE name = :name AND data = :data",
            n=top, data=b"counted out")  # fmt: skip
        return b"counted out"

    def deadline(backend: SQLBackend) -> bytes:
        run(backend, "INSERT INTO {q} (name, sort_key, data, lease, owner, deadline, deliveries) "
            "VALUES (:name, 0, :data, 'lease-without-deadline', 'gone:1:Worker-1', NULL, 1)",
            data=b"no deadline")  # fmt: skip
        return b"no deadline"

    def integer_payload(backend: SQLBackend) -> bytes:
        run(backend, "INSERT INTO {q} (name, sort_key, data, deliveries) "
            "VALUES (:name, 0, 12345, 0)")  # fmt: skip
        return b"12345"

    def text_priority(backend: SQLBackend) -> bytes:
        run(backend, "INSERT INTO {s} (name, ts, priority, data) "
            "VALUES (:name, :ts, 'high', :data)", ts=time.time() - 10, data=b"bad priority")  # fmt: skip
        return b"bad priority"

    def text_payload(backend: SQLBackend) -> bytes:
        run(backend, "INSERT INTO {q} (name, sort_key, data, deliveries) "
            "VALUES (:name, 0, :data, 0)", data='{"written": "as text"}')  # fmt: skip
        return b'{"written": "as text"}'

    rows: dict[str, Callable[[SQLBackend], bytes]] = {
        "deliveries": deliveries,
        "deadline": deadline,
    }
    if url.startswith("sqlite"):
        rows.update(queue=integer_payload, schedule=text_priority, text=text_payload)
    return rows


# -- a private PostgreSQL cluster ----------------------------------------------------------------


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true, because something it needs is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so a missing prerequisite fails instead of skipping)")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, for tests that stop and start
    their server (the shared one must never be restarted).

    Runs as the `postgres` system user when the tests run as root (PostgreSQL refuses root).
    Skips, or fails under CI=true, without the server binaries. Call destroy() when done.
    """

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins or (os.geteuid() == 0 and shutil.which("runuser") is None):
            unavailable("needs PostgreSQL server binaries (and runuser when run as root)")
        self.bindir = os.path.dirname(bins[-1])
        self.port = free_port()
        # Outside pytest's 0700 temp root, so the postgres user can reach its data directory.
        self.base = Path(tempfile.mkdtemp(prefix="huey-sql-pg-"))
        os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        self.log = self.base / "server.log"

    def url(self, password: str = "") -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runas, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self._run(
            f"{self.bindir}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        # fsync=off is safe for a crash of the server process (the OS keeps what was written);
        # synchronous_commit must stay on, or a crash loses transactions it already confirmed.
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            f"{self.bindir}/pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log),
            "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.base, ignore_errors=True)


# -- workers for child processes (module level, so spawn can import them) -----------------------


def claim_worker(url: str, prefix: str, name: str, threads: int, start: Any, out: Any) -> None:
    """Claim and ack until the queue stays empty; put (payloads acked, errors) on `out`."""
    backend = SQLBackend(name, url, table_prefix=prefix, pool_size=threads)
    got: list[bytes] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        mine: list[bytes] = []
        misses = 0
        try:
            while misses < 3:
                delivery = backend.queue.dequeue(f"{os.getpid()}-{i}", 60)
                if delivery is None:
                    misses += 1
                    time.sleep(0.05)
                    continue
                misses = 0
                mine.append(delivery.data)
                backend.queue.ack(delivery.lease)
        except Exception as exc:  # reported to the parent, which fails the test with it
            errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            got.extend(mine)

    start.wait(30)
    _run_threads(work, threads)
    backend.close()
    out.put((got, errors))


def mixed_load(url: str, prefix: str, name: str, threads: int, seconds: float, start: Any,
               out: Any) -> None:  # fmt: skip
    """Every kind of write from `threads` threads for `seconds`; put the first errors on `out`."""
    backend = SQLBackend(name, url, table_prefix=prefix)
    errors: list[str] = []

    def work(i: int) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                _one_of_each_write(backend, i)
            except Exception as exc:  # reported to the parent, which fails the test with it
                errors.append(f"{type(exc).__name__}: {exc}")

    start.wait(30)
    _run_threads(work, threads)
    backend.close()
    out.put(errors[:5])


def _one_of_each_write(backend: SQLBackend, i: int) -> None:
    backend.queue.enqueue(b"x", priority=i)
    delivery = backend.queue.dequeue(f"{os.getpid()}-{i}", 30, wait=0.01)
    if delivery is not None:
        backend.queue.ack(delivery.lease)
    backend.events.emit(b"{}")
    backend.store.put(f"k{i}", b"v", ttl=1)
    backend.store.put_if_empty("lock", b"1", ttl=0.01)
    backend.store.incr("n")
    backend.schedule.add(b"s", time.time())
    backend.schedule.move_due(time.time())
    backend.queue.recover()


def _run_threads(work: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def create_and_enqueue(url: str, prefix: str, name: str, start: Any, out: Any) -> None:
    """Build a backend (creating the schema) when `start` is set, enqueue once; put "ok" or the
    error on `out`."""
    try:
        start.wait(30)
        backend = SQLBackend(name, url, table_prefix=prefix)
        backend.queue.enqueue(str(os.getpid()).encode())
        backend.close()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def emit_events(url: str, prefix: str, name: str, count: int) -> None:
    """Emit `count` events numbered 0.. from this process."""
    backend = SQLBackend(name, url, table_prefix=prefix)
    for i in range(count):
        backend.events.emit(f'{{"status": "finished", "n": {i}}}'.encode())
    backend.close()
