"""One login of an app, for debugging it: its status and consent, its accounts, its refreshes
and their outcomes, the status changes and errors its events record, the webhooks sent for it,
and a refresh button. The refresh is the very service ``PUT /v2/login/refresh`` calls
(``sync.refresh.refresh_login``), so its cool-down, the bank's daily quota and the one-refresh-
at-a-time lease hold here too; it is audited with the member's name.

Accounts are shown without balances or full numbers: those are the end user's financial data,
which leave bankhub only through the API. What the page does show of them (names, types,
currencies, masked numbers) is account data all the same, so each view is recorded in the audit
log as an API read is (S42), with the member as actor.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account
from bankhub.api.principal import HubDep, hub_of
from bankhub.audit import services as audit
from bankhub.context import current_id
from bankhub.customers.models import Customer
from bankhub.dashboard import roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import Refused, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.errors import CooldownActive, DomainError, LoginBusy
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bankhub.sync.refresh import next_possible, refresh_login
from bankhub.webhooks.models import WebhookDelivery

AnyRequest = Request[Any, Any, Any]
#: how much of each history the page shows, newest first
RECENT = 20
#: the events that tell a login's story: its status changes and its failures
STORY = (events.LOGIN_STATUS, events.SYNC_FAILED, events.CONSENT_EXPIRING)
DONE = {
    "refreshed": "The login was refreshed.",
    "unchanged": "The bank was asked; the refresh is recorded below.",
    "failed": "The refresh failed: its error is recorded below.",
}


def _login_path(client_id: str, login_id: int) -> str:
    return f"{APPS}/{client_id}/logins/{login_id}"


async def _login_of(db: AsyncSession, app_id: int, login_id: int) -> Login:
    login = await db.get(Login, login_id)
    if login is None or login.app_id != app_id:
        raise Refused(404, "No such login.")
    return login


async def _login_page(
    request: AnyRequest, client_id: str, login_id: int, notice: str | None = None
) -> Response[Any]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        login = await _login_of(db, app.id, login_id)
        customer = await db.get(Customer, login.customer_id)
        accounts = list(
            (
                await db.execute(
                    select(Account)
                    .where(Account.app_id == app.id, Account.login_id == login.id)
                    .order_by(Account.id)
                )
            ).scalars()
        )
        runs = list(
            (
                await db.execute(
                    select(SyncRun)
                    .where(SyncRun.app_id == app.id, SyncRun.login_id == login.id)
                    .order_by(SyncRun.id.desc())
                    .limit(RECENT)
                )
            ).scalars()
        )
        story = list(
            (
                await db.execute(
                    select(Event)
                    .where(
                        Event.app_id == app.id,
                        Event.login_id == login.id,
                        Event.type.in_(STORY),
                    )
                    .order_by(Event.id.desc())
                    .limit(RECENT)
                )
            ).scalars()
        )
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action=audit.READ,
            target_type="login",
            target_id=login.id,
            app_id=app.id,
            detail={
                "resource": "dashboard login page",
                "route": f"GET {request.url.path}"[:200],
                "customer_id": login.customer_id,
                "login_ids": [login.id],
                "account_ids": [a.id for a in accounts][: audit.MAX_LISTED],
            },
            request_id=current_id(),
        )
        sent = list(
            (
                await db.execute(
                    select(WebhookDelivery, Event)
                    .join(Event, Event.id == WebhookDelivery.event_id)
                    .where(
                        WebhookDelivery.app_id == app.id,
                        Event.app_id == app.id,
                        Event.login_id == login.id,
                    )
                    .order_by(WebhookDelivery.id.desc())
                    .limit(RECENT)
                )
            ).tuples()
        )
    cooldown = hub.settings.refresh_cooldown
    service = hub.catalogue.get(login.service_id)
    return page(
        request,
        "login.html",
        app=app,
        login=login,
        customer=customer,
        bank=service.name if service is not None else str(login.service_id),
        accounts=accounts,
        runs=runs,
        story=story,
        sent=sent,
        next_refresh=next_possible(login, cooldown),
        now=hub.clock(),
        done=DONE.get(request.query_params.get("done", "")),
        notice=notice,
    )


@get(
    f"{APPS}/{{client_id:str}}/logins/{{login_id:int}}",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def login_page(
    request: AnyRequest, client_id: FromPath[str], login_id: FromPath[int]
) -> Response[Any]:
    return await _login_page(request, client_id, login_id)


@post(
    f"{APPS}/{{client_id:str}}/logins/{{login_id:int}}/refresh",
    opt=roles.route(Action.LOGINS_REFRESH),
    include_in_schema=False,
)
async def refresh(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], login_id: FromPath[int]
) -> Response[Any]:
    """Refresh now, as ``PUT /v2/login/refresh`` does (its limits included)."""
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        await _login_of(db, app.id, login_id)
        app_id = app.id
    try:
        outcome = await refresh_login(
            hub.engine,
            hub.db,
            app_id,
            login_id,
            hub.settings.refresh_cooldown,
            lease=hub.settings.lease,
            owner=hub.lease_owner,
        )
    except CooldownActive as exc:
        when = exc.next_possible_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        why = f"Not refreshed: this login can be refreshed again at {when}."
        return await _login_page(request, client_id, login_id, why)
    except LoginBusy:
        why = "Not refreshed: a refresh of this login is under way."
        return await _login_page(request, client_id, login_id, why)
    except DomainError as exc:
        why = f"Not refreshed: {exc.message}"
        return await _login_page(request, client_id, login_id, why)
    async with hub.db.transaction() as db:
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action="login.refreshed",
            target_type="login",
            target_id=login_id,
            app_id=app_id,
            detail={"refreshed": outcome.refreshed, "status": outcome.status},
        )
    done = "refreshed" if outcome.refreshed else "unchanged"
    if outcome.failure is not None:
        done = "failed"
    return go(request, f"{_login_path(client_id, login_id)}?done={done}")


LOGIN_ROUTES = [login_page, refresh]
