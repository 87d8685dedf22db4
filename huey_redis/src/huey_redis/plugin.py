"""Registers the redis backend. Import-light: redis-py loads only when the backend is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey_core import hookimpl

if TYPE_CHECKING:
    from huey_core.hookspecs import RegisterBackend


@hookimpl
def huey_register_backends(register: RegisterBackend) -> None:
    register("redis", ["redis", "rediss", "unix"], "huey_redis.backend:RedisBackend", "Redis 6.2+")
