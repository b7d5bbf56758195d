"""The one source of "now". Tests inject their own clock instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for values written as UTC; make them aware again."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def stamp(value: datetime) -> str:
    """A moment as bankhub writes it in records and logs: UTC to the millisecond, ``Z``
    (``2017-08-13T09:19:08.073Z``, the seed's own format, so one moment reads the same in an
    audit entry, a log line and an answer)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
