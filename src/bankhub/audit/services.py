"""Writing audit entries in the caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit.models import AuditEntry
from bankhub.partners.models import App


def app_actor(app: App) -> str:
    return f"app:{app.client_id}"


def request_id(request: Request[Any, Any, Any] | None) -> str | None:
    if request is None:
        return None
    value = request.headers.get("x-request-id")
    return value[:64] if value else None


def record(
    session: AsyncSession,
    *,
    now: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    app_id: int | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        app_id=app_id,
        actor=actor[:200],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        detail=detail or {},
        request_id=request_id,
        at=now,
    )
    session.add(entry)
    return entry
