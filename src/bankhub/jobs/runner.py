"""The background runner: scheduled syncs and webhook deliveries, embedded or in workers.

Work lives in the database, written in the same transaction as the change that causes it (a
delivery per event and endpoint; a login's ``next_sync_at``). Any number of runners share it:
each claims due rows with an atomic conditional update that sets a lease, so a row is worked by
one runner at a time. A runner renews the leases of the work it is doing (a heartbeat every third
of ``BANKHUB_LEASE_SECONDS``), so a short lease holds a long sync; a runner that dies (even by
SIGKILL) delays its rows until the lease lapses, or less: restarted under the same identity
(``jobs.identity``) it releases them at once (``jobs.leases``). The same code runs inside
``bankhub serve`` on SQLite and in ``bankhub worker`` processes on PostgreSQL, so the two modes
cannot drift apart.

A commit that queued work wakes the runner of its own process directly, and on PostgreSQL the
runners of every process through LISTEN/NOTIFY (``jobs.wakeup``); polling every
``BANKHUB_WORKER_POLL_SECONDS`` is the safety net under both.

Syncs and deliveries have separate loops with their own bounded concurrency: a slow bank holds
one sync slot, never a delivery, and never another login's sync. A third, small loop purges data
older than each app's retention window (``bankhub.lifecycle.retention``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc, utcnow
from bankhub.dashboard import alerts
from bankhub.db import tenancy
from bankhub.db.group import GroupCommit
from bankhub.errors import DomainError, LoginBusy
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.hub import Hub
from bankhub.jobs import leases, wakeup
from bankhub.jobs.identity import Identity
from bankhub.lifecycle import retention
from bankhub.logins.models import Login
from bankhub.observability import logs
from bankhub.security import idempotency, rewrap
from bankhub.sync.refresh import (
    RETRYABLE,
    Claimed,
    read_claimed,
    refresh_login,
    run_token,
)
from bankhub.webhooks import sender, signing
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bankhub.webhooks.services import SecretCache

log = logging.getLogger("bankhub.jobs")

#: how far a login whose sync crashed unexpectedly is pushed back, so it cannot spin
CRASH_BACKOFF = timedelta(minutes=15)
#: partners hear of an expiring consent this long before it ends (largest first)
CONSENT_NOTICES = (timedelta(days=7), timedelta(days=1))
CONSENT_EXPIRED = "consent_expired"
SWEEP_SECONDS = 60.0
#: rows stored in clear by an older version that one retention sweep seals (S19)
SEAL_PER_SWEEP = 10_000


@dataclass
class Tally:
    syncs: int = 0
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery with what sending it needs (loaded with the claim), and its attempt,
    written as started in the same unit of work."""

    delivery_id: int
    attempt_id: int
    endpoint_id: str
    url: str
    secrets: list[str]
    event_id: int
    event_type: str
    body: bytes


Outcome = tuple[Job, datetime, sender.AttemptResult]


