"""Resilience: the same backend object survives a Redis restart, and errors never show the
password. Uses a private redis-server (with a password and an append-only file) on a free port."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis_support import RedisServer, free_ports, require_binaries

PASSWORD = "pw-never-printed-42"


@pytest.fixture
def server(tmp_path):
    require_binaries()
    srv = RedisServer(
        free_ports(1)[0], tmp_path, "--requirepass", PASSWORD,
        "--appendonly", "yes", "--appendfsync", "always",
    )  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def backend(server):
    from huey_redis.backend import RedisBackend

    b = RedisBackend("restart", f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0")
    yield b
    b.close()


def assert_fails_without_password(call) -> None:
    with pytest.raises(redis.ConnectionError) as info:
        call()
    text = "".join(
        str(e) + repr(e) for e in (info.value, info.value.__cause__, info.value.__context__)
    )
    assert PASSWORD not in text


def test_calls_fail_while_down_and_work_again_after_restart(server, backend):
    backend.queue.enqueue(b"before")
    backend.store.put("result:1", b"kept")
    assert PASSWORD not in backend.describe()

    server.stop()
    assert_fails_without_password(lambda: backend.queue.enqueue(b"lost"))
    assert_fails_without_password(lambda: backend.queue.dequeue("w", 30))
    assert_fails_without_password(lambda: backend.queue.dequeue("w", 30, wait=1))
    assert_fails_without_password(lambda: backend.store.peek("result:1"))
    assert_fails_without_password(lambda: backend.events.emit(b"{}"))

    server.start()  # same port; the append-only file brings the data back, scripts are reloaded
    delivery = backend.queue.dequeue("w", 30)
    assert delivery is not None and delivery.data == b"before"
    backend.queue.ack(delivery.lease)
    assert backend.store.peek("result:1") == b"kept"
    backend.queue.enqueue(b"after")
    assert backend.queue.dequeue("w", 30, wait=1).data == b"after"


def test_a_listener_keeps_receiving_after_a_restart(server, backend):
    sub = backend.events.listen()
    seen: list[bytes] = []
    thread = threading.Thread(target=lambda: seen.extend(sub), daemon=True)
    thread.start()
    try:
        server.stop()
        time.sleep(0.5)  # the listener notices and retries
        server.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:  # resubscribing takes a retry round
            try:
                backend.events.emit(b'{"status": "finished"}')
            except redis.ConnectionError:
                pass
            time.sleep(0.2)
        assert seen and seen[0] == b'{"status": "finished"}'
    finally:
        sub.close()
        thread.join(5)
    assert not thread.is_alive()


def test_a_wrong_password_is_reported_without_the_url_secret(server):
    from huey_redis.backend import RedisBackend

    b = RedisBackend("restart", f"redis://:wrong-secret-77@127.0.0.1:{server.port}/0")
    try:
        with pytest.raises(redis.AuthenticationError) as info:
            b.queue.size()
        assert "wrong-secret-77" not in str(info.value)
    finally:
        b.close()
