"""Test helpers for code that runs on Redis: the shared server, private redis-server processes, a
three-node Cluster, and cleanup of the keys a test instance created.

Needs pytest (`pip install "huey-redis[testing]"`). The shared server at REDIS_URL is used by
other test runs at the same time: use unique instance names (unique_name) and delete only the
keys under your own instance's hash tag (delete_instance_keys), never FLUSHDB. Private servers
listen on free loopback ports and are stopped by whoever started them.
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
from typing import Any

from huey_core import testing as core_testing
from huey_core.plugins import mask_url
from huey_redis.backend import RedisBackend

__all__ = [
    "REDIS_URL",
    "RedisServer",
    "delete_instance_keys",
    "free_ports",
    "make_factory",
    "malformed_rows",
    "port_free",
    "require_binaries",
    "require_server",
    "start_cluster",
    "unavailable",
    "unique_name",
]

REDIS_URL = os.environ.get("HUEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str = "t") -> str:
    """An instance name no other test run uses, so its keys are its own."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unavailable(reason: str) -> None:
    """Skip the test locally; fail it under CI (CI=true), where a missing tool is a broken
    environment."""
    core_testing.require_server(reason, lambda: False)


def require_server(url: str = REDIS_URL) -> str:
    """Return `url` when a Redis server answers PING there; otherwise skip, or fail under CI."""
    import redis

    def ping() -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    core_testing.require_server(f"Redis at {mask_url(url)}", ping)
    return url


def require_binaries() -> None:
    """redis-server and redis-cli must be on PATH (private servers, Clusters)."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")


def delete_instance_keys(client: Any, name: str) -> None:
    """Remove every key of instance `name` (its hash tag), and nothing else."""
    for key in list(client.scan_iter(match=f"huey:{{{name}}}:*", count=1000)):
        client.delete(key)


def make_factory(url: str = REDIS_URL, **options: Any) -> Iterator[Callable[..., RedisBackend]]:
    """Yield factory(name=None, **options) -> RedisBackend (a unique name when None); two calls
    with one name share data. A fixture yields from it; afterwards it deletes the keys of every
    backend it made and closes them."""
    made: list[RedisBackend] = []

    def factory(name: str | None = None, **extra: Any) -> RedisBackend:
        backend = RedisBackend(name or unique_name(), url, **{**options, **extra})
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        try:
            delete_instance_keys(backend.client, backend.name)
        except Exception:  # noqa: BLE001 - a test that stopped its server leaves nothing to clean
            pass
        backend.close()


def malformed_rows() -> dict[str, Callable[[RedisBackend], bytes]]:
    """How to write each kind of malformed entry Redis can hold, for the `malformed_rows`
    fixture of the conformance suite (huey_core.testing.MalformedRowsConformance)."""

    def message_id(backend: RedisBackend, payload: bytes) -> bytes:
        stored = backend.client.hgetall(backend.key("data"))
        return next(i for i, data in stored.items() if data == payload)

    def count(payload: bytes, value: str) -> Callable[[RedisBackend], bytes]:
        def plant(backend: RedisBackend) -> bytes:
            backend.queue.enqueue(payload)
            backend.client.hset(backend.key("dlv"), message_id(backend, payload), value)
            return payload

        return plant

    def schedule(backend: RedisBackend) -> bytes:
        backend.client.zadd(backend.key("schedule"), {b"not a schedule entry": time.time() - 10})
        return b"not a schedule entry"

    return {
        "queue": count(b"count is not a number", "many"),
        "schedule": schedule,
        "deliveries": count(b"counted out", str(2**31 - 1)),
    }


def port_free(port: int) -> bool:
    """True when nothing accepts connections on loopback `port`."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


BUS_OFFSET = -10000  # a Cluster node's bus port, relative to its port (see start_cluster)


def free_ports(count: int) -> list[int]:
    """`count` consecutive loopback ports, each free together with port - 10000 (a Cluster
    node's bus port). Random, so concurrent test runs (other suites, other checkouts) do not
    collide on fixed numbers. Both ranges (20000-30000 and 10000-20000) lie below Linux's
    ephemeral ports (32768 and up), which outgoing connections and their TIME_WAIT take."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 30000 - count)
        ports = list(range(base, base + count))
        if all(port_free(p) and port_free(p + BUS_OFFSET) for p in ports):
            return ports
    raise RuntimeError("no free loopback ports between 10000 and 30000; stop stray test servers")


class RedisServer:
    """A private redis-server on a loopback port (port 0: a unix socket only), in `workdir`.

    `extra` are more redis-server arguments ("--appendonly", "yes", ...); with `password` the
    server requires it, and `url` carries it.
    """

    def __init__(self, port: int, workdir: Path, *extra: str, password: str | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.password = password
        self.extra = (*extra, "--requirepass", password) if password else extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.workdir / "redis.sock"

    @property
    def url(self) -> str:
        """redis:// (unix:// for port 0) URL of database 0, with the password when there is one."""
        auth = f":{self.password}@" if self.password else ""
        if self.port == 0:
            return f"unix://{auth}{self.socket_path}?db=0"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _listening(self) -> bool:
        if self.port == 0:
            return self.socket_path.exists()
        return not port_free(self.port)

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port and directory) and wait until it listens."""
        if self.port and not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; pick another with free_ports()")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.workdir), *self.extra,
        ]  # fmt: skip
        if self.port == 0:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        log_path = self.workdir / f"redis-{self.port}.log"
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start; see {log_path}: "
                    + " | ".join(tail)
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the server (kill it after 10 s) and wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_cluster(
    workdir: Path, replicas: int = 0, node_timeout_ms: int | None = None
) -> list[RedisServer]:
    """Three masters on free ports, each with `replicas` replicas, slots assigned; returns once
    cluster_state is ok and every replica is in sync. The URL of the first node reaches the
    whole Cluster. `node_timeout_ms` (cluster-node-timeout) bounds how soon a dead master's
    replica takes over. The caller stops the servers."""
    require_binaries()
    extra = ("--cluster-node-timeout", str(node_timeout_ms)) if node_timeout_ms else ()
    for attempt in range(3):  # a port taken between the check and the start: other ports
        servers: list[RedisServer] = []
        try:
            for port in free_ports(3 * (1 + replicas)):
                server = RedisServer(
                    port, workdir / str(port), "--cluster-enabled", "yes",
                    "--cluster-port", str(port + BUS_OFFSET),
                    "--cluster-config-file", f"nodes-{port}.conf", *extra,
                )  # fmt: skip
                server.start()
                servers.append(server)
        except BaseException as exc:
            for server in servers:
                server.stop()
            if isinstance(exc, RuntimeError) and attempt < 2:
                continue
            raise
        try:
            _create_cluster([s.port for s in servers], replicas)
            return servers
        except BaseException:
            for server in servers:
                server.stop()
            raise
    raise AssertionError("unreachable")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    ).stdout


def _create_cluster(ports: list[int], replicas: int = 0) -> None:
    subprocess.run(
        ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
         "--cluster-replicas", str(replicas), "--cluster-yes"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports) and all(
            "master_link_status:up" in _cli(p, "info", "replication")
            for p in ports
            if "role:slave" in _cli(p, "info", "replication")
        ):
            replicas_up = sum("role:slave" in _cli(p, "info", "replication") for p in ports)
            if replicas_up == len(ports) - 3:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster never reached cluster_state:ok")
        time.sleep(0.1)
