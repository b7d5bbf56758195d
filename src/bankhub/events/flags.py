"""Operator switches stored in the database so that every process sees them."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import Clock
from bankhub.events.models import SystemFlag

MAINTENANCE = "maintenance"


async def set_flag(session: AsyncSession, clock: Clock, key: str, value: str) -> None:
    flag = await session.get(SystemFlag, key)
    if flag is None:
        session.add(SystemFlag(key=key, value=value, updated_at=clock()))
    else:
        flag.value = value
        flag.updated_at = clock()


async def get_flag(session: AsyncSession, key: str) -> str | None:
    result = await session.execute(select(SystemFlag.value).where(SystemFlag.key == key))
    return result.scalar_one_or_none()


class CachedFlag:
    """Reads a flag at most once per ``ttl`` seconds: the check sits on every request."""

    def __init__(self, key: str, ttl: float = 1.0) -> None:
        self.key = key
        self.ttl = ttl
        self._value: str | None = None
        self._read_at = float("-inf")

    def fresh(self) -> bool:
        return time.monotonic() - self._read_at < self.ttl

    @property
    def value(self) -> str | None:
        return self._value

    def store(self, value: str | None) -> None:
        self._value = value
        self._read_at = time.monotonic()

    def invalidate(self) -> None:
        self._read_at = float("-inf")
