"""Time as the core sees it: naive datetimes in UTC (`utc=True`, the default) or local time.

Messages carry naive datetimes, as huey's do; storage and events carry unix timestamps. These
helpers convert between the two, so no other module does time-zone arithmetic of its own.
"""

from __future__ import annotations

import datetime

from huey_core import limits

__all__ = ["normalize_expire_time", "normalize_time", "now", "to_datetime", "to_unix", "utcnow"]

Expires = float | datetime.timedelta | datetime.datetime


def utcnow() -> datetime.datetime:
    """The current time in UTC, naive."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def now(utc: bool) -> datetime.datetime:
    """The current time on the instance's clock: naive UTC, or naive local time."""
    return utcnow() if utc else datetime.datetime.now()


def normalize_time(
    eta: datetime.datetime | None = None,
    delay: float | datetime.timedelta | None = None,
    utc: bool = True,
) -> datetime.datetime:
    """A naive datetime on the instance's clock from exactly one of `eta` / `delay`.

    A naive `eta` is taken as local time, as huey does; an aware one is converted.
    """
    if (eta is None) == (delay is None):
        raise ValueError("specify either eta (a datetime) or delay (seconds)")
    if delay is not None:
        if not isinstance(delay, datetime.timedelta):
            # NaN or infinity would fail deep inside timedelta with an unhelpful message
            seconds = limits.check_seconds("delay", delay, None)
            delay = datetime.timedelta(seconds=seconds or 0.0)
        return now(utc) + delay
    if not isinstance(eta, datetime.datetime):
        raise ValueError("eta must be a datetime")
    if eta.tzinfo is not None:  # aware: convert to the instance's clock, then drop the zone
        if utc:
            return eta.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return eta.astimezone().replace(tzinfo=None)
    if utc:  # naive datetimes are taken as local time
        return eta.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return eta


def normalize_expire_time(expires: Expires, utc: bool = True) -> datetime.datetime:
    """When a task given `expires=` (seconds, timedelta or datetime) stops being worth running."""
    if isinstance(expires, datetime.datetime):
        return normalize_time(eta=expires, utc=utc)
    return normalize_time(delay=expires, utc=utc)


def to_unix(when: datetime.datetime | None, utc: bool) -> float | None:
    """Unix time of a naive datetime on the instance's clock; aware datetimes convert as is."""
    if when is None:
        return None
    if when.tzinfo is None and utc:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()  # a naive datetime is taken as local time here


def to_datetime(timestamp: float, utc: bool) -> datetime.datetime:
    """The naive datetime on the instance's clock for a unix timestamp."""
    if utc:
        moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
        return moment.replace(tzinfo=None)
    return datetime.datetime.fromtimestamp(timestamp)