class OutcomeWriter:
    """Group commit of delivery outcomes: sends that finish while a batch is being written wait
    for the next one, so one unit of work records as many outcomes as finished meanwhile.

    ``record`` returns when the outcome is committed (or raises what writing it raised).
    """

    def __init__(self, write: Callable[[Sequence[Outcome]], Awaitable[list[bool]]]) -> None:
        self._write = write
        self._queue: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def record(self, job: Job, started: datetime, result: sender.AttemptResult) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(((job, started, result), done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                written = await self._write([outcome for outcome, _ in batch])
            except Exception as exc:  # noqa: BLE001 - each waiting send hears of it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), delivered in zip(batch, written, strict=True):
                if not done.done():
                    done.set_result(delivered)

    async def finish(self) -> None:
        """Wait for outcomes already handed over to be written (at shutdown)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


class Runner:
    """``identity``: the process's (``jobs.identity``); its dead predecessors' leases are
    released when ``run_forever`` starts. ``owner`` names the holder of the leases directly
    (tests); without either the runner is ephemeral."""

    def __init__(
        self, hub: Hub, *, owner: str | None = None, identity: Identity | None = None
    ) -> None:
        settings = hub.settings
        self.hub = hub
        self.engine = hub.engine
        self.identity = identity
        self.owner = identity.owner if identity else owner or Identity.ephemeral().owner
        self.lease = settings.lease
        self.sync_slots = max(1, settings.sync_concurrency)
        self.delivery_slots = max(1, settings.delivery_concurrency)
        self.poll = settings.worker_poll_seconds
        self._wake_syncs = asyncio.Event()
        self._wake_deliveries = asyncio.Event()
        self._rng = random.Random()  # noqa: S311 - retry jitter  # nosec B311
        self._next_sweep = 0.0
        self.retention_every = max(1.0, settings.retention_sweep_seconds)
        #: logins this runner is syncing now; never started twice side by side
        self._syncing: set[int] = set()
        #: deliveries this runner is sending now, whose leases the heartbeat renews
        self._sending: set[int] = set()
        #: PostgreSQL: how many times the LISTEN for other processes' commits was put in place
        self.listens = 0
        self._secrets = SecretCache()
        self._outcomes = OutcomeWriter(self._record_attempts)
        #: the claims and applies of syncs ready at the same moment share a unit of work
        self._syncs_group = GroupCommit(hub.db)

    def wake(self) -> None:
        """Something was queued: look for work now instead of at the next poll."""
        self._wake_syncs.set()
        self._wake_deliveries.set()

    # --- claiming -----------------------------------------------------------------------------

    async def claim_deliveries(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries and load what sending them needs, in one unit
        of work: the claim, then one query for the deliveries with their endpoints and events.

        A delivery whose endpoint is gone or disabled, or whose event is gone, is abandoned
        there and then instead of being returned. Each one returned has its attempt written as
        started (``sending``), before any request goes out; one whose previous lease lapsed
        mid-attempt has that attempt marked interrupted first (``jobs.leases``).
        """
        hub = self.hub
        now = hub.clock()
        free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
        async with hub.db.transaction(write=True) as session:
            due = dict(
                (
                    await session.execute(
                        select(WebhookDelivery.id, WebhookDelivery.lease_owner)
                        .where(
                            WebhookDelivery.status == "pending",
                            WebhookDelivery.next_attempt_at <= now,
                            free,
                            # never its own attempt under way, whatever its lease says
                            WebhookDelivery.id.not_in(sorted(self._sending)),
                        )
                        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                        .limit(limit)
                    )
                )
                .tuples()
                .all()
            )
            if not due:
                return []
            # Re-checked per row under the row's lock: of two runners, only one wins each row.
            claimed = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(list(due)), WebhookDelivery.status == "pending", free)
                .values(lease_owner=self.owner, lease_until=now + self.lease)
                .returning(WebhookDelivery.id)
                .execution_options(synchronize_session=False)
            )
            ids = list(claimed.scalars().all())
            if not ids:
                return []
            # held before and not released: the holder died or stalled mid-attempt
            await leases.interrupt(session, [i for i in ids if due.get(i) is not None])
            rows = await session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.app_id,
                    WebhookEndpoint.id,
                    WebhookEndpoint.app_id,
                    WebhookEndpoint.url,
                    WebhookEndpoint.secret_enc,
                    WebhookEndpoint.previous_secret_enc,
                    WebhookEndpoint.previous_expires_at,
                    WebhookEndpoint.disabled_at,
                    Event.id,
                    Event.type,
                    Event.payload,
                )
                .select_from(WebhookDelivery)
                .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .outerjoin(Event, Event.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id.in_(ids))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            )
            ready: list[tuple[int, int, str, str, list[str], int, str, bytes]] = []
            dead: list[int] = []
            for row in rows.tuples():
                (delivery_id, delivery_app_id, endpoint_id, app_id, url, secret_enc, previous_enc,
                 previous_until, disabled_at, event_id, event_type, payload) = row  # fmt: skip
                if endpoint_id is None or event_id is None or disabled_at is not None:
                    dead.append(delivery_id)
                    continue
                secrets = self._secrets.signing_secrets(
                    hub.keyring,
                    endpoint_id=endpoint_id,
                    app_id=app_id,
                    secret_enc=secret_enc,
                    previous_secret_enc=previous_enc,
                    previous_expires_at=previous_until,
                    now=now,
                )
                body = json.dumps(payload, separators=(",", ":")).encode()
                ready.append(
                    (delivery_id, delivery_app_id, endpoint_id, url, secrets, event_id, event_type,
                     body)
                )  # fmt: skip
            jobs: list[Job] = []
            if ready:
                started = await session.execute(
                    # one statement; the rows come back in any order, matched by delivery
                    insert(WebhookAttempt).returning(WebhookAttempt.id, WebhookAttempt.delivery_id),
                    [
                        {
                            "app_id": delivery_app_id,
                            "delivery_id": delivery_id,
                            "attempted_at": now,
                            "duration_ms": 0,
                            "outcome": leases.SENDING,
                            "status_code": None,
                            "error": None,
                            "response_excerpt": "",
                        }
                        for delivery_id, delivery_app_id, *_ in ready
                    ],
                )
                attempt_ids = dict((d, a) for a, d in started.tuples())
                for delivery_id, _, endpoint_id, url, secrets, event_id, event_type, body in ready:
                    jobs.append(
                        Job(
                            delivery_id,
                            attempt_ids[delivery_id],
                            endpoint_id,
                            url,
                            secrets,
                            event_id,
                            event_type,
                            body,
                        )
                    )
            if dead:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(dead), WebhookDelivery.lease_owner == self.owner)
                    .values(status="abandoned", lease_owner=None, lease_until=None)
                    .execution_options(synchronize_session=False)
                )
            return jobs

    async def claim_syncs(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` logins whose scheduled sync is due, in one unit of work: one
        conditional update claims them all (re-checked per row, so of two runners only one
        wins each login), one query reads them, and each gets what its fetch needs.

        A login whose service left the catalogue is pushed back (``CRASH_BACKOFF``) there and
        then instead of being returned, as a refresh that could not start would be.
        """
        engine = self.engine
        now = self.hub.clock()
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
        async with self.hub.db.transaction(write=True) as session:
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
                select(Login).where(Login.id.in_(ids)).order_by(Login.next_sync_at, Login.id)
            )
            claimed: list[Claimed] = []
            for login in rows.scalars():
                service = engine.catalogue.get(login.service_id)
                if service is None:
                    log.info("scheduled sync of login %s skipped: service_not_found", login.id)
                    login.next_sync_at = now + CRASH_BACKOFF
                    login.sync_lease_owner = None
                    login.sync_lease_until = None
                    continue
                claimed.append(await read_claimed(engine, session, login, service, token))
            return claimed

    async def consent_sweep(self) -> int:
        """Tell partners before consents expire (7 days, then 1 day) and mark expired ones;
        the team gets the same notices by mail (``bankhub.dashboard.alerts``).

        Each notice is claimed with a conditional update, so two runners never send it twice.
        """
        hub = self.hub
        now = hub.clock()
        sent = 0
        notices: list[alerts.ConsentNotice] = []
        async with hub.db.transaction() as session:
            logins = (
                await session.execute(
                    select(Login.id, Login.app_id, Login.consent_expires_at, Login.status).where(
                        Login.consent_expires_at.is_not(None),
                        Login.consent_expires_at <= now + CONSENT_NOTICES[0],
                        Login.status != CONSENT_EXPIRED,
                    )
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
                        sent += 1
                        notices.append(alerts.ConsentNotice(app_id, login_id, expires, 0))
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
                    sent += 1
                    notices.append(alerts.ConsentNotice(app_id, login_id, expires, days_left))
        # the team hears of the same notices by mail (once: each was claimed above)
        await alerts.mail_consent_notices(hub.db, hub.keyring, hub.settings.ca_bundle, notices)
        return sent

    async def retention_sweep(self) -> retention.PurgeReport:
        """Purge financial data older than each app's retention window (safe in any number of
        runners at once: each row is deleted, and counted, once)."""
        report = await retention.purge(
            self.hub.db,
            self.hub.clock,
            usage_days=self.hub.settings.usage_retention_days,
            audit_retention_days=self.hub.settings.audit_retention_days,
        )
        # S40: expired Idempotency-Keys, and answers older than a shorter retention window
        await idempotency.purge(self.hub.db, self.hub.clock())
        # S19: what an older version stored in clear is sealed a batch at a time, so that an
        # upgraded installation holds none after a while even if nobody runs `keys rewrap`
        await rewrap.seal_plain(
            self.hub.db, self.hub.keyring, self.hub.hasher, batch=500, limit=SEAL_PER_SWEEP
        )
        await self.hub.db.checkpoint()
        return report

    # --- working ------------------------------------------------------------------------------

    async def sync(self, app_id: int, login_id: int, claimed: Claimed | None = None) -> bool:
        """One scheduled refresh; False when another runner had it or it could not start.

        ``claimed``: already leased for this run by ``claim_syncs``.
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
        hub = self.hub
        try:
            await refresh_login(
                hub.engine,
                hub.db,
                app_id,
                login_id,
                hub.settings.refresh_cooldown,
                owner=self.owner,
                scheduled=True,
                lease=self.lease,
                group=self._syncs_group,
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
        async with self.hub.db.transaction(write=True) as session:
            await session.execute(
                update(Login)
                .where(Login.id == login_id)
                .values(
                    next_sync_at=self.hub.clock() + CRASH_BACKOFF,
                    sync_lease_owner=None,
                    sync_lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )

    async def deliver(self, job: Job) -> bool:
        """One attempt of one claimed delivery; True when it was delivered.

        The outcome is written by the outcome writer, together with the outcomes of the other
        sends that finished meanwhile, in one unit of work.
        """
        with logs.bound_job("delivery", delivery_id=job.delivery_id, event_id=job.event_id):
            return await self._deliver(job)

    async def _deliver(self, job: Job) -> bool:
        hub = self.hub
        self._sending.add(job.delivery_id)
        try:
            started = hub.clock()
            # The signature's timestamp is wall-clock time: receivers check it against their own.
            headers = signing.webhook_headers(
                f"evt_{job.event_id}", int(utcnow().timestamp()), job.body, job.secrets
            )
            headers["bankhub-event"] = job.event_type
            result = await sender.deliver(
                hub.webhook_transport,
                job.url,
                job.body,
                headers,
                allow_private=hub.settings.is_dev,
                allow_http=hub.settings.is_dev,
                timeout=hub.settings.webhook_timeout_seconds,
                keep_alive=True,
            )
            return await self._outcomes.record(job, started, result)
        finally:
            self._sending.discard(job.delivery_id)

    async def _record_attempts(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Complete a batch of attempts with their outcomes, and their deliveries' new states,
        in one unit of work; for each, whether it was delivered (False too when this runner
        lost the lease: whoever took the delivery over marked the attempt interrupted)."""
        hub = self.hub
        now = hub.clock()
        ids = [job.delivery_id for job, _, _ in outcomes]
        async with hub.db.transaction(write=True) as session:
            rows = await session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.endpoint_id,
                    WebhookDelivery.attempts,
                    WebhookDelivery.next_attempt_at,
                    WebhookDelivery.lease_owner,
                )
                .where(WebhookDelivery.id.in_(ids))
                .with_for_update()
            )
            held = {r[0]: r for r in rows.tuples() if r[4] == self.owner}
            attempts: list[dict[str, object]] = []
            changes: list[dict[str, object]] = []
            gone: set[str] = set()
            delivered: list[bool] = []
            for job, started, result in outcomes:
                delivery_id = job.delivery_id
                row = held.pop(delivery_id, None)
                if row is None:
                    delivered.append(False)  # the lease lapsed and another runner took over
                    continue
                _, endpoint_id, tries, next_attempt_at, _ = row
                tries += 1
                attempts.append(
                    {
                        "id": job.attempt_id,
                        "attempted_at": started,
                        "duration_ms": result.duration_ms,
                        "outcome": result.outcome,
                        "status_code": result.status_code,
                        "error": result.error,
                        "response_excerpt": result.response_excerpt,
                    }
                )
                status, delivered_at = "pending", None
                if result.outcome == "delivered":
                    status, delivered_at = "delivered", now
                elif result.outcome == "gone":
                    status = "abandoned"
                    gone.add(endpoint_id)
                elif result.outcome == "rejected":
                    status = "failed"
                else:
                    delay = sender.next_delay(tries, retry_after=result.retry_after, rng=self._rng)
                    if delay is None:
                        status = "failed"
                    else:
                        next_attempt_at = now + timedelta(seconds=delay)
                changes.append(
                    {
                        "id": delivery_id,
                        "status": status,
                        "attempts": tries,
                        "last_status_code": result.status_code,
                        "last_error": result.error,
                        "lease_owner": None,
                        "lease_until": None,
                        "delivered_at": delivered_at,
                        "next_attempt_at": next_attempt_at,
                    }
                )
                delivered.append(status == "delivered")
            if attempts:
                await session.execute(update(WebhookAttempt), attempts)
                await session.execute(update(WebhookDelivery), changes)
            for endpoint_id in sorted(gone):
                await self._disable_endpoint(session, endpoint_id, now)
        return delivered

    async def _disable_endpoint(
        self, session: AsyncSession, endpoint_id: str, now: datetime
    ) -> None:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(disabled_at=now, disabled_reason="the endpoint answered 410 Gone")
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
            .values(status="abandoned")
            .execution_options(synchronize_session=False)
        )

    # --- loops --------------------------------------------------------------------------------

    async def run_once(self) -> Tally:
        """Claim what is due now and work it to the end (tests and one-shot runs)."""
        with tenancy.everything():  # S14: the runner's work spans apps
            await self.hub.ready()
            await self.consent_sweep()
            logins = await self.claim_syncs(self.sync_slots)
            deliveries = await self.claim_deliveries(self.delivery_slots)
            synced = await asyncio.gather(*(self.sync(c.app_id, c.login_id, c) for c in logins))
            delivered = await asyncio.gather(*(self.deliver(job) for job in deliveries))
            await self.retention_sweep()
        return Tally(syncs=sum(synced), deliveries=sum(delivered))

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Work until ``stop``: first release what a dead predecessor of this identity held,
        then claim and work due rows, woken by commits (and, on PostgreSQL, by other processes'
        commits) or every poll interval; on the way out, release what was left unfinished."""
        with tenancy.everything():  # S14: the runner's work spans apps; each sync narrows it
            if self.identity is not None:
                await self._reclaim(self.identity)
            helpers = [asyncio.ensure_future(self._heartbeat(stop))]
            if self.hub.db.dialect == "postgresql":
                helpers.append(
                    asyncio.ensure_future(
                        wakeup.listen(self.hub.db.engine, self.wake, stop, listening=self._listened)
                    )
                )
            try:
                await asyncio.gather(
                    self._loop(
                        stop,
                        self.sync_slots,
                        self._next_syncs,
                        self._wake_syncs,
                        refill=self.sync_slots // 10,
                    ),
                    self._loop(
                        stop,
                        self.delivery_slots,
                        self._next_deliveries,
                        self._wake_deliveries,
                        refill=self.delivery_slots // 2,
                    ),
                    self._retention_loop(stop),
                )
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await self._outcomes.finish()
                await self._syncs_group.finish()
                await self._release_unfinished()

    async def _reclaim(self, identity: Identity) -> None:
        try:
            await self.hub.ready()
            await leases.reclaim(self.hub.db, identity)
        except Exception:
            log.exception("taking back a previous run's leases failed; they lapse instead")

    def _listened(self) -> None:
        self.listens += 1

    async def _release_unfinished(self) -> None:
        """What this runner was doing when told to stop was cancelled: its leases go back now,
        its attempts show as interrupted."""
        try:
            await leases.release_own(self.hub.db, self.owner)
        except Exception:
            log.exception("releasing the leases of unfinished work failed; they lapse instead")

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Renew the leases of the deliveries being sent, every third of the lease (a sync
        renews its own, ``sync.refresh``). A renewal that fails is retried at the next beat;
        a lease lost meanwhile is caught when the outcome is written."""
        every = self.lease.total_seconds() / 3
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            sending = sorted(self._sending)
            if stop.is_set() or not sending:
                continue
            try:
                async with self.hub.db.transaction(write=True) as session:
                    await session.execute(
                        update(WebhookDelivery)
                        .where(
                            WebhookDelivery.id.in_(sending),
                            WebhookDelivery.lease_owner == self.owner,
                        )
                        .values(lease_until=self.hub.clock() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
            except Exception:
                log.exception("renewing the leases of deliveries under way failed")

    async def _retention_loop(self, stop: asyncio.Event) -> None:
        """A purge now, then every ``BANKHUB_RETENTION_SWEEP_SECONDS``, until ``stop``.

        Stopping mid-purge cancels it: the open batch rolls back, and the next sweep redoes it.
        """
        halt: asyncio.Task[object] = asyncio.ensure_future(stop.wait())
        try:
            while not halt.done():
                sweep: asyncio.Task[object] = asyncio.ensure_future(self.retention_sweep())
                try:
                    await asyncio.wait({sweep, halt}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sweep.cancel()  # a no-op unless stopping while it runs
                    await asyncio.wait({sweep})
                if not sweep.cancelled() and (failure := sweep.exception()) is not None:
                    log.error("retention purge failed", exc_info=failure)
                await asyncio.wait({halt}, timeout=self.retention_every)
        finally:
            halt.cancel()

    async def _next_syncs(self, free: int) -> list[Awaitable[object]]:
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
            await self.consent_sweep()
        return [self.sync(c.app_id, c.login_id, c) for c in await self.claim_syncs(free)]

    async def _next_deliveries(self, free: int) -> list[Awaitable[object]]:
        return [self.deliver(job) for job in await self.claim_deliveries(free)]

    async def _loop(
        self,
        stop: asyncio.Event,
        slots: int,
        next_batch: Callable[[int], Awaitable[list[Awaitable[object]]]],
        woken: asyncio.Event,
        *,
        refill: int = 1,
    ) -> None:
        """Keep up to ``slots`` pieces of work running; claim more when ``refill`` slots are
        free (or all are), when woken, or every poll interval.

        Claiming in batches of ``refill`` instead of one per finished piece keeps the claims
        (a unit of work each) few when work is short and plenty.
        """
        refill = max(1, min(refill, slots))
        running: set[asyncio.Task[object]] = set()
        freed = asyncio.Event()

        def finished(task: asyncio.Task[object]) -> None:
            running.discard(task)
            if not task.cancelled() and (failure := task.exception()) is not None:
                log.error("background work failed", exc_info=failure)
            if slots - len(running) >= refill:
                freed.set()

        try:
            while not stop.is_set():
                freed.clear()
                free = slots - len(running)
                if free >= refill or (free > 0 and not running):
                    try:
                        await self.hub.ready()
                        for work in await next_batch(free):
                            task = asyncio.ensure_future(work)
                            running.add(task)
                            task.add_done_callback(finished)
                    except Exception:
                        log.exception("claiming background work failed")
                waits: list[asyncio.Task[object]] = [
                    asyncio.ensure_future(woken.wait()),
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(freed.wait()),
                ]
                done, _ = await asyncio.wait(
                    waits, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                )
                for helper in waits:
                    helper.cancel()
                if waits[0] in done:
                    woken.clear()
        finally:
            left = list(running)
            for task in left:
                task.cancel()
            for task in left:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
