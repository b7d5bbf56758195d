"""Consent expiry, swept by the background loop (``jobs.loop``): partners hear of an expiring
consent through ``consent.expiring`` events (7 days, then 1 day before it ends), and a consent
that has ended turns its login ``consent_expired`` (a ``login.status`` event).

Each notice is claimed with a conditional update, so any number of runners sweeping at once
tell each consent's end once. Whoever else should hear of the same notices (the team, by mail)
is told through ``notify``, in the same unit of work: what it queues commits with the claims,
or not at all.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.db.engine import Database
from bankhub.events import services as events
from bankhub.logins.models import Login

#: partners hear of an expiring consent this long before it ends (largest first)
CONSENT_NOTICES = (timedelta(days=7), timedelta(days=1))
CONSENT_EXPIRED = "consent_expired"
SWEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ConsentNotice:
    app_id: int
    login_id: int
    expires_at: datetime
    #: days left (7, then 1), or 0 when the consent has expired
    days_left: int


#: queues what else the notices cause, in the sweep's unit of work
Notify = Callable[[AsyncSession, Sequence[ConsentNotice], datetime], Awaitable[object]]


class ConsentSweep:
    name = "consent sweep"
    every = SWEEP_SECONDS
    #: before the syncs are claimed: a consent that has ended is not synced again
    first = True

    def __init__(
        self, db: Database, clock: Callable[[], datetime], *, notify: Notify | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.notify = notify

    async def sweep(self) -> int:
        """Tell partners before consents expire (7 days, then 1 day) and mark expired ones;
        how many notices were sent."""
        now = self.clock()
        notices: list[ConsentNotice] = []
        async with self.db.transaction() as session:
            logins = (
                await session.execute(
                    select(Login.id, Login.app_id, Login.consent_expires_at, Login.status)
                    .where(
                        Login.consent_expires_at.is_not(None),
                        Login.consent_expires_at <= now + CONSENT_NOTICES[0],
                        Login.status != CONSENT_EXPIRED,
                    )
                    # updated one by one in this transaction: in ascending order of id, the
                    # order every writer of several logins locks them in (``db.group``)
                    .order_by(Login.id)
                )
            ).all()
            for login_id, app_id, expires_at, status in logins:
                expires = as_utc(expires_at)
                if expires <= now:
                    claimed = await session.execute(
                        update(Login)
                        .where(Login.id == login_id, Login.status == status)
                        .values(status=CONSENT_EXPIRED, next_sync_at=None, updated_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    if getattr(claimed, "rowcount", 0) == 1:
                        await events.record(
                            session,
                            app_id=app_id,
                            login_id=login_id,
                            type=events.LOGIN_STATUS,
                            payload=events.login_status_payload(login_id, CONSENT_EXPIRED),
                            now=now,
                        )
                        notices.append(ConsentNotice(app_id, login_id, expires, 0))
                    continue
                level = min(
                    int(notice.days) for notice in CONSENT_NOTICES if expires - now <= notice
                )
                claimed = await session.execute(
                    update(Login)
                    .where(
                        Login.id == login_id,
                        or_(Login.consent_notice_days == 0, Login.consent_notice_days > level),
                    )
                    .values(consent_notice_days=level)
                    .execution_options(synchronize_session=False)
                )
                if getattr(claimed, "rowcount", 0) == 1:
                    days_left = max(1, math.ceil((expires - now) / timedelta(days=1)))
                    await events.record(
                        session,
                        app_id=app_id,
                        login_id=login_id,
                        type=events.CONSENT_EXPIRING,
                        payload=events.consent_expiring_payload(login_id, expires, days_left),
                        now=now,
                    )
                    notices.append(ConsentNotice(app_id, login_id, expires, days_left))
            if notices and self.notify is not None:
                await self.notify(session, notices, now)
        return len(notices)
