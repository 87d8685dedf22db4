"""The conformance suite on a three-node Redis Cluster: the hash tag keeps every key of an
instance in one slot, so the same Lua scripts run there unchanged."""

from __future__ import annotations

import pytest

from huey_core.testing import BackendConformance
from huey_redis.testing import free_ports, make_factory, malformed_rows


class TestRedisClusterBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, redis_cluster):
        yield from make_factory(redis_cluster, cluster=True)

    @pytest.fixture
    def malformed_rows(self):
        return malformed_rows()


def test_instances_spread_over_the_nodes(redis_cluster):
    """Different instances hash to different slots (and nodes); each stays whole in its own."""
    from huey_redis.backend import RedisBackend

    backends = [RedisBackend(f"spread-{i}", redis_cluster, cluster=True) for i in range(12)]
    try:
        nodes = set()
        for b in backends:
            b.queue.enqueue(b"x")
            b.store.put("k", b"v")
            assert b.queue.dequeue("w", 30).data == b"x"
            nodes.add(b.client.get_node_from_key(b.key("ready")).port)
        assert len(nodes) > 1
    finally:
        for b in backends:
            b.queue.flush()
            b.store.flush()
            b.close()


def test_a_cluster_backend_builds_while_the_cluster_is_down():
    """redis-py contacts the nodes when it builds a Cluster client; the backend defers that, so a
    consumer can start first, and its calls fail like any unreachable server's."""
    import redis

    from huey_redis.backend import RedisBackend

    backend = RedisBackend(
        "down", f"redis://:cluster-pw-9@127.0.0.1:{free_ports(1)[0]}", cluster=True
    )
    with pytest.raises(redis.ConnectionError) as info:
        backend.queue.size()
    assert "cluster-pw-9" not in str(info.value)
    backend.close()
