"""A refresh of one login, manual or scheduled, under a lease so that no two run at once.

Two short units of work around the bank's time: claim the login (an atomic conditional update,
so two workers can never both win) and read its state, then fetch from the bank with no
transaction open while a heartbeat renews the lease every third of its length, then apply, but
only if this worker still holds the lease (fencing: a worker that stalled past its lease must not
write over the one that took over). A heartbeat that finds the lease taken stops the fetch there:
nothing this run could still learn from the bank would be applied.

Manual and scheduled refreshes take the same lease (``BANKHUB_LEASE_SECONDS``), so a short lease
is safe for a sync that runs for minutes, and work a dead process held is free soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.catalogue import Service
from bankhub.clock import as_utc
from bankhub.connectors.base import (
    ConnectorFailure,
    Interaction,
    InvalidCredentials,
    SessionExpired,
)
from bankhub.db.engine import Database
from bankhub.db.group import GroupCommit, Work
from bankhub.errors import CooldownActive, ErrorCode, InvalidInput, LoginBusy, NotFound
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.observability import metrics
from bankhub.partners.models import App
from bankhub.security.crypto import DecryptionError
from bankhub.sync import feed
from bankhub.sync.engine import ApplySummary, ConnectorRun, FetchResult, SyncEngine

T = TypeVar("T")
log = logging.getLogger("bankhub.sync")
#: a refresh's apply reads its login locked, fresh from the database: built once, as the sync
#: engine's own statements are (``sync.engine``)
_LOCKED = (
    select(Login)
    .where(Login.id == bindparam("login_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)

#: statuses the scheduler keeps refreshing; the others wait for the user to reconnect
RETRYABLE = (logins.ACTIVE, "provider_unavailable", "rate_limited")
_jitter = random.Random()  # noqa: S311 - spreads schedules, not a secret  # nosec B311


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    login_id: int
    refreshed: bool
    status: str
    last_refresh_at: datetime | None
    next_refresh_possible_at: datetime
    summary: ApplySummary | None = None
    failure: ConnectorFailure | None = None
    #: False when another worker took the login over before this one could apply
    applied: bool = True


def next_possible(login: Login, cooldown: timedelta) -> datetime | None:
    """The cool-down after the last attempt, or later where the bank said when it takes
    requests again (``not_before``: a rate limit's retry time, a provider's daily quota)."""
    at = None if login.last_attempt_at is None else as_utc(login.last_attempt_at) + cooldown
    if login.not_before is not None:
        retry = as_utc(login.not_before)
        at = retry if at is None else max(at, retry)
    return at


def unattended_quota(engine: SyncEngine, service: Service) -> int:
    """Unattended refreshes a day: the connector's, or the bank's own lower
    ``frequency_per_day`` where the bank counts them (XS2A's ``frequencyPerDay``)."""
    info = engine.registry.info(service.connector)
    per_day = info.unattended_refreshes_per_day
    bank = service.params.get("frequency_per_day")
    if info.bank_counts_unattended and isinstance(bank, int) and not isinstance(bank, bool):
        per_day = min(per_day, max(1, bank))
    return per_day


def counts_manual(engine: SyncEngine, service: Service) -> bool:
    """Whether a partner's manual refresh (no user present either) uses the daily quota."""
    return engine.registry.info(service.connector).bank_counts_unattended


def _used_on(login: Login, day: date) -> int:
    return login.unattended_count if login.unattended_day == day else 0


def used_up(engine: SyncEngine, login: Login, service: Service, now: datetime) -> bool:
    """Whether today's unattended quota of ``login`` is used up."""
    return _used_on(login, now.date()) >= unattended_quota(engine, service)


def _next_day(at: datetime) -> datetime:
    return datetime.combine(at.date() + timedelta(days=1), datetime.min.time(), at.tzinfo)


def sync_interval(engine: SyncEngine, service: Service) -> timedelta:
    return timedelta(days=1) / max(1, unattended_quota(engine, service))


def schedule_next(engine: SyncEngine, login: Login, service: Service, now: datetime) -> None:
    """Spread unattended refreshes over the day, within the daily quota, and never before the
    time a bank that refused more requests asked for."""
    quota = unattended_quota(engine, service)
    if quota <= 0 or login.status not in RETRYABLE:
        login.next_sync_at = None
        return
    interval = sync_interval(engine, service)
    at = now + interval * _jitter.uniform(0.9, 1.1)
    if login.not_before is not None:
        at = max(at, as_utc(login.not_before))
    if _used_on(login, at.date()) >= quota:
        at = _next_day(at) + interval * _jitter.uniform(0.0, 0.2)
    login.next_sync_at = at


async def _heartbeat(
    engine: SyncEngine, db: Database, login_id: int, token: str, lease: timedelta
) -> None:
    """Renew the run's lease every third of its length; return once it is no longer the run's
    (taken over after it lapsed, or released). A renewal that fails is tried again at the next
    beat: the lease may lapse meanwhile, and the apply's fencing check has the last word."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            async with db.transaction(write=True) as session:
                renewed = await session.execute(
                    update(Login)
                    .where(Login.id == login_id, Login.sync_lease_owner == token)
                    .values(sync_lease_until=engine.clock() + lease)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("renewing the lease of the sync of login %s failed", login_id)
            continue
        if getattr(renewed, "rowcount", 0) != 1:
            log.warning("the sync of login %s lost its lease; stopping it", login_id)
            return


async def reopen(
    engine: SyncEngine, run: ConnectorRun, credentials: Mapping[str, str] | None
) -> None:
    """Reopen the bank session unattended; with the app's vault, log in again if asked to."""
    try:
        await engine.guarded(run.connector.open_session())
    except SessionExpired:
        if credentials is None:
            raise
        try:
            await engine.guarded(run.connector.authenticate(credentials))
        except Interaction:
            # A code or an approval needs the user: the vault cannot stand in for them.
            raise SessionExpired(
                "The bank asks for more than the password; the user must reconnect"
            ) from None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A login claimed for a refresh under ``token``, with what its fetch needs (read only
    once the claim was won: reading before could sync again from what a run that just finished
    had already replaced)."""

    app_id: int
    login_id: int
    token: str
    service: Service
    state: dict[str, Any]
    last_refresh_at: datetime | None
    credentials: dict[str, str] | None
    #: the consent's history depth: no sync reads further back than the user agreed to
    history_days: int | None = None


def run_token(owner: str) -> str:
    """The lease belongs to a run, not to the worker: a worker's second run of the same login
    can neither slip past the claim nor pass the fencing check at the end."""
    return f"{owner}/{secrets.token_hex(6)}"


async def read_claimed(
    engine: SyncEngine, session: AsyncSession, login: Login, service: Service, token: str
) -> Claimed:
    """The connector state and, with the app's vault, the kept credentials of a claimed login."""
    state = engine.state_of(login)
    credentials: dict[str, str] | None = None
    # Only a login with kept credentials needs its app's vault choice (one query less).
    app = await session.get(App, login.app_id) if login.vault_credentials_enc else None
    if app is not None and app.credential_vault:
        try:
            credentials = engine.open_credentials(login)
        except DecryptionError:
            # Not this row's ciphertext (copied or altered): a security event, never used.
            log.warning("vault credentials of login %s do not decrypt; dropped", login.id)
            login.vault_credentials_enc = None
    elif login.vault_credentials_enc:
        login.vault_credentials_enc = None  # the app opted out: forget what it had kept
    return Claimed(
        login.app_id,
        login.id,
        token,
        service,
        state,
        login.last_refresh_at,
        credentials,
        login.consent_history_days,
    )


async def _unit(
    db: Database, group: GroupCommit | None, work: Work[T], app_id: int, login_id: int
) -> T:
    """A writing unit of work of its own, or a savepoint in ``group``'s next batch (of
    ``app_id``'s units of work on PostgreSQL), where it runs in the order of ``login_id``, the
    row it locks first (``db.group``: a batch takes its logins' locks in ascending order)."""
    if group is not None:
        return await group.run(work, app_id=app_id, order=login_id)
    async with db.transaction(write=True) as session:
        return await work(session)


async def refresh_login(
    engine: SyncEngine,
    db: Database,
    app_id: int,
    login_id: int,
    cooldown: timedelta,
    *,
    lease: timedelta,
    owner: str,
    scheduled: bool = False,
    group: GroupCommit | None = None,
    claimed: Claimed | None = None,
) -> RefreshOutcome:
    """Refresh now. Manual refreshes respect the cool-down; scheduled ones count the quota.

    ``lease``: ``BANKHUB_LEASE_SECONDS``, renewed while the bank answers; ``owner``: the process
    taking it (``jobs.identity``), so that a restart of the process can release it.

    The claim, the checks and reading the login's state are one unit of work: the conditional
    update that takes the lease goes first (so on SQLite the unit of work is a writer from its
    first statement), and a check that fails rolls the claim back with everything else.

    ``group``: the claim and the apply are each written with the other refreshes' that are
    ready at the same moment (the runner's group commit; a savepoint each, so a check that
    fails still rolls back only this refresh's claim).

    ``claimed``: the login was already claimed for this run, with others due at the same time
    (the runner's ``claim_syncs``); the refresh starts with the fetch.
    """
    now = engine.clock()
    token = run_token(owner)

    async def claim(session: AsyncSession) -> Claimed:
        claimed = await session.execute(
            update(Login)
            .where(
                Login.id == login_id,
                Login.app_id == app_id,
                or_(Login.sync_lease_until.is_(None), Login.sync_lease_until < now),
            )
            .values(sync_lease_owner=token, sync_lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        won = getattr(claimed, "rowcount", 0) == 1
        login = await session.get(Login, login_id)
        if login is None or login.app_id != app_id:
            raise NotFound(ErrorCode.LOGIN_NOT_FOUND, extra={"login_id": login_id})
        service = engine.catalogue.get(login.service_id)
        if service is not None and not engine.refreshable(service):
            # A statement login's data is its files: there is no bank to ask, so nothing may
            # change (no claim, no attempt, no status, no event).
            raise InvalidInput(
                f"Login {login.id} is a statement login: there is no bank to refresh it from. "
                "Import a newer statement file with POST /v2/statement instead.",
                {"id": login.id, "refreshed": False, "service_id": login.service_id},
            )
        logins.require_active(login)
        possible = next_possible(login, cooldown)
        last = login.last_refresh_at
        if not scheduled and possible is not None and now < possible:
            raise CooldownActive(login.id, as_utc(last) if last else None, possible)
        if service is None:
            raise NotFound(ErrorCode.SERVICE_NOT_FOUND, extra={"service_id": login.service_id})
        if (
            not scheduled
            and counts_manual(engine, service)
            and used_up(engine, login, service, now)
        ):
            # the bank would refuse this read (and count it): today's quota is used up
            raise CooldownActive(login.id, as_utc(last) if last else None, _next_day(now))
        if not won:
            raise LoginBusy(login_id)
        # The state is read only now that no other run can change it: reading before the claim
        # could sync again from what a run that just finished had already replaced.
        due = login.next_sync_at is not None and as_utc(login.next_sync_at) <= now
        if scheduled and not due:
            # Another run did this sync between the runner's look and this claim: step back
            # (the rollback releases the claim).
            raise LoginBusy(login_id)
        return await read_claimed(engine, session, login, service, token)

    got = claimed if claimed is not None else await _unit(db, group, claim, app_id, login_id)
    started = time.monotonic()
    token, service, credentials = got.token, got.service, got.credentials
    run = engine.build(service, got.state)
    failure: ConnectorFailure | None = None
    result: FetchResult | None = None

    async def fetch() -> FetchResult:
        await reopen(engine, run, credentials)
        since = engine.refresh_since(got.last_refresh_at, service, got.history_days)
        return await engine.fetch(run, since)

    fetching = asyncio.ensure_future(fetch())
    heartbeat = asyncio.ensure_future(_heartbeat(engine, db, login_id, token, lease))
    try:
        await asyncio.wait({fetching, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (heartbeat, fetching):
            task.cancel()
        for task in (heartbeat, fetching):
            with contextlib.suppress(asyncio.CancelledError, ConnectorFailure):
                await task
    if not fetching.cancelled():
        try:
            result = fetching.result()
        except ConnectorFailure as exc:
            failure = exc

    async def apply(session: AsyncSession) -> RefreshOutcome:
        login = (await session.execute(_LOCKED, {"login_id": login_id})).scalar_one_or_none()
        if login is None:
            raise NotFound(ErrorCode.LOGIN_NOT_FOUND, extra={"login_id": login_id})
        finished = engine.clock()
        if login.sync_lease_owner != token or (failure is None and result is None):
            log.warning("sync of login %s lost its lease to %s", login_id, login.sync_lease_owner)
            if login.sync_lease_owner == token:  # stopped without an answer: free the login
                login.sync_lease_owner = None
                login.sync_lease_until = None
            return RefreshOutcome(
                login_id, False, login.status, login.last_refresh_at, now + cooldown, applied=False
            )
        summary = None
        if isinstance(failure, InvalidCredentials) and credentials is not None:
            login.vault_credentials_enc = None  # the kept password no longer works
        if failure is not None:
            await engine.record_failure(session, login, failure, run.state.load())
        else:
            assert result is not None  # noqa: S101 - set when there was no failure  # nosec B101
            summary = await engine.apply(session, login, result)
        login.last_attempt_at = now
        if scheduled or counts_manual(engine, service):
            if login.unattended_day != now.date():
                login.unattended_day, login.unattended_count = now.date(), 0
            login.unattended_count += 1
        schedule_next(engine, login, service, finished)
        login.sync_lease_owner = None
        login.sync_lease_until = None
        feed.record(
            session,
            app_id=login.app_id,
            login_id=login.id,
            kind="scheduled" if scheduled else "manual",
            worker=owner,
            connector=service.connector,
            started_at=now,
            finished_at=finished,
            summary=summary,
            outcome="ok" if failure is None else f"login_{failure.status}",
            error=failure.message if failure else None,
        )
        last = login.last_refresh_at
        return RefreshOutcome(
            login_id=login.id,
            refreshed=failure is None,
            status=login.status,
            last_refresh_at=as_utc(last) if last else None,
            next_refresh_possible_at=next_possible(login, cooldown) or now + cooldown,
            summary=summary,
            failure=failure,
        )

    def observed(what: str) -> None:
        seconds = time.monotonic() - started
        metrics.sync_finished(service.connector, scheduled=scheduled, outcome=what, seconds=seconds)
        log.info(
            "sync of login %s: %s",
            login_id,
            what,
            extra={"connector": service.connector, "duration_ms": round(seconds * 1000, 1)},
        )

    try:
        outcome = await _unit(db, group, apply, app_id, login_id)
    except Exception:
        observed("error")
        raise
    observed(_metric_outcome(outcome))
    return outcome


def _metric_outcome(outcome: RefreshOutcome) -> str:
    """As ``sync_runs.outcome`` says it, or why no run was recorded."""
    if not outcome.applied:
        return "lost_lease"
    return "ok" if outcome.failure is None else f"login_{outcome.failure.status}"
