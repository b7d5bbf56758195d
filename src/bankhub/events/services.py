"""Recording events in the caller's unit of work, in the seed's webhook payload shapes.

Every body carries its type beside the seed's keys, in :data:`TYPE_FIELD` (``event_type``):
the seed's own payloads use ``status``, ``login_id``, ``timestamp``, ``accounts``, ``new`` and
``referenceId``, and its objects elsewhere use ``type`` (of an account, of a service), so a
receiver that reads ``event_type`` can never mistake a seed field for it. The field is stored
with the payload, so the webhook, its signature, a replay and the event feed all carry the very
same body.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import commit_order
from bankhub.db.engine import WORK_KINDS
from bankhub.events.models import Event
from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint

NEW_TRANSACTIONS = "transactions.new"
LOGIN_STATUS = "login.status"
SYNC_FAILED = "sync.failed"
CONSENT_EXPIRING = "consent.expiring"
LOGIN_DELETED = "login.deleted"
#: a payment's status changed (docs/payments.md)
PAYMENT_STATUS = "payment.status"
#: a statement file was imported, over the API or the SFTP drop (docs/sftp.md)
STATEMENT_IMPORTED = "statement.imported"
EVENT_TYPES = (
    NEW_TRANSACTIONS,
    LOGIN_STATUS,
    SYNC_FAILED,
    CONSENT_EXPIRING,
    LOGIN_DELETED,
    PAYMENT_STATUS,
    STATEMENT_IMPORTED,
)
#: a test event a member sends one endpoint from the dashboard: not a type an endpoint
#: subscribes to, never in the event feed, never caught up on re-enabling
TEST_EVENT = "webhook.test"
#: what an endpoint created without a list of types receives: the seed's two webhook events
DEFAULT_EVENT_TYPES = (NEW_TRANSACTIONS, LOGIN_STATUS)
#: the body's own name for its type, added beside the seed's keys
TYPE_FIELD = "event_type"


def reference_id() -> str:
    """A short random reference like the seed's ``hsSU83HnX``."""
    return secrets.token_urlsafe(7)[:9]


async def record(
    session: AsyncSession,
    *,
    app_id: int,
    type: str,
    payload: dict[str, Any],
    now: datetime,
    login_id: int | None = None,
    only: list[str] | None = None,
) -> Event:
    """Store an event and one pending delivery per endpoint that wants it, in the caller's work
    (or, with ``only``, for exactly those endpoints: a test event).

    The rows are inserted when the unit of work commits, under the app's feed lock, so that the
    event's id, the feed's cursor, is in commit order (``db.commit_order``); the returned event
    has its id from then on. The endpoints are looked up (and their rows locked, see
    :func:`_subscribers`) now, outside the feed lock. ``payload`` is the seed's shape; the
    stored body adds :data:`TYPE_FIELD` after its keys.
    """
    event = Event(
        app_id=app_id, login_id=login_id, type=type, payload=body(type, payload), created_at=now
    )
    if only is not None:
        endpoints = only
    elif _touches_endpoints(session):
        endpoints = await _subscribers(session, app_id, type)
    else:
        # Nothing pending can change the answer, so nothing is flushed for it: a sync's changes
        # to its login then go out in one UPDATE at commit rather than two.
        with session.no_autoflush:
            endpoints = await _subscribers(session, app_id, type)

    async def write(session: AsyncSession) -> None:
        session.add(event)
        if endpoints:
            await session.flush()  # the deliveries name the event's id
            _queue(session, event, endpoints, now)
        # else the flush that ends the feed's writes inserts it (``db.commit_order``)

    commit_order.append(session, app_id, write)
    return event


