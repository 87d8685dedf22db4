"""Helpers for the Redis backend tests: the shared server, private redis-server processes, a
three-node Cluster, and cleanup of the keys a test instance created.

The shared server at REDIS_URL is used by other suites at the same time: tests use unique
instance names and delete only keys under their own hash tag, never FLUSHDB.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from huey_core import testing

REDIS_URL = os.environ.get("HUEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where a missing server is a broken environment."""
    testing.require_server(reason, lambda: False)


def require_server(url: str = REDIS_URL) -> str:
    import redis

    def ping() -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    testing.require_server(f"Redis at {url}", ping)
    return url


def require_binaries() -> None:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")


def delete_instance_keys(client: object, name: str) -> None:
    """Remove every key of instance `name` (its hash tag), and nothing else."""
    keys = list(client.scan_iter(match=f"huey:{{{name}}}:*", count=1000))  # type: ignore[attr-defined]
    for key in keys:
        client.delete(key)  # type: ignore[attr-defined]


def make_factory(url: str = REDIS_URL, **options: object) -> Iterator[Callable[..., object]]:
    """Yield factory(name) -> RedisBackend; two calls with one name share data. Cleans up after."""
    from huey_redis.backend import RedisBackend

    made: list[RedisBackend] = []

    def factory(name: str | None = None, **extra: object) -> RedisBackend:
        backend = RedisBackend(name or unique_name(), url, **{**options, **extra})
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        try:
            delete_instance_keys(backend.client, backend.name)
        except Exception:
            pass
        backend.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_ports(count: int) -> list[int]:
    """`count` consecutive loopback ports, each free together with port + 10000 (a Cluster
    node's bus port). Random, so concurrent test runs (other suites, other checkouts) do not
    collide on fixed numbers."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 30000 - count)
        ports = list(range(base, base + count))
        if all(port_free(p) and port_free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free loopback ports between 20000 and 40000")


class RedisServer:
    """A private redis-server on a loopback port, in its own directory."""

    def __init__(self, port: int, workdir: Path, *extra: str) -> None:
        self.port = port
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.workdir / "redis.sock"

    def _listening(self) -> bool:
        if self.port == 0:  # unix socket only
            return self.socket_path.exists()
        return not port_free(self.port)

    def start(self, timeout: float = 10.0) -> None:
        if self.port and not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.workdir), *self.extra,
        ]  # fmt: skip
        if self.port == 0:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start; see {log.name}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_cluster(workdir: Path) -> list[RedisServer]:
    """Three masters on free ports, no replicas, slots assigned; returns once cluster_state is
    ok. The URL of the first node reaches the whole Cluster."""
    require_binaries()
    ports = free_ports(3)
    servers = []
    try:
        for port in ports:
            server = RedisServer(
                port, workdir / str(port), "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
            )  # fmt: skip
            server.start()
            servers.append(server)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            states = [
                subprocess.run(
                    ["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True, text=True
                ).stdout
                for p in ports
            ]
            if all("cluster_state:ok" in s for s in states):
                return servers
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster never reached cluster_state:ok")
            time.sleep(0.1)
    except BaseException:
        for server in servers:
            server.stop()
        raise
