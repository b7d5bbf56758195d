"""Recording events in the caller's unit of work, in the seed's webhook payload shapes."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.events.models import Event

NEW_TRANSACTIONS = "transactions.new"
LOGIN_STATUS = "login.status"


def reference_id() -> str:
    """A short random reference like the seed's ``hsSU83HnX``."""
    return secrets.token_urlsafe(7)[:9]


def record(
    session: AsyncSession,
    *,
    app_id: int,
    type: str,
    payload: dict[str, Any],
    now: datetime,
    login_id: int | None = None,
) -> Event:
    event = Event(app_id=app_id, login_id=login_id, type=type, payload=payload, created_at=now)
    session.add(event)
    return event


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
