"""A refresh of one login: cool-down, unattended session, fetch, apply, statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bankhub.api.errors import ApiError, ErrorCode
from bankhub.api.schemas import wire_time
from bankhub.clock import as_utc
from bankhub.connectors.base import ConnectorFailure
from bankhub.db.engine import Database
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.sync.engine import ApplySummary, SyncEngine


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    login_id: int
    refreshed: bool
    status: str
    last_refresh_at: datetime | None
    next_refresh_possible_at: datetime
    summary: ApplySummary | None = None
    failure: ConnectorFailure | None = None


def next_possible(login: Login, cooldown: timedelta) -> datetime | None:
    if login.last_attempt_at is None:
        return None
    return as_utc(login.last_attempt_at) + cooldown


async def refresh_login(
    engine: SyncEngine, db: Database, app_id: int, login_id: int, cooldown: timedelta
) -> RefreshOutcome:
    """Refresh now, unless the cool-down since the last attempt has not passed.

    Three short units of work: claim the attempt, fetch with no transaction open, then apply.
    """
    now = engine.clock()
    async with db.transaction() as session:
        login = await session.get(Login, login_id)
        if login is None or login.app_id != app_id:
            raise ApiError(ErrorCode.LOGIN_NOT_FOUND, extra={"login_id": login_id})
        logins.require_active(login)
        possible = next_possible(login, cooldown)
        if possible is not None and now < possible:
            last = login.last_refresh_at
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                f"Login {login.id} can be refreshed again at {wire_time(possible)}",
                {
                    "id": login.id,
                    "refreshed": False,
                    "last_refresh_at": wire_time(as_utc(last)) if last else None,
                    "next_refresh_possible_at": wire_time(possible),
                },
            )
        login.last_attempt_at = now
        service = engine.catalogue.get(login.service_id)
        state = dict(login.connector_state or {})
        last_refresh_at = login.last_refresh_at
    if service is None:
        raise ApiError(ErrorCode.SERVICE_NOT_FOUND, extra={"service_id": login.service_id})

    run = engine.build(service, state)
    failure: ConnectorFailure | None = None
    try:
        await engine.guarded(run.connector.open_session())
        result = await engine.fetch(run, engine.refresh_since(last_refresh_at, service))
    except ConnectorFailure as exc:
        failure = exc

    async with db.transaction() as session:
        login = await session.get(Login, login_id)
        if login is None:
            raise ApiError(ErrorCode.LOGIN_NOT_FOUND, extra={"login_id": login_id})
        summary = None
        if failure is not None:
            engine.record_failure(session, login, failure, run.state.load())
        else:
            summary = await engine.apply(session, login, result)
        last = login.last_refresh_at
        return RefreshOutcome(
            login_id=login.id,
            refreshed=failure is None,
            status=login.status,
            last_refresh_at=as_utc(last) if last else None,
            next_refresh_possible_at=now + cooldown,
            summary=summary,
            failure=failure,
        )
