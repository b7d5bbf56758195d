"""Consent Control: an app's customers and their logins with status and consent expiry; revoke a
login (its consent is withdrawn at the bank, then it and its data are erased) or erase a whole
customer. The same erasure as ``DELETE /v2/login`` and ``DELETE /v2/customer``; audited with
the member's name. Both are confirmed on a page that says what goes, and need the password and
code again (S7); a change posted after the window waits for them and is then carried out."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy import select

from bankhub.api.principal import HubDep
from bankhub.audit import services as audit
from bankhub.customers.models import Customer
from bankhub.dashboard import paging, roles, services
from bankhub.dashboard.app_routes import APPS, app_of
from bankhub.dashboard.pages import Refused, confirm_page, confirmed, go, member_of, page, visit_of
from bankhub.dashboard.roles import Action
from bankhub.lifecycle import erasure
from bankhub.logins.models import Login

AnyRequest = Request[Any, Any, Any]
#: newest first; the id orders customers made in the same instant
CUSTOMERS = paging.Keyset((paging.Key(Customer.created_at, "time"), paging.Key(Customer.id, "str")))
Form = URLEncodedBody[dict[str, str]]
DONE = {
    "login-revoked": "The login was revoked: consent withdrawn and its data erased.",
    "customer-erased": "The customer and everything fetched for them were erased.",
}


@get(f"{APPS}/{{client_id:str}}/customers", opt=roles.route(Action.VIEW), include_in_schema=False)
async def customers_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str]
) -> Response[Any]:
    """Customers (newest first, filtered by identifier, paged) with their logins."""
    wanted = (request.query_params.get("q") or "")[:255].strip()
    window = paging.window_of(request.query_params, default=50)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        query = select(Customer).where(Customer.app_id == app.id)
        if wanted:
            query = query.where(Customer.identifier.contains(wanted, autoescape=True))
        found = await paging.fetch(db, query, CUSTOMERS, window, count=True)
        customers: list[Customer] = found.rows
        logins = list(
            (
                await db.execute(
                    select(Login)
                    .where(
                        Login.app_id == app.id,
                        Login.customer_id.in_([c.id for c in customers]),
                    )
                    .order_by(Login.id)
                )
            ).scalars()
        )
    by_customer: dict[str, list[Login]] = {}
    for login in logins:
        by_customer.setdefault(login.customer_id, []).append(login)
    names = {s.id: s.name for s in hub.catalogue.services}
    return page(
        request,
        "customers.html",
        app=app,
        customers=[(c, by_customer.get(c.id, [])) for c in customers],
        found=found,
        filters={"q": wanted},
        services=names,
        q=wanted,
        now=hub.clock(),
        notice=found.problem,
        done=DONE.get(request.query_params.get("done", "")),
    )


def _may_manage(request: AnyRequest) -> None:
    if not visit_of(request).can(Action.CONSENT_MANAGE.value):
        raise Refused(403, "Your role does not allow this.")


async def _login_of(hub: Any, client_id: str, login_id: int) -> tuple[Any, Login]:
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        login = await db.get(Login, login_id)
        if login is None or login.app_id != app.id:
            raise Refused(404, "No such login.")
        return app, login


def _revoke_login_confirmation(
    request: AnyRequest, hub: Any, app: Any, login: Login
) -> Response[Any]:
    bank = next((s.name for s in hub.catalogue.services if s.id == login.service_id), "the bank")
    return confirm_page(
        request,
        title=f"Revoke login {login.id}?",
        consequences=[
            f"The consent at {bank} is withdrawn where the bank allows it.",
            f"Login {login.id}, its accounts and every transaction fetched through it are "
            "erased; the app's login-secret for it is refused from then on.",
            "The app gets a login.deleted event. This cannot be undone: the customer would have "
            "to connect the bank again.",
        ],
        action=f"{APPS}/{app.client_id}/logins/{login.id}/revoke",
        button="Revoke login and erase its data",
        back=f"{APPS}/{app.client_id}/customers",
    )


@get(
    f"{APPS}/{{client_id:str}}/logins/{{login_id:int}}/revoke",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def revoke_login_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], login_id: FromPath[int]
) -> Response[Any]:
    _may_manage(request)
    app, login = await _login_of(hub, client_id, login_id)
    return _revoke_login_confirmation(request, hub, app, login)


@post(
    f"{APPS}/{{client_id:str}}/logins/{{login_id:int}}/revoke",
    opt=roles.route(Action.CONSENT_MANAGE),
    include_in_schema=False,
)
async def revoke_login(
    hub: HubDep,
    request: AnyRequest,
    client_id: FromPath[str],
    login_id: FromPath[int],
    data: Form,
) -> Response[Any]:
    app, login = await _login_of(hub, client_id, login_id)
    if not confirmed(data):
        return _revoke_login_confirmation(request, hub, app, login)
    app_id, upstream = app.id, erasure.upstream_of(login)
    withdrawn = await erasure.withdraw_consents(hub.engine, hub.catalogue, [upstream])
    async with hub.db.transaction() as db:
        erased = await erasure.erase_logins(
            db, app_id=app_id, login_ids=[login_id], now=hub.clock(), withdrawn=[login_id]
        )
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action="login.erased",
            target_type="login",
            target_id=login_id,
            app_id=app_id,
            detail=erased.detail(consents_withdrawn=withdrawn),
        )
    await erasure.scrub(hub.db)
    return go(request, f"{APPS}/{client_id}/customers?done=login-revoked")


async def _customer_of(hub: Any, client_id: str, customer_id: str) -> tuple[Any, Customer, int]:
    """The app, its customer and how many logins they have (404 for another app's)."""
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        customer = await db.get(Customer, customer_id[:36])
        if customer is None or customer.app_id != app.id:
            raise Refused(404, "No such customer.")
        count = len(await erasure.customer_logins(db, app.id, customer.id))
        return app, customer, count


def _erase_confirmation(
    request: AnyRequest, app: Any, customer: Customer, logins: int
) -> Response[Any]:
    return confirm_page(
        request,
        title=f"Erase customer {customer.identifier}?",
        consequences=[
            (
                f"The consent of each of their {logins} login{'' if logins == 1 else 's'} is "
                "withdrawn at the bank where the bank allows it."
                if logins
                else "They have no login: no bank is asked anything."
            ),
            f"The customer {customer.identifier} ({customer.id}), their logins, accounts and "
            "every transaction fetched for them are erased.",
            "The app gets a login.deleted event for each login. This cannot be undone.",
        ],
        action=f"{APPS}/{app.client_id}/customers/{customer.id}/erase",
        button="Erase customer and all their data",
        back=f"{APPS}/{app.client_id}/customers",
    )


@get(
    f"{APPS}/{{client_id:str}}/customers/{{customer_id:str}}/erase",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def erase_customer_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], customer_id: FromPath[str]
) -> Response[Any]:
    _may_manage(request)
    app, customer, count = await _customer_of(hub, client_id, customer_id)
    return _erase_confirmation(request, app, customer, count)


