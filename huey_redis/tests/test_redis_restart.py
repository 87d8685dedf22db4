"""Resilience: the same backend object survives a Redis restart, and errors never show the
password. Uses a private redis-server (with a password and an append-only file) on a free port;
fixtures in conftest.py."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from huey_core.protocols import SUBSCRIPTION_CLOSE_WITHIN
from huey_redis.backend import RedisBackend


def assert_fails_without_password(call, password: str) -> None:
    with pytest.raises(redis.ConnectionError) as info:
        call()
    text = "".join(
        str(e) + repr(e) for e in (info.value, info.value.__cause__, info.value.__context__)
    )
    assert password not in text


def test_calls_fail_while_down_and_work_again_after_restart(private_redis, private_backend):
    backend, password = private_backend, private_redis.password
    backend.queue.enqueue(b"before")
    backend.store.put("result:1", b"kept")
    assert password not in backend.describe()

    private_redis.stop()
    assert_fails_without_password(lambda: backend.queue.enqueue(b"lost"), password)
    assert_fails_without_password(lambda: backend.queue.dequeue("w", 30), password)
    assert_fails_without_password(lambda: backend.queue.dequeue("w", 30, wait=1), password)
    assert_fails_without_password(lambda: backend.store.peek("result:1"), password)
    assert_fails_without_password(lambda: backend.events.emit(b"{}"), password)

    private_redis.start()  # same port; the append-only file brings the data back, scripts reload
    delivery = backend.queue.dequeue("w", 30)
    assert delivery is not None and delivery.data == b"before"
    backend.queue.ack(delivery.lease)
    assert backend.store.peek("result:1") == b"kept"
    backend.queue.enqueue(b"after")
    assert backend.queue.dequeue("w", 30, wait=1).data == b"after"


def test_a_listener_keeps_receiving_after_a_restart(private_redis, private_backend):
    sub = private_backend.events.listen()
    seen: list[bytes] = []
    thread = threading.Thread(target=lambda: seen.extend(sub), daemon=True)
    thread.start()
    try:
        private_redis.stop()
        time.sleep(0.5)  # the listener notices and retries
        private_redis.start()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:  # resubscribing takes a retry round
            try:
                private_backend.events.emit(b'{"status": "finished"}')
            except redis.ConnectionError:
                pass
            time.sleep(0.2)
        assert seen and seen[0] == b'{"status": "finished"}'
    finally:
        sub.close()
        thread.join(5)
    assert not thread.is_alive()


def test_close_stops_a_listener_promptly_while_redis_is_down(private_redis):
    """The subscription's own reconnect loop, not redis-py's retry rounds (which grow with the
    `retries` option), decides how long a closed listener keeps going during an outage."""
    backend = RedisBackend("restart", private_redis.url, retries=8)
    try:
        for pause in (0.3, 0.7, 1.1):  # close() lands at different points of the retry cycle
            sub = backend.events.listen()
            thread = threading.Thread(target=lambda s=sub: list(s), daemon=True)
            thread.start()
            private_redis.stop()
            time.sleep(pause)
            started = time.monotonic()
            sub.close()
            thread.join(5)
            assert not thread.is_alive()
            assert time.monotonic() - started < SUBSCRIPTION_CLOSE_WITHIN
            private_redis.start()
    finally:
        backend.close()


def test_a_closed_listener_leaves_its_connection_retrying_like_the_others(private_redis, blocked):
    """A listener's connection goes back to the pool when it closes; a dequeue that later
    blocks on that connection must still ride out a restart with the backend's retries."""
    backend = RedisBackend("restart", private_redis.url, max_connections=1, retries=20)
    other = RedisBackend("restart", private_redis.url)
    try:
        backend.events.listen().close()  # the pool's only connection served the listener
        got: list[object] = []
        thread = threading.Thread(target=lambda: got.append(_dequeue(backend)), daemon=True)
        thread.start()
        probe = redis.Redis.from_url(private_redis.url)
        blocked(probe, 1)  # the dequeue waits inside the server, on that connection
        probe.close()
        private_redis.stop()
        private_redis.start()
        other.queue.enqueue(b"after the restart")
        thread.join(15)
        assert got == [b"after the restart"]
    finally:
        backend.close()
        other.close()


def _dequeue(backend: RedisBackend) -> object:
    try:
        delivery = backend.queue.dequeue("w", 30, wait=10)
    except redis.ConnectionError as exc:
        return exc
    return None if delivery is None else delivery.data


def test_a_wrong_password_is_reported_without_the_url_secret(private_redis):
    b = RedisBackend("restart", f"redis://:wrong-secret-77@127.0.0.1:{private_redis.port}/0")
    try:
        with pytest.raises(redis.AuthenticationError) as info:
            b.queue.size()
        assert "wrong-secret-77" not in str(info.value)
    finally:
        b.close()
