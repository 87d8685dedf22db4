"""A private PostgreSQL server that the test stops and starts: the backend reconnects.

The shared server on 5432 cannot be restarted (other suites use it), so this test runs its own
throw-away cluster on a free loopback port (as the `postgres` system user when run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huey_core.testing import in_ci

PORT = 55432
PASSWORD = "s3cret-restart"


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the PostgreSQL restart test must run)")
    pytest.skip(reason)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class PrivatePostgres:
    def __init__(self, bindir: str, base: Path) -> None:
        self.bindir = bindir
        self.data = base / "data"
        self.log = base / "server.log"
        self.base = base

    def _as_postgres(self, *args: str) -> None:
        # PostgreSQL refuses to run as root; an ordinary user (as on CI runners) runs it as is.
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runas, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self._as_postgres(f"{self.bindir}/initdb", "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "--no-sync")

    def start(self) -> None:
        opts = (f"-p {PORT} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off")
        self._as_postgres(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-o", opts,
                          "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._as_postgres(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                          "stop")


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins or (os.geteuid() == 0 and shutil.which("runuser") is None):
        _unavailable("needs PostgreSQL server binaries (and runuser when run as root)")
    if not _port_free(PORT):
        _unavailable(f"port {PORT} is taken; the restart test needs it")
    # Outside pytest's 0700 temp root, so the postgres user can reach its data directory.
    base = Path(tempfile.mkdtemp(prefix="huey-pgrestart-"))
    os.chmod(base, 0o755)
    pg = PrivatePostgres(os.path.dirname(bins[-1]), base)
    try:
        pg.init()
        pg.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        _unavailable(f"could not start a private PostgreSQL: {exc}")
    yield pg
    try:
        pg.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(base, ignore_errors=True)


def test_backend_survives_a_server_restart(server: PrivatePostgres) -> None:
    from huey_sql.backend import SQLBackend

    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{PORT}/postgres"
    backend = SQLBackend("restart", url, poll_interval=30.0)  # wake-ups must come from NOTIFY
    writer = SQLBackend("restart", url)
    assert backend.queue.dequeue("w", 30, wait=0.3) is None  # an empty wait starts LISTEN
    waker = backend._db.waker
    assert waker._conn is not None

    server.stop()
    with pytest.raises(Exception) as info:  # noqa: B017 - whatever the driver raises
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
