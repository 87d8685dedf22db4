"""Events on Redis pub/sub: PUBLISH on `huey.events.<name>`, one subscription per listener."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

from huey_core.protocols import BaseEventEmitter, BaseSubscription

if TYPE_CHECKING:
    from huey_redis.backend import RedisBackend

log = logging.getLogger("huey.redis")

# get_message() waits at most this long, and a lost connection is retried this often, so close()
# from another thread takes effect within about POLL seconds (SUBSCRIPTION_CLOSE_WITHIN allows 1).
POLL = 0.25


class RedisSubscription(BaseSubscription):
    """Iterate for event payloads; close() from any thread stops the iterator within ~POLL s.

    The SUBSCRIBE is confirmed by the server before listen() returns, so every event published
    after listen() is seen. While Redis is unreachable the iterator keeps reconnecting every POLL
    seconds (events published meanwhile are lost: pub/sub keeps no history) until close().
    """

    def __init__(self, client: Any, channel: str) -> None:
        self._pubsub = client.pubsub()
        self._lock = threading.Lock()  # orders close() against the iterating thread's start/end
        self._closed = threading.Event()
        self._iterating = False
        self._pubsub.subscribe(channel)
        # The pubsub holds one pooled connection until close(). redis-py's PubSub has no retry
        # setting of its own: that connection carries the pool's Retry, whose backoff rounds
        # (up to `retries` of them per read) would keep a closed iteration running past
        # SUBSCRIPTION_CLOSE_WITHIN while Redis is down. Without retries a lost connection
        # raises at once and events() reconnects on its own schedule, which close() interrupts.
        # `Connection.retry` is redis-py's per-connection attribute (a private copy, so the pool
        # is unaffected); _release() puts the pool's Retry back before the connection returns.
        self._conn = self._pubsub.connection
        self._pool_retry = self._conn.retry
        self._conn.retry = Retry(NoBackoff(), 0)
        try:
            self._await_confirmation(channel)
        except BaseException:
            self._release()
            raise

    def _await_confirmation(self, channel: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = self._pubsub.get_message(timeout=POLL)
            if msg is not None and msg["type"] == "subscribe":
                return
        raise TimeoutError(f"no confirmation for SUBSCRIBE {channel}")

    def events(self) -> Iterator[bytes]:
        with self._lock:
            if self._closed.is_set():
                return
            self._iterating = True
        lost = False
        try:
            while not self._closed.is_set():
                try:
                    msg = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
                except (ConnectionError, TimeoutError, OSError) as exc:
                    if not lost:  # once per outage: the retries below would flood the log
                        log.warning(
                            "event subscription lost (%s); reconnecting", type(exc).__name__
                        )
                        lost = True
                    self._closed.wait(POLL)
                    continue
                if lost:
                    log.info("event subscription restored")
                    lost = False
                if msg is not None and msg["type"] == "message":
                    yield bytes(msg["data"])
        finally:
            with self._lock:
                self._iterating = False
                self._release()

    def close(self) -> None:
        """Stop the iteration. The iterating thread closes the connection itself, since a
        pubsub connection must not be touched by two threads at once."""
        with self._lock:
            self._closed.set()
            if not self._iterating:
                self._release()

    def _release(self) -> None:
        self._conn.retry = self._pool_retry
        self._pubsub.close()


# ARGV: channel, then the events. Each event is still its own PUBLISH, so subscribers see
# exactly what emit() would have sent.
PUBLISH_MANY = """
for i = 2, #ARGV do redis.call('PUBLISH', ARGV[1], ARGV[i]) end
return #ARGV - 1
"""


class RedisEvents(BaseEventEmitter):
    """PUBLISH/SUBSCRIBE on one channel per huey instance."""

    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend
        self.channel = f"huey.events.{backend.name}"
        self._publish_many = backend.script(PUBLISH_MANY)

    def emit(self, event: bytes) -> None:
        """PUBLISH the event; nobody listening is not an error (PUBLISH just returns 0)."""
        self._b.client.publish(self.channel, event)

    def emit_many(self, events: list[bytes]) -> None:
        """PUBLISH a batch with one script call (one command and one reply instead of one per
        event, which cost the client far more CPU than the server), in list order."""
        if not events:
            return
        if self._b.cluster:  # a cluster pipeline routes by key; PUBLISH has none
            super().emit_many(events)
            return
        self._publish_many(args=[self.channel, *events])

    def listen(self) -> RedisSubscription:
        """A subscription that sees every event published after this call returns."""
        return RedisSubscription(self._b.client, self.channel)
