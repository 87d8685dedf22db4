"""A Redis Cluster loses a master mid-drain; its replica takes over (issue 11, item 10).

The test starts its own Cluster on spare loopback ports: three masters, each with one replica,
`cluster-node-timeout` 1 s. Two `huey consume` processes drain 3,000 tasks. When about a quarter
have run, the master that holds the instance's hash slot is killed with SIGKILL. Its replica is
promoted, the same consumer processes reconnect by themselves (no restart), and every task runs
at least once. Redis replicates asynchronously, so writes the dead master had not passed on (a
claim, an ack) can be lost: such a task runs again. The test prints the figures it measured:
tasks, duplicates, and seconds from the kill to the first task run after it.
"""

from __future__ import annotations

import time

import pytest

from huey_redis.testing import RedisServer, require_binaries, start_cluster
from tests.reliability.support import enqueue_records, logs, stop, wait_for

TASKS = 3000


@pytest.fixture
def cluster(tmp_path):
    require_binaries()
    try:
        servers = start_cluster(tmp_path / "cluster", replicas=1, node_timeout_ms=1000)
    except RuntimeError:  # a spare port taken by another test run meanwhile: pick others
        servers = start_cluster(tmp_path / "cluster-2", replicas=1, node_timeout_ms=1000)
    yield servers
    for server in servers:
        server.stop()


def _in_sync(master: int) -> bool:
    """The replica of `master` has everything the master wrote (enqueues included)."""
    import redis

    client = redis.Redis(port=master)
    try:
        info = client.info("replication")
    finally:
        client.close()
    replica = info.get("slave0") or {}
    return bool(replica) and int(replica.get("offset", -1)) == int(info["master_repl_offset"])


def _replication(port: int) -> dict:
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        return dict(client.info("replication"))
    except redis.ConnectionError:
        return {"role": "down"}
    finally:
        client.close()


def test_a_replica_takes_over_a_killed_master_and_every_task_runs(cluster, make_app):
    servers: list[RedisServer] = cluster
    app = make_app(f"redis://127.0.0.1:{servers[0].port}/0", TEST_CLUSTER="1", TEST_LEAN="1")
    huey = app.load().huey
    storage = huey.storage
    master = storage.client.get_node_from_key(storage.key("ready")).port
    victim = next(s for s in servers if s.port == master)
    replica = next(
        s for s in servers if _replication(s.port).get("master_port") == master
    )  # the node that is to take over
    enqueue_records(app, range(TASKS))
    assert wait_for(lambda: _in_sync(master), timeout=30), "the replica never caught up"

    args = ("-w", "4", "-n", "--lease-timeout", "2", "-s", "0.2", "-d", "0.05", "-m", "0.5")
    consumers = [app.start_consumer(*args) for _ in range(2)]
    assert wait_for(lambda: len(app.executions()) >= TASKS // 4, timeout=120), logs(app)
    killed_at = time.monotonic()
    assert victim.proc is not None
    victim.proc.kill()  # SIGKILL: no goodbye to the replica or the clients
    victim.proc.wait()
    victim.proc = None
    at_kill = sum(app.executions().values())

    promoted_at = resumed_at = None
    deadline = killed_at + 180
    while time.monotonic() < deadline:
        runs = app.executions()
        now = time.monotonic()
        if promoted_at is None and _replication(replica.port)["role"] == "master":
            promoted_at = now
        # Tasks already running at the kill finish within milliseconds; later ones need the
        # new master.
        if resumed_at is None and now - killed_at > 0.5 and sum(runs.values()) > at_kill + 8:
            resumed_at = now
        if len(runs) == TASKS:
            break
        time.sleep(0.05)
    runs = app.executions()
    missing = set(range(TASKS)) - set(map(int, runs))
    assert not missing, (sorted(missing)[:20], logs(app)[-5000:])
    duplicates = sum(n - 1 for n in runs.values())
    recovery = (resumed_at or time.monotonic()) - killed_at
    promotion = (promoted_at or time.monotonic()) - killed_at
    print(
        f"\ncluster failover: {TASKS} tasks, all ran, {duplicates} extra runs; {at_kill} had run "
        f"at the kill; replica promoted after {promotion:.1f} s, tasks ran again after "
        f"{recovery:.1f} s"
    )
    assert promoted_at is not None, "the replica never became a master"
    for consumer in consumers:
        assert consumer.poll() is None, logs(app)[-5000:]  # reconnected, never exited
    queue = storage.queue
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == [], timeout=30), (
        queue.size(), queue.leases())  # fmt: skip
    for consumer in consumers:
        assert stop(consumer) == 0, logs(app)[-5000:]
    assert recovery < 30, f"tasks ran again only {recovery:.1f} s after the kill"
