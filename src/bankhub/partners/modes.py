"""Sandbox and live mode per app: which services of the catalogue an app may connect.

* ``sandbox``: only the simulated banks (services served by the ``sandbox`` connector). No real
  bank credentials or statements ever pass through the app, whoever holds its keys: the mode
  for building and testing an integration.
* ``live``: only real institutions (every other connector, statement files included); the
  sandbox banks are hidden from the app's end users.
* ``both``: every service, as before modes existed; apps start here, so nothing changes for an
  existing integration until the team chooses.

The catalogue an app reads (``GET /v2/service``) lists only what its mode allows, and the routes
that pick a service (``POST /v2/token``, ``POST /v2/token/reconnect``) and the connect page
(a token made before a switch) refuse the others with ``ServiceNotFound``. Logins that already
exist keep refreshing after a switch: the team removes them in Consent Control if it wants to.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.catalogue import Service
from bankhub.errors import ErrorCode, NotFound
from bankhub.partners.models import App

SANDBOX_CONNECTOR = "sandbox"


class Mode(StrEnum):
    BOTH = "both"
    SANDBOX = "sandbox"
    LIVE = "live"


DESCRIPTIONS = {
    Mode.SANDBOX: "sandbox: the simulated banks only",
    Mode.LIVE: "live: real banks and statement files only; the sandbox banks are hidden",
    Mode.BOTH: "both: every service of the catalogue",
}


def is_sandbox(service: Service) -> bool:
    return service.connector == SANDBOX_CONNECTOR


def mode_of(app: App) -> Mode:
    try:
        return Mode(app.mode)
    except ValueError:
        return Mode.BOTH


def allows(app: App, service: Service) -> bool:
    mode = mode_of(app)
    if mode is Mode.SANDBOX:
        return is_sandbox(service)
    if mode is Mode.LIVE:
        return not is_sandbox(service)
    return True


def visible(app: App, services: Iterable[Service]) -> list[Service]:
    return [service for service in services if allows(app, service)]


def require_allowed(app: App, service: Service) -> Service:
    """The service, or ``ServiceNotFound`` saying that the app's mode hides it."""
    if allows(app, service):
        return service
    kind = "a sandbox bank" if is_sandbox(service) else "a live service"
    raise NotFound(
        ErrorCode.SERVICE_NOT_FOUND,
        f"Service {service.id} is {kind}, and this app is in {mode_of(app).value} mode.",
        {"service_id": service.id, "mode": mode_of(app).value},
    )


async def set_mode(
    session: AsyncSession, app: App, value: str, *, actor: str, now: datetime
) -> Mode:
    """Switch the app's mode (ValueError for an unknown one); audited."""
    mode = Mode(value)
    old = mode_of(app)
    app.mode, app.mode_set_by, app.mode_set_at = mode.value, actor[:260], now
    audit.record(
        session,
        now=now,
        actor=actor,
        action="app.mode_changed",
        target_type="app",
        target_id=app.id,
        app_id=app.id,
        detail={"old_mode": old.value, "new_mode": mode.value},
    )
    await session.flush()
    return mode
