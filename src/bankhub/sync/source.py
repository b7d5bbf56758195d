"""Scheduled syncs as a source of the background loop (``jobs.loop``): due logins claimed in
batches under a lease, each refreshed by ``sync.refresh`` (which renews its own lease and fences
its apply on it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.db.group import GroupCommit
from bankhub.errors import DomainError, LoginBusy
from bankhub.logins.models import Login
from bankhub.observability import logs
from bankhub.partners.models import App
from bankhub.sync.engine import SyncEngine
from bankhub.sync.refresh import (
    RETRYABLE,
    Claimed,
    read_claimed,
    refresh_login,
    run_token,
    schedule_next,
    used_up,
)

log = logging.getLogger("bankhub.jobs")

#: how far a login whose sync crashed unexpectedly is pushed back, so it cannot spin
CRASH_BACKOFF = timedelta(minutes=15)
#: how far a login of an archived app is pushed back: nobody can read what a refresh would
#: fetch (the app's keys are refused), so its bank is not asked; once the app is restored, its
#: logins are refreshed again within this time
ARCHIVED_PAUSE = timedelta(hours=6)


class SyncSource:
    """``owner``: the holder of the leases (``jobs.identity``); each run's lease is a token
    under it (``sync.refresh.run_token``), so a restart releases them all."""

    name = "syncs"

    def __init__(
        self,
        engine: SyncEngine,
        db: Database,
        clock: Callable[[], datetime],
        *,
        owner: str,
        lease: timedelta,
        cooldown: timedelta,
        slots: int,
    ) -> None:
        self.engine = engine
        self.db = db
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.cooldown = cooldown
        self.slots = max(1, slots)
        self.refill = self.slots // 10
        #: logins this runner is syncing now; never started twice side by side
        self._syncing: set[int] = set()
        #: the claims and applies of syncs ready at the same moment share a unit of work
        self._group = GroupCommit(db)

    async def claim(self, limit: int) -> list[Awaitable[bool]]:
        return [self.sync(c.app_id, c.login_id, c) for c in await self.claim_due(limit)]

    async def renew(self) -> None:
        """Each sync renews its own lease (``sync.refresh``)."""

    async def finish(self) -> None:
        await self._group.finish()

    async def claim_due(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` logins whose scheduled sync is due, in one unit of work: one
        conditional update claims them all (re-checked per row, so of two runners only one
        wins each login), one query reads them, and each gets what its fetch needs.

        A login whose service left the catalogue is pushed back (``CRASH_BACKOFF``) there and
        then instead of being returned, as a refresh that could not start would be; one whose
        app is archived is pushed back by ``ARCHIVED_PAUSE``.
        """
        engine = self.engine
        now = self.clock()
        token = run_token(self.owner)
        free = or_(Login.sync_lease_until.is_(None), Login.sync_lease_until < now)
        due = (
            select(Login.id)
            .where(
                Login.active.is_(True),
                Login.status.in_(RETRYABLE),
                Login.next_sync_at <= now,
                free,
                Login.id.not_in(sorted(self._syncing)),
            )
            .order_by(Login.next_sync_at, Login.id)
            .limit(limit)
            # PostgreSQL: rows another runner is claiming right now are passed over, not
            # waited for (SQLite has one writer at a time and no such clause); a CTE, so that
            # the LIMIT holds (a subquery in the WHERE may be evaluated again per row)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        async with self.db.transaction(write=True) as session:
            won = await session.execute(
                update(Login)
                # re-checked per row under its lock: another runner may have synced it meanwhile
                .where(
                    Login.id == due.c.id,
                    Login.active.is_(True),
                    Login.status.in_(RETRYABLE),
                    Login.next_sync_at <= now,
                    free,
                )
                .values(sync_lease_owner=token, sync_lease_until=now + self.lease)
                .returning(Login.id)
                .execution_options(synchronize_session=False)
            )
            ids = list(won.scalars().all())
            if not ids:
                return []
            rows = await session.execute(
                select(Login, App.archived_at)
                .join(App, App.id == Login.app_id)
                .where(Login.id.in_(ids))
                .order_by(Login.next_sync_at, Login.id)
            )
            claimed: list[Claimed] = []
            for login, archived_at in rows.tuples():
                if archived_at is not None:
                    log.info("scheduled sync of login %s paused: its app is archived", login.id)
                    login.next_sync_at = now + ARCHIVED_PAUSE
                    login.sync_lease_owner = None
                    login.sync_lease_until = None
                    continue
                service = engine.catalogue.get(login.service_id)
                if service is None:
                    log.info("scheduled sync of login %s skipped: service_not_found", login.id)
                    login.next_sync_at = now + CRASH_BACKOFF
                    login.sync_lease_owner = None
                    login.sync_lease_until = None
                    continue
                if used_up(engine, login, service, now):
                    # partners' manual refreshes used the day's quota since this was planned:
                    # the bank would refuse (and count) the read, so the sync moves to tomorrow
                    schedule_next(engine, login, service, now)
                    login.sync_lease_owner = None
                    login.sync_lease_until = None
                    continue
                claimed.append(await read_claimed(engine, session, login, service, token))
            return claimed

    async def sync(self, app_id: int, login_id: int, claimed: Claimed | None = None) -> bool:
        """One scheduled refresh; False when another runner had it or it could not start.

        ``claimed``: already leased for this run by :meth:`claim_due`.
        """
        if login_id in self._syncing:
            return False
        self._syncing.add(login_id)
        try:
            # S14: a login's sync touches its own app's rows only; its log lines name it
            with tenancy.acting_for(app_id), logs.bound_job("sync", login_id=login_id):
                return await self._sync(app_id, login_id, claimed)
        finally:
            self._syncing.discard(login_id)

    async def _sync(self, app_id: int, login_id: int, claimed: Claimed | None) -> bool:
        try:
            await refresh_login(
                self.engine,
                self.db,
                app_id,
                login_id,
                self.cooldown,
                owner=self.owner,
                scheduled=True,
                lease=self.lease,
                group=self._group,
                claimed=claimed,
            )
        except LoginBusy:
            return False
        except DomainError as exc:
            log.info("scheduled sync of login %s skipped: %s", login_id, exc.code)
            await self._push_back(login_id)
            return False
        except Exception:
            log.exception("scheduled sync of login %s failed", login_id)
            await self._push_back(login_id)
            return False
        return True

    async def _push_back(self, login_id: int) -> None:
        async with self.db.transaction(write=True) as session:
            await session.execute(
                update(Login)
                .where(Login.id == login_id)
                .values(
                    next_sync_at=self.clock() + CRASH_BACKOFF,
                    sync_lease_owner=None,
                    sync_lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )
