"""A private PostgreSQL server that the test stops and starts: the backend reconnects.

The shared server on 5432 cannot be restarted (other suites use it), so this test runs its own
throw-away cluster on a free loopback port (see huey_sql.testing.PrivatePostgres).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy

from huey_sql.backend import SQLBackend
from huey_sql.testing import PrivatePostgres, unavailable

PASSWORD = "s3cret-restart"


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        pg.destroy()
        unavailable(f"could not start a private PostgreSQL: {exc}")
    yield pg
    pg.destroy()


def test_backend_survives_a_server_restart(server: PrivatePostgres) -> None:
    url = server.url(PASSWORD)
    backend = SQLBackend("restart", url, poll_interval=30.0)  # wake-ups must come from NOTIFY
    writer = SQLBackend("restart", url)
    assert backend.queue.dequeue("w", 30, wait=0.3) is None  # an empty wait starts LISTEN
    waker = backend._db.waker
    assert waker._conn is not None

    server.stop()
    # The server is gone: SQLAlchemy's error, or the driver's own when the pool, finding its idle
    # connection dead, fails to open a new one.
    with pytest.raises((sqlalchemy.exc.OperationalError, psycopg.OperationalError)) as info:
        backend.queue.enqueue(b"while down")
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
    server.start()

    # Pooled connections died with the server: the next calls reconnect without an error.
    for i in range(8):
        writer.queue.enqueue(f"after-{i}".encode())
    assert [backend.queue.dequeue("w", 30).data for _ in range(8)] == [
        f"after-{i}".encode() for i in range(8)
    ]

    # The LISTEN thread reconnects too: a waiting dequeue is woken by NOTIFY again.
    deadline = time.monotonic() + 15  # the listener retries with backoff (at most 5 s apart)
    while waker._conn is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waker._conn is not None, "the LISTEN connection never came back"
    timer = threading.Timer(0.5, writer.queue.enqueue, args=(b"notified",))
    timer.start()
    started = time.monotonic()
    delivery = backend.queue.dequeue("w", 30, wait=20)
    assert delivery is not None and delivery.data == b"notified"
    assert time.monotonic() - started < 3
    backend.close()
    writer.close()