@post(
    f"{APPS}/{{client_id:str}}/customers/{{customer_id:str}}/erase",
    opt=roles.route(Action.CONSENT_MANAGE),
    include_in_schema=False,
)
async def erase_customer(
    hub: HubDep,
    request: AnyRequest,
    client_id: FromPath[str],
    customer_id: FromPath[str],
    data: Form,
) -> Response[Any]:
    app, customer, count = await _customer_of(hub, client_id, customer_id)
    if not confirmed(data):
        return _erase_confirmation(request, app, customer, count)
    async with hub.db.transaction() as db:
        app_id = app.id
        upstreams = [
            erasure.upstream_of(login)
            for login in await erasure.customer_logins(db, app_id, customer_id[:36])
        ]
    withdrawn = await erasure.withdraw_consents(hub.engine, hub.catalogue, upstreams)
    async with hub.db.transaction() as db:
        erased = await erasure.erase_customer(
            db,
            app_id=app_id,
            customer_id=customer_id[:36],
            now=hub.clock(),
            withdrawn=[u.login_id for u in upstreams],
        )
        if erased is None:
            raise Refused(404, "No such customer.")
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action="customer.erased",
            target_type="customer",
            target_id=customer_id[:36],
            app_id=app_id,
            detail=erased.detail(consents_withdrawn=withdrawn),
        )
    await erasure.scrub(hub.db)
    if erased.late:
        await erasure.withdraw_consents(hub.engine, hub.catalogue, erased.late)
    return go(request, f"{APPS}/{client_id}/customers?done=customer-erased")


CONSENT_ROUTES = [
    customers_page,
    revoke_login_page,
    revoke_login,
    erase_customer_page,
    erase_customer,
]
