"""Locks and rate limits (huey_core.locks): what they promise beyond the basic contention tests
in test_tasks.py: names, expiry, argument checks and which calls share a count."""

from __future__ import annotations

import time

import pytest

from huey_core import Huey, RateLimitExceeded, TaskLockedException
from tests.core.helpers import make_huey


def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_held_lock_names_itself_in_the_error(huey: Huey) -> None:
    lock = huey.lock_task("nightly-report")
    assert lock.acquire() is True
    with pytest.raises(TaskLockedException, match="nightly-report"):
        huey.lock_task("nightly-report").acquire()


def test_a_lock_with_a_ttl_frees_itself_when_its_holder_never_releases_it(huey: Huey) -> None:
    huey.lock_task("job", ttl=0.3).acquire()  # the holder dies without releasing it
    with pytest.raises(TaskLockedException):
        huey.lock_task("job").acquire()
    assert _eventually(lambda: not huey.is_locked("job"))
    assert huey.lock_task("job").acquire() is True


@pytest.mark.parametrize(
    "limit, per", [(-1, 60), (1, 0), (1, -5)], ids=["negative-limit", "zero-per", "negative-per"]
)
def test_a_rate_limit_refuses_a_bad_limit_or_window(huey: Huey, limit: int, per: float) -> None:
    with pytest.raises(ValueError, match=r"^rate_limit needs limit >= 0 and per > 0 seconds$"):
        huey.rate_limit("api", limit=limit, per=per)


def test_a_zero_limit_refuses_every_call_and_a_short_window_is_allowed(huey: Huey) -> None:
    closed = huey.rate_limit("closed", limit=0, per=60, retry=False)
    with pytest.raises(RateLimitExceeded):
        with closed:
            pass
    short = huey.rate_limit("short", limit=1, per=0.5)
    with short:
        pass
    assert short.current_usage() == 1


def test_rate_limits_count_per_name_and_per_instance(huey: Huey) -> None:
    api = huey.rate_limit("api", limit=1, per=3600)
    with api:
        pass
    with huey.rate_limit("mail", limit=1, per=3600):  # another name: its own count
        pass
    other = make_huey(backend=huey.storage)  # another instance on the same backend
    with other.rate_limit("api", limit=1, per=3600):
        pass
    with pytest.raises(RateLimitExceeded):
        with huey.rate_limit("api", limit=1, per=3600):  # same name, same instance: shared
            pass
    assert api.current_usage() == 2


def test_a_window_counter_expires_with_its_window(huey: Huey) -> None:
    limit = huey.rate_limit("burst", limit=5, per=0.3)
    with limit:
        pass
    store = huey.storage.store
    assert any("burst" in key for key in store.items())
    assert _eventually(lambda: not any("burst" in key for key in store.items()))
