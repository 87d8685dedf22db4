"""Registers the redis backend. Import-light: redis-py loads only when the backend is used."""

from __future__ import annotations

from huey_core import hookimpl


@hookimpl
def huey_register_backends(register):  # type: ignore[no-untyped-def]
    register("redis", ["redis", "rediss", "unix"], "huey_redis.backend:RedisBackend", "Redis 6.2+")
