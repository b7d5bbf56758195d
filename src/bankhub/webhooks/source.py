"""Webhook deliveries as a source of the background loop (``jobs.loop``), and the disabling of an
endpoint that answered 410 Gone.

A delivery per event and endpoint is queued in the transaction that records the event
(``events.services``). A runner leases due deliveries in batches, writes each attempt as started
(``sending``) before its request goes out, and completes the attempts with their outcomes in
group commits (:class:`OutcomeWriter`), each fenced on the lease: an outcome of a runner that
lost its lease is dropped, since the runner that took over marked the attempt interrupted
(``jobs.leases``). Webhooks are at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, Update, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import utcnow
from bankhub.db.engine import Database
from bankhub.events.models import Event
from bankhub.jobs import leases
from bankhub.observability import logs
from bankhub.security.keyring import Keyring
from bankhub.webhooks import sender, signing
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from bankhub.webhooks.services import SecretCache
from bankhub.webhooks.ssrf import CheckedTargets
from bankhub.webhooks.transport import KeyedTransport

# The attempts and deliveries of a batch are written as Core statements on the tables, run once
# per batch with many parameter sets, not as ORM bulk statements: their rows go nowhere but the
# database, and the ORM's bulk machinery (mapping each dict onto the entity, per batch) was a
# tenth of a worker's CPU per delivery (bench/webhooks.py, py-spy).
_ATTEMPTS: Table = WebhookAttempt.__table__  # type: ignore[assignment]
_DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]
_START_ATTEMPTS = insert(_ATTEMPTS).returning(_ATTEMPTS.c.id, _ATTEMPTS.c.delivery_id)


def _set_by_id(table: Table, key: str, columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET column = :column, ... WHERE id = :key``, for many parameter sets."""
    return (
        update(table)
        .where(table.c.id == bindparam(key))
        .values({name: bindparam(name) for name in columns})
    )


_END_ATTEMPTS = _set_by_id(
    _ATTEMPTS,
    "attempt",
    ("attempted_at", "duration_ms", "outcome", "status_code", "error", "response_excerpt"),
)
_MOVE_DELIVERIES = _set_by_id(
    _DELIVERIES,
    "delivery",
    (
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "lease_owner",
        "lease_until",
        "delivered_at",
        "next_attempt_at",
    ),
)


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


class DeliverySource:
    """``dev``: private and plain-HTTP receivers are allowed (development only)."""

    name = "deliveries"

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        transport: KeyedTransport,
        clock: Callable[[], datetime],
        *,
        owner: str,
        lease: timedelta,
        slots: int,
        timeout: float,
        dev: bool,
        targets: CheckedTargets | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.transport = transport
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.slots = max(1, slots)
        self.refill = self.slots // 2
        self.timeout = timeout
        self.dev = dev
        self._rng = random.Random()  # noqa: S311 - retry jitter  # nosec B311
        #: deliveries this runner is sending now, whose leases the heartbeat renews
        self._sending: set[int] = set()
        self._secrets = SecretCache()
        self._outcomes = OutcomeWriter(self._record_attempts)
        #: receivers' checked addresses, kept a short while (ssrf.CheckedTargets)
        self.targets = targets if targets is not None else CheckedTargets()

    async def claim(self, limit: int) -> list[Awaitable[bool]]:
        return [self.deliver(job) for job in await self.claim_due(limit)]

    async def renew(self) -> None:
        """Renew the leases of the deliveries being sent; a lease lost meanwhile is caught when
        the outcome is written."""
        sending = sorted(self._sending)
        if not sending:
            return
        async with self.db.transaction(write=True) as session:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(sending),
                    WebhookDelivery.lease_owner == self.owner,
                )
                .values(lease_until=self.clock() + self.lease)
                .execution_options(synchronize_session=False)
            )

    async def finish(self) -> None:
        """Wait for outcomes already handed over to be written."""
        await self._outcomes.finish()

    async def claim_due(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries and load what sending them needs, in one unit
        of work: the claim, then one query for the deliveries with their endpoints and events.

        A delivery whose endpoint is gone or disabled, or whose event is gone, is abandoned
        there and then instead of being returned. Each one returned has its attempt written as
        started (``sending``), before any request goes out; one whose previous lease lapsed
        mid-attempt has that attempt marked interrupted first (``jobs.leases``).
        """
        now = self.clock()
        free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
        async with self.db.transaction(write=True) as session:
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
                    self.keyring,
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
                    _START_ATTEMPTS,
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

    async def deliver(self, job: Job) -> bool:
        """One attempt of one claimed delivery; True when it was delivered.

        The outcome is written by the outcome writer, together with the outcomes of the other
        sends that finished meanwhile, in one unit of work.
        """
        with logs.bound_job("delivery", delivery_id=job.delivery_id, event_id=job.event_id):
            return await self._deliver(job)

    async def _deliver(self, job: Job) -> bool:
        self._sending.add(job.delivery_id)
        try:
            started = self.clock()
            # The signature's timestamp is wall-clock time: receivers check it against their own.
            headers = signing.webhook_headers(
                f"evt_{job.event_id}", int(utcnow().timestamp()), job.body, job.secrets
            )
            headers["bankhub-event"] = job.event_type
            result = await sender.deliver(
                self.transport,
                job.url,
                job.body,
                headers,
                allow_private=self.dev,
                allow_http=self.dev,
                timeout=self.timeout,
                keep_alive=True,
                targets=self.targets,
            )
            return await self._outcomes.record(job, started, result)
        finally:
            self._sending.discard(job.delivery_id)

    async def _record_attempts(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Complete a batch of attempts with their outcomes, and their deliveries' new states,
        in one unit of work; for each, whether it was delivered (False too when this runner
        lost the lease: whoever took the delivery over marked the attempt interrupted)."""
        now = self.clock()
        ids = [job.delivery_id for job, _, _ in outcomes]
        async with self.db.transaction(write=True) as session:
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
                        "attempt": job.attempt_id,
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
                        "delivery": delivery_id,
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
                await session.execute(_END_ATTEMPTS, attempts)
                await session.execute(_MOVE_DELIVERIES, changes)
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
