"""Housekeeping, swept by the background loop (``jobs.loop``) every
``BANKHUB_RETENTION_SWEEP_SECONDS``: data older than each app's retention window, expired
Idempotency-Keys (S40), rows an older version stored in clear (S19), and whatever else the
composition root adds (finished outbox rows). Safe in any number of runners at once: each row is
deleted, and counted, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from bankhub.clock import Clock
from bankhub.db.engine import Database
from bankhub.lifecycle import retention
from bankhub.security import idempotency, rewrap
from bankhub.security.keyring import Keyring
from bankhub.security.secrets import SecretHasher

#: rows stored in clear by an older version that one sweep seals (S19)
SEAL_PER_SWEEP = 10_000

Purge = Callable[[datetime], Awaitable[object]]


class Housekeeping:
    name = "retention purge"
    #: after the work of a one-shot run: what it wrote is not purged before it was used
    first = False

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keyring: Keyring,
        hasher: SecretHasher,
        *,
        every: float,
        usage_days: int,
        audit_retention_days: int,
        also: Sequence[Purge] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.keyring = keyring
        self.hasher = hasher
        self.every = max(1.0, every)
        self.usage_days = usage_days
        self.audit_retention_days = audit_retention_days
        self.also = tuple(also)

    async def sweep(self) -> retention.PurgeReport:
        report = await retention.purge(
            self.db,
            self.clock,
            usage_days=self.usage_days,
            audit_retention_days=self.audit_retention_days,
        )
        # S40: expired Idempotency-Keys, and answers older than a shorter retention window
        await idempotency.purge(self.db, self.clock())
        # S19: what an older version stored in clear is sealed a batch at a time, so that an
        # upgraded installation holds none after a while even if nobody runs `keys rewrap`
        await rewrap.seal_plain(self.db, self.keyring, self.hasher, batch=500, limit=SEAL_PER_SWEEP)
        for purge in self.also:
            await purge(self.clock())
        await self.db.checkpoint()
        return report
