"""The data-store key schema: the only place a key prefix is spelled.

Everything the core keeps in a backend's DataStore, by key (all strings):

    <task id>                     the task's result (or an Error)
    r:<task id>                   revocation of one task: (revoke_until, revoke_once)
    rt:<module.task name>         revocation of every task of one kind
    <huey name>.lock.<name>       lock_task() locks
    <huey name>.rl.<name>.<w>     rate_limit() counters, one per time window
    chord:<cid>                   how many members of a chord have finished
    chord:<cid>:<i>               the result of chord member i
    replaced:<task id>            a rescheduled chord member: its copy reports to the chord
    periodic:<task>:<minute>      once-per-minute dedup of periodic tasks across consumers
    dead-letter:<id>              dead letters (JSON)
    inflight:<host>:<pid>         when each running task of a consumer process started
    progress:<task id>            the latest progress a running task reported (JSON)
"""

from __future__ import annotations

import enum

__all__ = [
    "KeyKind",
    "chord_count",
    "chord_member",
    "classify",
    "dead_letter",
    "inflight",
    "lock",
    "lock_name",
    "lock_prefix",
    "periodic",
    "progress",
    "rate_limit_prefix",
    "replaced",
    "revoke",
    "revoke_all",
]

REVOKE = "r:"
REVOKE_ALL = "rt:"
CHORD = "chord:"
PERIODIC = "periodic:"
DEAD_LETTER = "dead-letter:"
INFLIGHT = "inflight:"
PROGRESS = "progress:"
REPLACED = "replaced:"
_LOCK = ".lock."
_RATE_LIMIT = ".rl."


class KeyKind(str, enum.Enum):
    """What a data-store key holds (for `huey info` and `huey flush`)."""

    RESULT = "results"
    REVOKED = "revoked"
    LOCK = "locks"
    RATE_LIMIT = "rate_limits"
    DEAD_LETTER = "dead_letters"
    INTERNAL = "internal"  # chord counters, periodic dedup, in-flight records, progress


def revoke(task_id: str) -> str:
    return f"{REVOKE}{task_id}"


def revoke_all(task_name: str) -> str:
    """`task_name` is the registry name, "<module>.<name>"."""
    return f"{REVOKE_ALL}{task_name}"


def lock_prefix(huey_name: str) -> str:
    return f"{huey_name}{_LOCK}"


def lock(huey_name: str, name: str) -> str:
    return f"{huey_name}{_LOCK}{name}"


def lock_name(key: str) -> str:
    """The lock name a lock key was made from."""
    return key.split(_LOCK, 1)[-1]


def rate_limit_prefix(huey_name: str, name: str) -> str:
    """The prefix of a rate limit's window counters; the window number follows it."""
    return f"{huey_name}{_RATE_LIMIT}{name}."


def replaced(task_id: str) -> str:
    """Set by reschedule() for a chord member: the revoked original must not report."""
    return f"{REPLACED}{task_id}"


def chord_count(cid: str) -> str:
    return f"{CHORD}{cid}"


def chord_member(cid: str, index: int) -> str:
    return f"{CHORD}{cid}:{index}"


def periodic(task_name: str, minute: str) -> str:
    """`minute` is "YYYYmmddHHMM" on the instance's clock."""
    return f"{PERIODIC}{task_name}:{minute}"


def dead_letter(dl_id: str) -> str:
    return f"{DEAD_LETTER}{dl_id}"


def inflight(consumer: str) -> str:
    """`consumer` is "<host>:<pid>"."""
    return f"{INFLIGHT}{consumer}"


def progress(task_id: str) -> str:
    return f"{PROGRESS}{task_id}"


def classify(key: str, huey_name: str) -> KeyKind:
    """What the core keeps under `key`; anything not bookkeeping is a result."""
    if key.startswith(DEAD_LETTER):
        return KeyKind.DEAD_LETTER
    if key.startswith((REVOKE, REVOKE_ALL)):
        return KeyKind.REVOKED
    if key.startswith(lock_prefix(huey_name)):
        return KeyKind.LOCK
    if key.startswith(f"{huey_name}{_RATE_LIMIT}"):
        return KeyKind.RATE_LIMIT
    if key.startswith((PERIODIC, CHORD, INFLIGHT, PROGRESS, REPLACED)):
        return KeyKind.INTERNAL
    return KeyKind.RESULT
