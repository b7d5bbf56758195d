"""Apps: creation with secrets shown once, and authentication from the seed's headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.errors import ApiError, ErrorCode
from bankhub.audit import services as audit
from bankhub.clock import Clock
from bankhub.partners.models import App
from bankhub.security.secrets import (
    SecretHasher,
    new_api_secret,
    new_client_id,
)

SERVICE_SECRET = "service-secret"  # noqa: S105 - the purpose label of a keyed hash  # nosec B105
APP_SECRET = "app-secret"  # noqa: S105 - the purpose label of a keyed hash  # nosec B105


@dataclass(frozen=True, slots=True)
class IssuedApp:
    """An app with its secrets in clear: the only time they exist outside the caller's hands."""

    app: App
    service_secret: str
    app_secret: str

    def as_dict(self) -> dict[str, str]:
        return {
            "client_id": self.app.client_id,
            "service_secret": self.service_secret,
            "app_secret": self.app_secret,
        }


async def create_app(
    session: AsyncSession, hasher: SecretHasher, clock: Clock, name: str, *, is_demo: bool = False
) -> IssuedApp:
    service_secret, app_secret = new_api_secret(), new_api_secret()
    app = App(
        name=name,
        client_id=new_client_id(),
        service_secret_hash=hasher.hash(service_secret, purpose=SERVICE_SECRET),
        app_secret_hash=hasher.hash(app_secret, purpose=APP_SECRET),
        is_demo=is_demo,
        created_at=clock(),
    )
    session.add(app)
    await session.flush()
    return IssuedApp(app, service_secret, app_secret)


async def reissue_secrets(session: AsyncSession, hasher: SecretHasher, app: App) -> IssuedApp:
    """New secrets for an existing app; the old ones stop working when the unit of work commits."""
    service_secret, app_secret = new_api_secret(), new_api_secret()
    app.service_secret_hash = hasher.hash(service_secret, purpose=SERVICE_SECRET)
    app.app_secret_hash = hasher.hash(app_secret, purpose=APP_SECRET)
    await session.flush()
    return IssuedApp(app, service_secret, app_secret)


async def count_apps(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(App.id)))).scalar_one())


async def find_demo_app(session: AsyncSession) -> App | None:
    result = await session.execute(select(App).where(App.is_demo.is_(True)).order_by(App.id))
    return result.scalars().first()


async def authenticate(
    session: AsyncSession,
    hasher: SecretHasher,
    client_id: str | None,
    service_secret: str | None,
    app_secret: str | None,
) -> App:
    """The app named by ``client-id`` if ``service-secret`` or ``app-secret`` matches its hash."""
    if not client_id:
        raise ApiError(ErrorCode.CLIENT_NOT_FOUND, "The client-id header is missing")
    if len(client_id) > 64:
        raise ApiError(ErrorCode.CLIENT_NOT_FOUND, extra={"clientId": client_id[:64]})
    app = (
        await session.execute(select(App).where(App.client_id == client_id))
    ).scalar_one_or_none()
    if app is None:
        raise ApiError(
            ErrorCode.CLIENT_NOT_FOUND,
            f"Cannot find client with id: '{client_id}'.",
            {"clientId": client_id},
        )
    if service_secret is None and app_secret is None:
        raise ApiError(
            ErrorCode.CREDENTIAL_INVALID, "A service-secret or app-secret header is required"
        )
    ok = False
    # Each given secret is checked; both are compared in constant time against their own hash.
    if service_secret is not None:
        ok = hasher.matches(service_secret, app.service_secret_hash, purpose=SERVICE_SECRET)
    if not ok and app_secret is not None:
        ok = hasher.matches(app_secret, app.app_secret_hash, purpose=APP_SECRET)
    if not ok:
        raise ApiError(ErrorCode.CREDENTIAL_INVALID)
    return app


#: the longest retention an app may choose: a year (seed 004 keeps 24 hours by default)
MAX_RETENTION_HOURS = 24 * 365
MIN_RETENTION_HOURS = 1


def _chooser(chosen_by: str) -> str:
    name = chosen_by.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise ApiError(
            ErrorCode.DATA_INVALID,
            "chosen_by must name the person or system that chose, in 1 to 200 printable characters",
            {"problems": ["chosen_by"]},
        )
    return name


async def _recorded(
    session: AsyncSession,
    app: App,
    action: str,
    detail: dict[str, Any],
    now: datetime,
    actor: str,
    request_id: str | None,
) -> App:
    """Audit a setting the app chose, and write it."""
    audit.record(
        session,
        now=now,
        actor=actor,
        action=action,
        target_type="app",
        target_id=app.id,
        app_id=app.id,
        detail=detail,
        request_id=request_id,
    )
    await session.flush()
    return app


async def set_retention(
    session: AsyncSession,
    app: App,
    hours: int,
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """Record the app's retention window, who chose it and when; audited."""
    if isinstance(hours, bool) or not MIN_RETENTION_HOURS <= hours <= MAX_RETENTION_HOURS:
        raise ApiError(
            ErrorCode.DATA_INVALID,
            f"hours must be a whole number from {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS}",
            {"problems": ["hours"]},
        )
    name = _chooser(chosen_by)
    old = app.retention_hours
    app.retention_hours = hours
    app.retention_set_by = name
    app.retention_set_at = now
    return await _recorded(
        session,
        app,
        "app.retention_changed",
        {"old_hours": old, "new_hours": hours, "chosen_by": name},
        now,
        actor,
        request_id,
    )


async def set_credential_vault(
    session: AsyncSession,
    app: App,
    enabled: bool,
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """Record the app's credential-vault opt-in, who chose it and when; audited."""
    name = _chooser(chosen_by)
    old = bool(app.credential_vault)
    app.credential_vault = enabled
    app.credential_vault_set_by = name
    app.credential_vault_set_at = now
    return await _recorded(
        session,
        app,
        "app.credential_vault_changed",
        {"old_enabled": old, "new_enabled": enabled, "chosen_by": name},
        now,
        actor,
        request_id,
    )
