"""Leases left behind: released at once when their holder is known to be dead, and the webhook
attempts they cut marked as such.

A lease is a promise to finish a piece of work, renewed while the work goes on. When its holder
dies, the work waits until the lease lapses, unless somebody knows the holder is dead: a
restarted process knows it of its predecessors under the same identity (``jobs.identity``), and a
process that stops knows it of itself. Both release those leases here, so the work is due again
at once.

A delivery's attempt is written when it starts (``outcome = "sending"``) and completed with its
outcome. One still ``sending`` when its lease is released here, or when another runner takes the
delivery over after the lease lapsed, was cut short: it becomes ``interrupted`` and counts as an
attempt (the receiver may have had the request; webhooks are at least once). Outbox messages
(``jobs.outbox``) are released the same way; their attempt was counted when it was claimed.

A release makes work due at once: its unit of work wakes the runners of every process as a
commit that queued work does (``jobs.wakeup``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db.engine import Database
from bankhub.events.services import mark_outbox
from bankhub.jobs.identity import INCARNATION, Identity
from bankhub.jobs.outbox import PENDING, OutboxMessage
from bankhub.logins.models import Login
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery

log = logging.getLogger("bankhub.jobs")

#: an attempt whose request is on its way
SENDING = "sending"
#: an attempt cut short: its process stopped (or lost its lease) before the outcome was written
INTERRUPTED = "interrupted"
CUT_SHORT = (
    "cut short: the sending process stopped before the receiver's answer was recorded (the "
    "receiver may have had the request); sent again"
)


@dataclass(frozen=True, slots=True)
class Released:
    deliveries: int
    interrupted: int
    syncs: int
    messages: int = 0


async def interrupt(session: AsyncSession, delivery_ids: Sequence[int]) -> int:
    """Mark the attempts of ``delivery_ids`` still ``sending`` as interrupted, and count them
    on their deliveries; how many there were."""
    if not delivery_ids:
        return 0
    cut = (
        (
            await session.execute(
                update(WebhookAttempt)
                .where(
                    WebhookAttempt.delivery_id.in_(delivery_ids),
                    WebhookAttempt.outcome == SENDING,
                )
                .values(outcome=INTERRUPTED, error=CUT_SHORT)
                .returning(WebhookAttempt.delivery_id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    if cut:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(sorted(set(cut))))
            .values(
                attempts=WebhookDelivery.attempts + 1,
                last_status_code=None,
                last_error=CUT_SHORT,
            )
            .execution_options(synchronize_session=False)
        )
    return len(cut)


async def reclaim(db: Database, identity: Identity) -> Released:
    """At start: release every lease held under ``identity`` by another incarnation (dead, as
    the identity's lock proves). An ephemeral identity proves nothing and releases nothing."""
    if not identity.held:
        return Released(0, 0, 0)
    mine = identity.name + INCARNATION
    released = await _release(
        db,
        and_(
            WebhookDelivery.lease_owner.startswith(mine, autoescape=True),
            WebhookDelivery.lease_owner != identity.owner,
        ),
        and_(
            Login.sync_lease_owner.startswith(mine, autoescape=True),
            Login.sync_lease_owner.not_like(f"{_escape(identity.owner)}/%", escape="\\"),
        ),
        and_(
            OutboxMessage.lease_owner.startswith(mine, autoescape=True),
            OutboxMessage.lease_owner != identity.owner,
        ),
    )
    if released.deliveries or released.syncs or released.messages:
        log.warning(
            "released %s delivery, %s sync and %s outbox leases a previous run of %s left (%s "
            "attempts cut short); their work is due again now",
            released.deliveries,
            released.syncs,
            released.messages,
            identity.name,
            released.interrupted,
        )
    return released


async def release_own(db: Database, owner: str) -> Released:
    """At a stop: release the leases of work this process gave up (cancelled on the way out)."""
    return await _release(
        db,
        WebhookDelivery.lease_owner == owner,
        Login.sync_lease_owner.like(f"{_escape(owner)}/%", escape="\\"),
        OutboxMessage.lease_owner == owner,
    )


async def _release(
    db: Database,
    deliveries: ColumnElement[bool],
    logins: ColumnElement[bool],
    messages: ColumnElement[bool],
) -> Released:
    async with db.transaction(write=True) as session:
        # in-flight deliveries are pending: the status index finds them
        ids = (
            (
                await session.execute(
                    select(WebhookDelivery.id).where(
                        WebhookDelivery.status == "pending", deliveries
                    )
                )
            )
            .scalars()
            .all()
        )
        cut = await interrupt(session, ids)
        if ids:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
        # a sync that never applied left its login due as it was: it runs again from the state
        # the interrupted run started from
        # the logins locked first, in ascending order of id: a batch of refreshes still being
        # written holds some of them and takes its own in that order (``db.group``)
        releasing = (
            select(Login.id)
            .where(Login.sync_lease_owner.is_not(None), logins)
            .order_by(Login.id)
            .with_for_update()
            .cte("releasing")
        )
        syncs = (
            (
                await session.execute(
                    update(Login)
                    .where(Login.id.in_(select(releasing.c.id)), logins)
                    .values(sync_lease_owner=None, sync_lease_until=None)
                    .returning(Login.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        # a message cut short was counted as an attempt when it was claimed
        sends = (
            (
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.status == PENDING, messages)
                    .values(lease_owner=None, lease_until=None)
                    .returning(OutboxMessage.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        # due again now: every process's runners may take them
        due = {"deliveries": ids, "syncs": syncs, "outbox": sends}
        if kinds := [kind for kind, again in due.items() if again]:
            mark_outbox(session, *kinds)
    return Released(len(ids), cut, len(syncs), len(sends))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
