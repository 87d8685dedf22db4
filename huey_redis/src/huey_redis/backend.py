"""RedisBackend: the four stores of one huey instance on one Redis server or Cluster.

Every key starts with `huey:{<name>}:`. The braces are a Cluster hash tag: all keys of an
instance land in one slot, so the multi-key Lua scripts that make each operation atomic run
unchanged on a Cluster (`cluster=True`). See docs/redis.md for the design.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ConnectionError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry

from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url, remember_secrets
from huey_core.protocols import BaseBackend
from huey_redis.events import RedisEvents
from huey_redis.queue import RedisQueue, RedisSchedule
from huey_redis.store import RedisStore

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _seconds(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


class RedisBackend(BaseBackend):
    """Queue, schedule, data store and events of huey instance `name` on Redis 6.2+.

    Options (anything else is passed to redis-py's connection pool, e.g. `ssl_ca_certs`):
      cluster          connect with redis.cluster.RedisCluster (URL names any one node)
      max_connections  pool size; give at least workers + 2 (scheduler, periodic) + 1 per events
                       listener, which holds its connection. When set, a thread that finds the
                       pool empty waits for a free connection (blocking pool) instead of failing.
      default_ttl      seconds applied to DataStore.put() calls made with ttl=None (results), so
                       unread results do not grow forever; None (default) keeps them.
      socket_timeout   seconds before a silent server counts as gone (default 10); blocking
                       waits are chopped into pieces shorter than this.
      socket_connect_timeout  seconds to connect (default 5)
      health_check_interval   idle seconds after which a pooled connection is PINGed before use
      retries          reconnect attempts per call after a connection error, with jittered
                       exponential backoff (default 3), before redis.ConnectionError is raised
      connection_pool  a ready redis.ConnectionPool to use instead of a URL (its own connection
                       options apply; not with cluster)
      blocking         False: dequeue() returns at once and the consumer polls (default True)
      read_timeout     longest single blocking read (BLPOP) in seconds; a longer wait is made of
                       several (default: half of socket_timeout)
      clean_name       keep only [A-Za-z0-9_] of the instance name in key names, as huey does
      keep_on_read     pop() of a value that has a ttl reads without deleting, so it stays
                       until it expires (huey's RedisExpireStorage results)
    """

    process_safe = True  # state lives in Redis: forked or separate processes all share it
    url: str  # never None here: DEFAULT_URL stands in for a missing URL

    def __init__(self, name: str, url: str | None = None, **options: Any) -> None:
        if not name:
            raise ConfigurationError("the redis backend needs a non-empty instance name")
        self.name = name
        self.url = url or DEFAULT_URL
        remember_secrets(self.url)  # scrubbed from every error text a driver may quote it in
        # options may arrive as strings (environment, CLI), hence the explicit conversions
        self.cluster = _flag(options.pop("cluster", False))
        default_ttl = _seconds(options.pop("default_ttl", None))
        max_connections = options.pop("max_connections", None)
        max_connections = int(max_connections) if max_connections else None
        retries = int(options.pop("retries", 3))
        socket_timeout = _seconds(options.pop("socket_timeout", 10.0))
        pool = options.pop("connection_pool", None)
        blocking = _flag(options.pop("blocking", True))
        read_timeout = _seconds(options.pop("read_timeout", None))
        key_name = _clean(name) if _flag(options.pop("clean_name", False)) else name
        keep_on_read = _flag(options.pop("keep_on_read", False))
        if not self.cluster:  # RedisCluster takes options of its own: redis-py checks those
            check_connection_options(options)
        if pool is not None:
            if url or self.cluster:
                raise ConfigurationError(
                    "the redis backend takes connection_pool= or a URL (and no cluster), not both"
                )
            self.url = _pool_url(pool)
        options.setdefault("socket_connect_timeout", 5.0)
        options.setdefault("health_check_interval", 30)
        if not self.url.startswith("unix:"):
            # TCP only (unix socket connections refuse the option): lets the OS drop connections
            # to a host that vanished without closing them
            options.setdefault("socket_keepalive", True)
        options["socket_timeout"] = socket_timeout
        options["retry"] = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries)
        # blocking calls (BLPOP) must return before socket_timeout would call the connection dead
        self.block_chunk = 5.0 if socket_timeout is None else max(0.05, float(socket_timeout) / 2)
        if read_timeout is not None:
            self.block_chunk = max(0.01, min(self.block_chunk, read_timeout))
        self._prefix = f"huey:{{{key_name}}}:"
        self._lock = threading.Lock()
        self._client: Any = None
        if max_connections and self.cluster:
            options["max_connections"] = max_connections  # per node
        elif max_connections:
            options["connection_pool_class"] = redis.BlockingConnectionPool
            options["max_connections"] = max_connections
        self._options = options
        if pool is not None:
            self._client = redis.Redis(connection_pool=pool)
        elif not self.cluster:
            self._client = self._connect()  # builds a pool; connects on first command
        self.queue = RedisQueue(self)
        if not blocking:
            self.queue.blocking = False  # huey's blocking=False: the consumer polls
        self.schedule = RedisSchedule(self, self.queue)
        self.store = RedisStore(self, default_ttl=default_ttl, keep_on_read=keep_on_read)
        self.events = RedisEvents(self)

    def _connect(self) -> Any:
        options = dict(self._options)
        try:
            if self.cluster:
                from redis.cluster import RedisCluster

                return RedisCluster.from_url(self.url, **options)
            pool_class = options.pop("connection_pool_class", redis.ConnectionPool)
            if pool_class is redis.BlockingConnectionPool:
                options["timeout"] = 30  # seconds a thread waits for a free connection
            return redis.Redis(connection_pool=pool_class.from_url(self.url, **options))
        except ValueError as exc:
            # redis-py's URL errors quote the URL; mask_url keeps a password out of logs
            raise ConfigurationError(
                f"bad redis URL {mask_url(self.url)}: {type(exc).__name__}"
            ) from None

    @property
    def client(self) -> Any:
        """The redis-py client. A Cluster client is built on first use, because redis-py
        contacts the nodes while building it: a backend made while the Cluster is down still
        constructs, and its calls raise redis.ConnectionError until the Cluster is back."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._connect()
                    except RedisClusterException as exc:
                        raise redis.ConnectionError(str(exc)) from exc
        return self._client

    @property
    def conn(self) -> Any:
        """The redis-py client, as huey's `huey.storage.conn`: apps keep their own keys with it."""
        return self.client

    def key(self, suffix: str) -> str:
        """The full Redis key for `suffix`, inside this instance's hash tag."""
        return self._prefix + suffix

    def direct(self, *command: Any) -> Any:
        """Run one command on a pooled connection without the client's per-call wrapping
        (about 5 us of CPU per call). Not for a Cluster. Health checks, fork detection and error
        replies (raised as exceptions) are the connection's and pool's own; a connection error
        is raised without retries, so callers fall back to the client, which retries."""
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command(*command)
            return conn.read_response()
        except ResponseError:
            raise  # an error reply: the connection is in a clean state
        except BaseException:
            conn.disconnect()  # a reply may be left unread: never hand this connection out again
            raise
        finally:
            pool.release(conn)

    def script(self, source: str) -> Script:
        """A Lua script callable as script(keys=[...], args=[...])."""
        return Script(self, source)

    def after_fork(self) -> None:
        """Forget connections inherited from the parent without closing the parent's sockets.

        redis-py pools also check the pid on every checkout and reset themselves in a child;
        this makes the reset explicit and immediate.
        """
        if self._client is None:
            return
        if self.cluster:
            for node in self._client.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.reset()
        else:
            self._client.connection_pool.reset()

    def close(self) -> None:
        """Disconnect every pooled connection."""
        if self._client is not None:
            self._client.close()

    def describe(self) -> str:
        kind = "cluster " if self.cluster else ""
        return f"RedisBackend({kind}{mask_url(self.url)}, instance {self.name!r})"

    __repr__ = describe


OPTIONS = frozenset(
    {"cluster", "default_ttl", "max_connections", "retries", "socket_timeout"}
    | {"connection_pool", "blocking", "read_timeout", "clean_name", "keep_on_read"}
)


def _connection_option_names() -> frozenset[str]:
    names: set[str] = set()
    for cls in (
        redis.connection.AbstractConnection,
        redis.connection.Connection,
        redis.connection.SSLConnection,
        redis.connection.UnixDomainSocketConnection,
        redis.ConnectionPool,
    ):
        params = inspect.signature(cls.__init__).parameters.values()
        names.update(
            p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
        )
    return frozenset(names - {"self"})


def check_connection_options(options: dict[str, Any]) -> None:
    """ConfigurationError, in one line, for an option neither this backend nor redis-py's
    connections take (redis-py itself would raise TypeError only at the first command)."""
    unknown = sorted(set(options) - OPTIONS - _connection_option_names())
    if unknown:
        raise ConfigurationError(
            f"the redis backend does not take {', '.join(unknown)}; it takes its own options "
            f"({', '.join(sorted(OPTIONS))}) and redis-py connection options (docs/redis.md)"
        )


def _clean(name: str) -> str:
    cleaned = re.sub("[^A-Za-z0-9_]", "", name)
    if not cleaned:
        raise ConfigurationError(f"clean_name leaves nothing of instance name {name!r}")
    return cleaned


def _pool_url(pool: Any) -> str:
    """A password-free URL describing a ready pool (for describe() and logs)."""
    kw = pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


class Script:
    """One Lua script: EVALSHA by digest, and EVAL (which also caches it on that server) when
    the server answers NOSCRIPT, e.g. after a restart or on a Cluster node that never saw it."""

    def __init__(self, backend: RedisBackend, source: str) -> None:
        self._backend = backend
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        backend = self._backend
        client = backend.client
        if not backend.cluster:
            try:
                return backend.direct("EVALSHA", self.sha, len(keys), *keys, *args)
            except NoScriptError:
                return client.eval(self.source, len(keys), *keys, *args)
            except (ConnectionError, TimeoutError):
                # a dead pooled connection: the client path below reconnects and retries with
                # backoff (it re-sends the script, exactly as redis-py's own retry would)
                pass
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)
