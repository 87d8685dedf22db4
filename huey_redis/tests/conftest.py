"""Fixtures of the Redis backend tests. The helpers they use live in huey_redis.testing, which
the root tests/reliability suite shares."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from huey_redis.backend import RedisBackend
from huey_redis.testing import (
    REDIS_URL,
    RedisServer,
    delete_instance_keys,
    free_ports,
    make_factory,
    require_binaries,
    require_server,
    start_cluster,
    unique_name,
)


@pytest.fixture
def factory() -> Iterator[Callable[..., RedisBackend]]:
    """factory(name=None, **options) -> RedisBackend on the shared server; same name, same data."""
    require_server()
    yield from make_factory(REDIS_URL)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of one node of a private three-node Redis Cluster."""
    servers = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield f"redis://127.0.0.1:{servers[0].port}/0"
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private password-protected redis-server whose data survives a restart (append-only
    file, fsync always), for tests that stop and start it."""
    require_binaries()
    server = RedisServer(
        free_ports(1)[0], tmp_path, "--appendonly", "yes", "--appendfsync", "always",
        password="pw-never-printed-42",
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_backend(private_redis: RedisServer) -> Iterator[RedisBackend]:
    backend = RedisBackend("restart", private_redis.url)
    yield backend
    backend.close()


@pytest.fixture
def redis_name() -> Iterator[str]:
    """A unique instance name on the shared server; its keys are deleted afterwards."""
    import redis

    require_server()
    name = unique_name("consumer")
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        delete_instance_keys(client, name)
    finally:
        client.close()


def wait_until_blocked(client: object, count: int, name: str | None = None) -> None:
    """Return once `count` connections (named `name`, if given) are blocked in a command on the
    server, as CLIENT LIST shows them (flag b): a test then knows its waiters are really waiting."""
    deadline = time.monotonic() + 10
    while True:
        clients = client.client_list()  # type: ignore[attr-defined]
        blocked = [c for c in clients if "b" in c["flags"] and name in (None, c.get("name"))]
        if len(blocked) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(blocked)} of {count} clients blocked: {clients}")
        time.sleep(0.01)


@pytest.fixture
def blocked() -> Callable[..., None]:
    """blocked(client, count, name=None): wait until that many connections block (CLIENT LIST)."""
    return wait_until_blocked
