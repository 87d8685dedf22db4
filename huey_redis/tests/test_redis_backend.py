"""The redis backend: the shared conformance suite, then what only Redis promises."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from huey_core.testing import BackendConformance
from huey_redis.testing import (
    REDIS_URL,
    RedisServer,
    make_factory,
    malformed_rows,
    require_binaries,
    require_server,
    unique_name,
)


class TestRedisBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self):
        require_server()
        yield from make_factory(REDIS_URL)

    @pytest.fixture
    def malformed_rows(self):
        return malformed_rows()


# -- Redis specifics (fixtures in conftest.py) --------------------------------------------------


def test_every_key_shares_the_instance_hash_tag(factory):
    backend = factory()
    backend.queue.enqueue(b"a")
    backend.queue.dequeue("w", 30)
    backend.queue.enqueue(b"b", priority=3)
    backend.schedule.add(b"s", time.time() + 60)
    backend.store.put("k", b"v", ttl=60)
    backend.store.incr("n")
    keys = list(backend.client.scan_iter(match=f"*{backend.name}*"))
    assert keys
    assert all(k.decode().startswith(f"huey:{{{backend.name}}}:") for k in keys)
    slots = {backend.client.cluster_keyslot(k) if backend.cluster else None for k in keys}
    assert len(slots) == 1


def test_flushing_the_three_stores_leaves_no_key_behind(factory):
    backend = factory()
    backend.queue.enqueue(b"a", priority=2)
    backend.queue.enqueue(b"b")
    backend.queue.dequeue("w", 30)
    backend.schedule.add(b"s", time.time() + 60, priority=1)
    backend.schedule.move_due(time.time() + 120)
    backend.schedule.add(b"t", time.time() + 60)
    backend.store.put("k", b"v", ttl=60)
    backend.store.incr("n")
    backend.queue.flush()
    backend.schedule.flush()
    backend.store.flush()
    assert list(backend.client.scan_iter(match=f"huey:{{{backend.name}}}:*")) == []


def test_describe_masks_the_password():
    from huey_redis.backend import RedisBackend

    backend = RedisBackend("masked", "redis://user:s3cret-pw@127.0.0.1:6379/0")
    try:
        assert "s3cret-pw" not in backend.describe()
        assert "s3cret-pw" not in repr(backend)
        assert "***" in backend.describe()
    finally:
        backend.close()


def test_created_through_the_plugin_registry_by_url_scheme():
    from huey_core.plugins import create_backend

    require_server()
    backend = create_backend(unique_name(), url=REDIS_URL)
    try:
        assert type(backend).__name__ == "RedisBackend"
    finally:
        backend.close()


def test_hiredis_parser_is_used_when_installed(factory):
    pytest.importorskip("hiredis")
    backend = factory()
    conn = backend.client.connection_pool.get_connection()
    try:
        assert "Hiredis" in type(conn._parser).__name__
    finally:
        backend.client.connection_pool.release(conn)


def test_max_connections_makes_threads_wait_for_a_free_connection(factory):
    backend = factory(max_connections=2)
    errors = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                backend.queue.enqueue(f"{i}-{j}".encode())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert backend.queue.size() == 400


def test_blocked_dequeues_all_wake_for_a_burst_of_priority_messages(factory, blocked):
    """Each message wakes a waiter (tokens plus the baton after each claim), whatever its
    priority, so no worker sleeps through its wait while messages sit ready."""
    tag = f"waiters-{uuid.uuid4().hex[:8]}"
    backend = factory(client_name=tag)
    got: list[bytes] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        d = backend.queue.dequeue(f"w{i}", 30, wait=5)
        if d is not None:
            with lock:
                got.append(d.data)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    blocked(backend.client, 4, tag)  # all four wait inside the server
    started = time.monotonic()
    other = factory(backend.name)
    for i in range(4):
        other.queue.enqueue(f"m{i}".encode(), priority=i)
    for t in threads:
        t.join(10)
    assert sorted(got) == [b"m0", b"m1", b"m2", b"m3"]
    assert time.monotonic() - started < 3


def test_wait_wakes_every_waiter_on_one_key(factory, blocked):
    backend = factory()
    tag = f"waiters-{uuid.uuid4().hex[:8]}"
    results: list[bool] = []

    def waiter() -> None:
        results.append(factory(backend.name, client_name=tag).store.wait("result:x", 5))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    blocked(backend.client, 3, tag)  # all three wait inside the server
    started = time.monotonic()
    backend.store.put("result:x", b"done")
    for t in threads:
        t.join(10)
    assert results == [True, True, True]
    assert time.monotonic() - started < 2


def test_default_ttl_applies_to_put_without_ttl_only(factory):
    backend = factory(default_ttl=0.2)
    backend.store.put("result:1", b"r")
    backend.store.put("kept", b"k", ttl=60)
    assert backend.store.put_if_empty("lock", b"l")  # locks never take default_ttl
    assert backend.store.size() == 3
    time.sleep(0.4)
    assert backend.store.peek("result:1") is None
    assert backend.store.items() == {"kept": b"k", "lock": b"l"}
    assert backend.store.size() == 2


def test_expired_keys_leave_the_index(factory):
    """The size/items index must not grow with keys Redis already expired."""
    backend = factory()
    for i in range(30):
        backend.store.put(f"r{i}", b"x", ttl=0.05)
    time.sleep(0.15)
    backend.store.put("trigger", b"x")  # every write prunes a batch of stale index entries,
    backend.store.put("trigger", b"x")  # so the index stays bounded even if size() is never called
    assert backend.client.zcard(backend.key("kv-idx")) == 1
    assert backend.store.size() == 1


def test_a_stale_lease_cannot_ack_the_next_delivery(factory):
    backend = factory()
    backend.queue.enqueue(b"job")
    first = backend.queue.dequeue("w1", 0.05)
    time.sleep(0.1)
    assert backend.queue.recover() == 1
    second = backend.queue.dequeue("w2", 30)
    assert second is not None and second.deliveries == 2
    backend.queue.ack(first.lease)  # the late worker acks: must not delete w2's message
    assert [lease.lease for lease in backend.queue.leases()] == [second.lease]
    assert backend.queue.extend(first.lease, 30) is False


def test_close_stops_a_listener_within_a_second(factory):
    backend = factory()
    sub = backend.events.listen()
    seen: list[bytes] = []
    thread = threading.Thread(target=lambda: seen.extend(sub))
    thread.start()
    backend.events.emit(b'{"status": "enqueued"}')
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    sub.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert seen == [b'{"status": "enqueued"}']
    assert backend.events.channel == f"huey.events.{backend.name}"


def test_unix_socket_url_with_password_and_db(tmp_path):
    from huey_redis.backend import RedisBackend

    require_binaries()
    server = RedisServer(0, tmp_path, password="sock-pw")
    server.start()
    try:
        backend = RedisBackend("unix", f"unix://:sock-pw@{server.socket_path}?db=2")
        backend.queue.enqueue(b"over a socket")
        assert backend.queue.dequeue("w", 30).data == b"over a socket"
        assert backend.client.connection_pool.connection_kwargs["db"] == 2
        assert "sock-pw" not in backend.describe()
        backend.close()
    finally:
        server.stop()


def test_rediss_url_selects_tls_connections():
    from redis.connection import SSLConnection

    from huey_redis.backend import RedisBackend

    backend = RedisBackend("tls", "rediss://:pw@redis.example.invalid:6380/1")  # never connects
    assert backend.client.connection_pool.connection_class is SSLConnection
    assert "pw@" not in backend.describe()
    backend.close()


@pytest.mark.parametrize("how", ["release", "recover", "move_due"])
def test_a_blocked_dequeue_wakes_for_every_way_a_message_becomes_ready(factory, blocked, how):
    tag = f"waiter-{uuid.uuid4().hex[:8]}"
    backend = factory(client_name=tag)
    other = factory(backend.name)
    if how == "move_due":
        other.schedule.add(b"job", time.time() - 1)
    else:
        other.queue.enqueue(b"job")
        lease = other.queue.dequeue("first", 0.05 if how == "recover" else 30).lease
        leased_at = time.time()
    got = []
    thread = threading.Thread(target=lambda: got.append(backend.queue.dequeue("w", 30, wait=5)))
    thread.start()
    blocked(other.client, 1, tag)  # waiting inside the server
    started = time.monotonic()
    if how == "release":
        other.queue.release(lease)
    elif how == "recover":
        time.sleep(max(0.0, leased_at + 0.1 - time.time()))  # its 0.05 s lease has run out
        assert other.queue.recover() == 1
    else:
        assert other.schedule.move_due(time.time()) == 1
    thread.join(10)
    assert got[0] is not None and got[0].data == b"job"
    assert time.monotonic() - started < 2


def test_wake_up_tokens_stay_bounded(factory):
    backend = factory()
    for _ in range(200):
        backend.queue.enqueue(b"m")
    assert backend.client.llen(backend.key("signal")) <= 64
    while (d := backend.queue.dequeue("w", 30)) is not None:
        backend.queue.ack(d.lease)
    assert not backend.client.exists(backend.key("signal"))


def _use_without_after_fork(backend) -> None:
    backend.queue.enqueue(b"child did not call after_fork")


def test_redis_py_pools_notice_a_fork_even_without_after_fork(factory):
    """What docs/redis.md relies on: redis-py checks the pid when handing out a connection, so
    a child never writes on its parent's socket even if after_fork() was forgotten."""
    import multiprocessing

    backend = factory()
    backend.queue.size()  # the parent now holds a pooled connection
    child = multiprocessing.get_context("fork").Process(
        target=_use_without_after_fork, args=(backend,)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert backend.queue.peek() == [b"child did not call after_fork"]
    assert backend.store.put_if_empty("parent-still-works", b"1")


def _ack_soon_then_die(backend, lease: str) -> None:
    backend.after_fork()
    backend.queue.ack_soon(lease)
    os._exit(0)  # as a task that kills its worker: no settle_acks(), no clean-up


@pytest.mark.parametrize("answer_arrives_first", [False, True], ids=["at-once", "answered"])
def test_an_ack_sent_with_ack_soon_lands_when_the_process_dies_right_after(
    factory, answer_arrives_first
):
    """The worker acks a finished task with ack_soon() before the next task starts: if that task
    kills the process, the finished one must not run again. Either the ack is still in the
    socket's send buffer (the kernel delivers it before the FIN) or its answer already came
    back (the server ran it)."""
    import multiprocessing

    backend = factory()
    backend.queue.enqueue_many([(b"finished", 0), (b"running", 0)])
    finished, running = backend.queue.dequeue_many("w", 30, 2)

    target = _ack_soon_then_die
    if answer_arrives_first:
        target = _ack_soon_wait_then_die
    child = multiprocessing.get_context("fork").Process(
        target=target, args=(backend, finished.lease)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert [info.lease for info in backend.queue.leases()] == [running.lease]


def _ack_soon_wait_then_die(backend, lease: str) -> None:
    backend.after_fork()
    backend.queue.ack_soon(lease)
    time.sleep(0.2)  # the answer is in this process's receive buffer, unread: close sends RST
    os._exit(0)


def test_ack_soon_is_a_plain_ack_with_a_bounded_pool(factory):
    """With max_connections the pool is sized for one connection per worker: ack_soon() must not
    keep one out of it."""
    backend = factory(max_connections=2)
    backend.queue.enqueue(b"job")
    delivery = backend.queue.dequeue("w", 30)
    backend.queue.ack_soon(delivery.lease)
    pool = backend.client.connection_pool
    assert pool.pool.qsize() == pool.max_connections  # every connection back in the pool
    assert backend.queue.leases() == []


def test_an_ack_soon_that_finds_the_script_gone_is_sent_again(factory):
    """A restarted server forgets its scripts: the answer is NOSCRIPT, and settle_acks() acks
    with the script's source instead, each of the acks in flight (a batch's), not just one."""
    backend = factory()
    backend.queue.enqueue_many([(b"a", 0), (b"b", 0), (b"c", 0), (b"kept", 0)])
    deliveries = backend.queue.dequeue_many("w", 30, 3)
    backend.client.script_flush()
    for delivery in deliveries:
        backend.queue.ack_soon(delivery.lease)
    backend.queue.settle_acks()
    assert backend.queue.leases() == [] and backend.queue.peek() == [b"kept"]
    backend.queue.enqueue(b"next")  # the connection read every answer: the next call is fine
    assert backend.queue.size() == 2
