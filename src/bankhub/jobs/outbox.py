"""The outbox: one-off work a change causes (mails to the team), sent by the runner after commit.

A mail sent by the request after its answer (a background task), or inline after the commit, is
lost when the process dies in between, is never retried when the mail server is down, and is
sent even when a later step fails. Here the change writes a row in its own unit of work
(:func:`enqueue`), so the row commits with the change or not at all; the commit wakes the runners
(``jobs.wakeup``), and :class:`OutboxSource` sends it through the handler registered for its
``kind`` by the composition root (``jobs.runner``).

A row is leased like a webhook delivery: claimed by one runner with a conditional update, its
lease renewed by the loop's heartbeat, its outcome written only while the lease is still the
runner's (fencing). A failure is retried with a doubling delay (:func:`retry_delay`) until
``MAX_ATTEMPTS``; then, or at once for a :class:`Permanent` failure, the row is ``failed``. An
attempt counts when it is claimed, so a message whose sending kills the process cannot retry
for ever. A process that dies after the mail server took the message and before the row was
marked ``sent`` has it sent again once its lease is released: at least once, as webhooks are.

The rows are not tenant data: they are mails to the team (dashboard members), who serve every
app, and one consent summary spans apps; like ``members`` and ``smtp_settings`` they carry no
``app_id`` and no row-level security policy. Finished rows are purged after ``KEEP``.

The retry schedule is our own: the retry libraries (tenacity, backoff) retry within one process,
which is exactly what a persisted schedule that survives a restart is for.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.engine import Database
from bankhub.db.types import UTCDateTime
from bankhub.events.services import mark_outbox

log = logging.getLogger("bankhub.jobs")

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
#: attempts before a message is given up (``failed``)
MAX_ATTEMPTS = 8
#: the first pause after a failure, doubled after each one up to the last
RETRY_SECONDS = (30.0, 3600.0)
#: finished rows are kept this long (what was sent, or why not), then purged
KEEP = timedelta(days=14)
#: messages sent at once by one runner (a mail server takes few connections per client)
SLOTS = 4


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: names the handler that sends it (e.g. ``mail.sign_in_alert``)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: pending → sent | failed
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Permanent(Exception):
    """The message can never be sent (retrying would not help): it fails at once."""


#: sends one message of a kind; any other exception is a failure worth retrying
Handler = Callable[[Mapping[str, Any]], Awaitable[None]]


def enqueue(session: AsyncSession, kind: str, payload: dict[str, Any], now: datetime) -> None:
    """Queue a message in the caller's unit of work; the runners are woken when it commits."""
    session.add(
        OutboxMessage(
            kind=kind,
            payload=payload,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    mark_outbox(session, "outbox")


def retry_delay(attempts: int, rng: random.Random) -> float | None:
    """Seconds before the next try after ``attempts`` failed ones (±20 % so that messages that
    failed together spread out); None when the message is given up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    first, most = RETRY_SECONDS
    return min(most, first * (1 << max(0, attempts - 1))) * rng.uniform(0.8, 1.2)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    #: counting this one
    attempts: int


class OutboxSource:
    """``handlers``: what sends each kind of message."""

    name = "outbox"

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        handlers: Mapping[str, Handler],
        *,
        owner: str,
        lease: timedelta,
        slots: int = SLOTS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.handlers = dict(handlers)
        self.owner = owner
        self.lease = lease
        self.slots = max(1, slots)
        self.refill = 1
        self._rng = random.Random()  # noqa: S311 - retry jitter  # nosec B311
        #: messages this runner is sending now, whose leases the heartbeat renews
        self._sending: set[int] = set()
        #: outcomes being written
        self._recording: set[asyncio.Future[bool]] = set()

    async def claim(self, limit: int) -> list[Awaitable[bool]]:
        return [self.send(message) for message in await self.claim_due(limit)]

    async def claim_due(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due messages (of two runners only one wins each), counting
        the attempt each now starts."""
        now = self.clock()
        free = or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now)
        async with self.db.transaction(write=True) as session:
            due = (
                (
                    await session.execute(
                        select(OutboxMessage.id)
                        .where(
                            OutboxMessage.status == PENDING,
                            OutboxMessage.next_attempt_at <= now,
                            free,
                            OutboxMessage.id.not_in(sorted(self._sending)),
                        )
                        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            if not due:
                return []
            # re-checked per row under the row's lock: of two runners, only one wins each row
            won = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(due), OutboxMessage.status == PENDING, free)
                .values(
                    lease_owner=self.owner,
                    lease_until=now + self.lease,
                    attempts=OutboxMessage.attempts + 1,
                )
                .returning(
                    OutboxMessage.id,
                    OutboxMessage.kind,
                    OutboxMessage.payload,
                    OutboxMessage.attempts,
                )
                .execution_options(synchronize_session=False)
            )
            claimed = [Claimed(*row) for row in won.tuples()]
        return sorted(claimed, key=lambda message: message.id)

    async def send(self, message: Claimed) -> bool:
        """One attempt at one claimed message; True when it was sent."""
        self._sending.add(message.id)
        try:
            error: str | None = None
            final = False
            handler = self.handlers.get(message.kind)
            try:
                if handler is None:
                    raise Permanent(f"nothing here sends {message.kind!r} messages")
                await handler(message.payload)
            except Permanent as exc:
                error, final = str(exc) or type(exc).__name__, True
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then recorded
                error = str(exc) or type(exc).__name__
            if error is not None:
                log.warning(
                    "outbox message %s (%s), attempt %s, not sent: %s",
                    message.id,
                    message.kind,
                    message.attempts,
                    error,
                )
            # once the handler is done, its outcome is written even if the runner is stopping
            # (``finish`` waits for it): a sent mail released unrecorded would go out again
            recording = asyncio.ensure_future(self._record(message, error, final=final))
            self._recording.add(recording)
            recording.add_done_callback(self._recording.discard)
            return await asyncio.shield(recording)
        finally:
            self._sending.discard(message.id)

    async def _record(self, message: Claimed, error: str | None, *, final: bool) -> bool:
        """The outcome, written only while the lease is this runner's: one that lost it has
        nothing to say (whoever took the message over sends it again)."""
        now = self.clock()
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "last_error": error}
        if error is None:
            values |= {"status": SENT, "finished_at": now}
        else:
            delay = None if final else retry_delay(message.attempts, self._rng)
            if delay is None:
                values |= {"status": FAILED, "finished_at": now}
            else:
                values["next_attempt_at"] = now + timedelta(seconds=delay)
        async with self.db.transaction(write=True) as session:
            written = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message.id,
                    OutboxMessage.status == PENDING,
                    OutboxMessage.lease_owner == self.owner,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return error is None and getattr(written, "rowcount", 0) == 1

    async def renew(self) -> None:
        sending = sorted(self._sending)
        if not sending:
            return
        async with self.db.transaction(write=True) as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(sending), OutboxMessage.lease_owner == self.owner)
                .values(lease_until=self.clock() + self.lease)
                .execution_options(synchronize_session=False)
            )

    async def finish(self) -> None:
        """Wait for the outcomes of finished sends to be written (at a stop)."""
        await asyncio.gather(*self._recording, return_exceptions=True)


async def purge(db: Database, now: datetime) -> int:
    """Delete messages finished longer than ``KEEP`` ago; how many."""
    async with db.transaction(write=True) as session:
        gone = await session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.status.in_((SENT, FAILED)), OutboxMessage.finished_at < now - KEEP)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(gone, "rowcount", 0) or 0)
