"""Recording events in the caller's unit of work, in the seed's webhook payload shapes."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import commit_order
from bankhub.events.models import Event
from bankhub.webhooks.models import WebhookDelivery, WebhookEndpoint

NEW_TRANSACTIONS = "transactions.new"
LOGIN_STATUS = "login.status"
SYNC_FAILED = "sync.failed"
CONSENT_EXPIRING = "consent.expiring"
LOGIN_DELETED = "login.deleted"
EVENT_TYPES = (NEW_TRANSACTIONS, LOGIN_STATUS, SYNC_FAILED, CONSENT_EXPIRING, LOGIN_DELETED)


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
) -> Event:
    """Store an event and one pending delivery per endpoint that wants it, in the caller's work.

    The rows are inserted when the unit of work commits, under the app's feed lock, so that the
    event's id, the feed's cursor, is in commit order (``db.commit_order``); the returned event
    has its id from then on. The endpoints are looked up now, outside the lock.
    """
    event = Event(app_id=app_id, login_id=login_id, type=type, payload=payload, created_at=now)
    endpoints = await _subscribers(session, app_id, type)

    async def write(session: AsyncSession) -> None:
        session.add(event)
        await session.flush()
        _queue(session, event, endpoints, now)

    commit_order.append(session, app_id, write)
    return event


async def fan_out(session: AsyncSession, event: Event, now: datetime) -> int:
    """Queue ``event`` for every enabled endpoint of its app that subscribes to its type."""
    endpoints = await _subscribers(session, event.app_id, event.type)
    _queue(session, event, endpoints, now)
    return len(endpoints)


async def _subscribers(session: AsyncSession, app_id: int, type: str) -> list[str]:
    """The app's enabled endpoints that subscribe to events of ``type``."""
    found = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.app_id == app_id, WebhookEndpoint.disabled_at.is_(None)
        )
    )
    return [endpoint_id for endpoint_id, types in found if types is None or type in types]


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
        mark_outbox(session)


def mark_outbox(session: AsyncSession) -> None:
    """Tell the unit of work that it queued background work (the runner is woken on commit)."""
    session.info["outbox"] = True


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


def login_deleted_payload(login_id: int) -> dict[str, Any]:
    return {"login_id": login_id, "deleted": True}


def sync_failed_payload(login_id: int, status: str, message: str) -> dict[str, Any]:
    return {"login_id": login_id, "status": f"login_{status}", "message": message}
