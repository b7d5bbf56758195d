"""Logins' routes: ``/v2/login`` (read, delete), ``/v2/login/activate``, ``/deactivate`` and
``/refresh``."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, put

from bankhub.api.audit import account_data_read
from bankhub.api.openapi import LOGIN_AUTH, LOGIN_SECURITY, E, errors
from bankhub.api.principal import AuthDep, HubDep
from bankhub.api.schemas import wire_time
from bankhub.audit import services as audit
from bankhub.errors import RefreshFailed
from bankhub.lifecycle import erasure
from bankhub.logins.schemas import (
    ActivateEnvelope,
    ActivateOut,
    DeactivateEnvelope,
    DeactivateOut,
    DeletedEnvelope,
    DeletedOut,
    LoginEnvelope,
    RefreshEnvelope,
    RefreshOut,
    login_out,
)
from bankhub.security import scopes
from bankhub.sync.refresh import refresh_login

AnyRequest = Request[Any, Any, Any]


@get(
    "/v2/login",
    opt=audit.account_data(scopes.read()),
    tags=["login"],
    summary="Read the login named by login-secret",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH),
)
async def read_login(hub: HubDep, auth: AuthDep, request: AnyRequest) -> LoginEnvelope:
    async with hub.db.transaction() as session:
        _, login = await auth.login(session)
        account_data_read(
            request, resource="login", login_ids=[login.id], customer_id=login.customer_id
        )
        return LoginEnvelope(login_out(login, hub.settings.refresh_cooldown))


@delete(
    "/v2/login",
    opt=scopes.write(),
    status_code=200,
    tags=["login"],
    summary="Delete the login and everything fetched through it",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, write=True),
    description=(
        "Withdraws the consent at the bank where the connector can, then removes the login, "
        "its accounts, transactions, events and pending webhook deliveries. A `login.deleted` "
        "event tells the app's webhook endpoints."
    ),
)
async def delete_login(hub: HubDep, auth: AuthDep, request: AnyRequest) -> DeletedEnvelope:
    async with hub.db.transaction() as session:
        app, login = await auth.login(session)
        app_id, actor, upstream = app.id, audit.app_actor(app), erasure.upstream_of(login)
    withdrawn = await erasure.withdraw_consents(hub.engine, hub.catalogue, [upstream])
    async with hub.db.transaction() as session:
        erased = await erasure.erase_logins(
            session,
            app_id=app_id,
            login_ids=[upstream.login_id],
            now=hub.clock(),
            withdrawn=[upstream.login_id],
        )
        audit.record(
            session,
            now=hub.clock(),
            actor=actor,
            action="login.erased",
            target_type="login",
            target_id=upstream.login_id,
            app_id=app_id,
            detail=erased.detail(consents_withdrawn=withdrawn),
            request_id=audit.request_id(),
        )
    await erasure.scrub(hub.db)  # nothing of the login's readable in the files once we answer
    return DeletedEnvelope(DeletedOut(upstream.login_id, True))


async def _set_active(hub: HubDep, auth: AuthDep, active: bool) -> int:
    async with hub.db.transaction() as session:
        _, login = await auth.login(session)
        login.active = active
        login.updated_at = hub.clock()
        return login.id


@put(
    "/v2/login/activate",
    opt=scopes.write(),
    tags=["login"],
    summary="Activate a login",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, write=True),
)
async def activate_login(hub: HubDep, auth: AuthDep) -> ActivateEnvelope:
    return ActivateEnvelope(ActivateOut(await _set_active(hub, auth, True), True))


@put(
    "/v2/login/deactivate",
    opt=scopes.write(),
    tags=["login"],
    summary="Deactivate a login",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, write=True),
)
async def deactivate_login(hub: HubDep, auth: AuthDep) -> DeactivateEnvelope:
    return DeactivateEnvelope(DeactivateOut(await _set_active(hub, auth, False), True))


@put(
    "/v2/login/refresh",
    opt=scopes.write(),
    tags=["login"],
    summary="Fetch new data from the bank now",
    description=(
        "`BadRequest` within the cool-down, while another refresh runs, for a deactivated "
        "login, or for a statement login (nothing to refresh: import a newer file); "
        "`ConnectError` (503, with `Retry-After` when the bank gave one) when the bank "
        "cannot be reached or refuses for now."
    ),
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, E.SERVICE_NOT_FOUND, E.CONNECT_ERROR, write=True),
)
async def refresh(hub: HubDep, auth: AuthDep, request: AnyRequest) -> RefreshEnvelope:
    async with hub.db.transaction() as session:
        app, login = await auth.login(session)
    outcome = await refresh_login(
        hub.engine,
        hub.db,
        app.id,
        login.id,
        hub.settings.refresh_cooldown,
        lease=hub.settings.lease,
        owner=hub.lease_owner,
    )
    failure = outcome.failure
    if failure is not None and not failure.needs_user:
        raise RefreshFailed(
            failure.message,
            login_id=login.id,
            status=f"login_{outcome.status}",
            next_possible_at=outcome.next_refresh_possible_at,
            retry_after=None if failure.retry_after is None else int(failure.retry_after),
        )
    return RefreshEnvelope(
        RefreshOut(
            id=outcome.login_id,
            refreshed=outcome.refreshed,
            last_refresh_at=wire_time(outcome.last_refresh_at),
            next_refresh_possible_at=wire_time(outcome.next_refresh_possible_at) or "",
            status=f"login_{outcome.status}",
        )
    )


LOGIN_ROUTES = [read_login, activate_login, deactivate_login, delete_login, refresh]