def body(type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What is stored and sent for an event: the seed's payload, then its type."""
    return {**payload, TYPE_FIELD: type}


def subscribes(types: list[str] | None, event_type: str) -> bool:
    """Whether an endpoint's list of types takes ``event_type``.

    ``None`` is how endpoints said "every type" before migration ``hooks2a`` wrote the list out;
    no endpoint is stored that way since, but a row written so still means what it meant.
    """
    return types is None or event_type in types


async def fan_out(session: AsyncSession, event: Event, now: datetime) -> int:
    """Queue a stored ``event`` (a replay) for every enabled endpoint of its app that
    subscribes to its type."""
    endpoints = await _subscribers(session, event.app_id, event.type)
    _queue(session, event, endpoints, now)
    return len(endpoints)


#: built once: every sync that records an event reads it (see ``sync.engine``'s statements)
_ENDPOINTS = (
    select(WebhookEndpoint.id, WebhookEndpoint.events, WebhookEndpoint.disabled_at)
    .where(WebhookEndpoint.app_id == bindparam("app_id"))
    .order_by(WebhookEndpoint.id)
    .with_for_update(read=True, key_share=True)
)


def _touches_endpoints(session: AsyncSession) -> bool:
    """Whether the session holds unflushed changes to webhook endpoints."""
    return any(
        isinstance(item, WebhookEndpoint)
        for pending in (session.new, session.dirty, session.deleted)
        for item in pending
    )


async def _subscribers(session: AsyncSession, app_id: int, type: str) -> list[str]:
    """The app's enabled endpoints that subscribe to events of ``type``.

    On PostgreSQL the app's endpoint rows are read with ``FOR KEY SHARE``, disabled ones too,
    and stay locked until the unit of work commits: re-enabling an endpoint
    (:func:`bankhub.webhooks.services.enable_endpoint`) locks its row ``FOR UPDATE`` before it
    looks for what the endpoint missed, so an event recorded meanwhile either waits for the
    re-enable and is queued here, or is committed before the re-enable looks and is found
    there; it is never left out by both. ``KEY SHARE`` does not conflict with plain updates, so
    disabling an endpoint or rotating its secret never waits for it.
    """
    found = await session.execute(_ENDPOINTS, {"app_id": app_id})
    return [
        endpoint_id
        for endpoint_id, types, disabled_at in found
        if disabled_at is None and subscribes(types, type)
    ]


def _queue(session: AsyncSession, event: Event, endpoints: list[str], now: datetime) -> None:
    for endpoint_id in endpoints:
        session.add(
            WebhookDelivery(
                app_id=event.app_id,
                event_id=event.id,
                endpoint_id=endpoint_id,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    if endpoints:
        mark_outbox(session, "deliveries")


def mark_outbox(session: AsyncSession, *kinds: str) -> None:
    """Tell the unit of work which kinds of background work it queued (``db.engine.WORK_KINDS``):
    on commit the runners' sources of those kinds are woken, in this process and (PostgreSQL)
    in every other."""
    unknown = set(kinds) - WORK_KINDS
    if unknown or not kinds:
        raise ValueError(f"kinds of background work are {sorted(WORK_KINDS)}, not {kinds}")
    session.info.setdefault("outbox", set()).update(kinds)


def new_transactions_payload(
    login_id: int, now: datetime, account_ids: list[int], new: int
) -> dict[str, Any]:
    return {
        "login_id": login_id,
        "timestamp": int(now.timestamp() * 1000),
        "accounts": [{"id": account_id} for account_id in account_ids],
        "new": new,
        "referenceId": reference_id(),
    }


def login_status_payload(login_id: int, status: str) -> dict[str, Any]:
    return {"status": f"login_{status}", "login_id": login_id}


def consent_expiring_payload(login_id: int, expires_at: datetime, days_left: int) -> dict[str, Any]:
    return {
        "login_id": login_id,
        "consent_expires_at": expires_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "days_left": days_left,
    }


def test_payload(endpoint_id: str) -> dict[str, Any]:
    """What a test event carries: marked as a test twice over (its type and ``test``)."""
    return {
        "test": True,
        "endpoint_id": endpoint_id,
        "message": "A test event sent from the bankhub dashboard",
    }


def login_deleted_payload(login_id: int) -> dict[str, Any]:
    return {"login_id": login_id, "deleted": True}


def sync_failed_payload(login_id: int, status: str, message: str) -> dict[str, Any]:
    return {"login_id": login_id, "status": f"login_{status}", "message": message}
