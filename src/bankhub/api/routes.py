"""The ``/v2`` routes and the public catalogue: HTTP in, service calls, the seed's shapes out."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request, Response, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, JSONBody
from litestar.response import File, Stream

from bankhub.accounts import services as accounts
from bankhub.accounts.details import account_bank_id
from bankhub.accounts.models import Account
from bankhub.api import schemas as s
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.api.openapi import (
    APP_AUTH,
    APP_SECURITY,
    LOGIN_AUTH,
    LOGIN_SECURITY,
    MAX_ID,
    E,
    PublicOperation,
    errors,
    query,
    whole_number,
)
from bankhub.audit import services as audit
from bankhub.catalogue import Service
from bankhub.clock import as_utc
from bankhub.customers import services as customers
from bankhub.hub import Hub, hub_of
from bankhub.lifecycle import erasure
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.money import format_amount
from bankhub.partners import modes
from bankhub.security import scopes
from bankhub.security.crypto import Cipher
from bankhub.security.pan import mask_pans
from bankhub.sync.refresh import next_possible, refresh_login

AnyRequest = Request[Any, Any, Any]

DATE = r"^\d{4}-\d{2}-\d{2}$"
_DATE = re.compile(DATE)
MEDIA_PREFIX = "/media/services"
MAX_PAGE = 10_000_000
#: the default cap of ``per_page`` (``BANKHUB_MAX_PAGE_SIZE``)
MAX_PER_PAGE = 1000
ACCOUNT_ID = query("An account of the login; all of them when left out", integer=(0, MAX_ID))


# --- catalogue -------------------------------------------------------------------------------


def _service_out(service: Service, media_path: str) -> s.ServiceOut:
    cta = service.call_to_action
    return s.ServiceOut(
        id=service.id,
        name=service.name,
        provider=service.provider,
        media_path=media_path,
        cover_file_name=service.cover_file_name,
        logo_file_name=service.logo_file_name,
        color=s.Color(primary=service.color_primary, secondary=service.color_secondary),
        type=service.type,
        country_code=service.country_code,
        has_balance=service.has_balance,
        call_to_action=s.CallToActionOut(cta.prompt, cta.text, cta.url) if cta else None,
    )


#: ``q``: a search of the catalogue (additive to the seed)
SEARCH = query(
    "Only the services whose name contains this text (any case), whose BIC starts with it "
    "(at least 4 characters) or whose BLZ it is",
    length=(0, 100),
)


def _search(q: str | None) -> str | None:
    if q is not None and len(q) > 100:
        raise ApiError(ErrorCode.BAD_REQUEST, "q is longer than 100 characters", {"q": q[:100]})
    return q


def _services(hub: Hub, request: AnyRequest, q: str | None) -> list[s.ServiceOut]:
    media_path = f"{hub.public_url(request)}{MEDIA_PREFIX}/"
    return [_service_out(service, media_path) for service in hub.catalogue.listed(_search(q))]


# Not cached in the server: a cached answer would skip the catalogue's reload (``Hub.ready``),
# and an imported bank the operator enables must show within seconds.
@get(
    "/service.json",
    opt=scopes.public(),
    tags=["service"],
    summary="The service catalogue (public)",
    operation_class=PublicOperation,
    responses=errors(E.BAD_REQUEST),
    description=(
        "Every service partners may connect: the sandbox banks, statement files and the "
        "imported banks the operator has enabled. `q` narrows it (name, BIC or BLZ)."
    ),
)
async def service_json(
    request: AnyRequest, q: Annotated[str | None, SEARCH] = None
) -> list[s.ServiceOut]:
    return _services(hub_of(request), request, q)


@get(
    "/v2/service",
    opt=scopes.read(),
    tags=["service"],
    summary="The service catalogue",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
    description=(
        "The services the calling app may connect: an app in `sandbox` mode sees only the "
        "sandbox banks, one in `live` mode only real institutions and statement files, one in "
        "`both` mode (the default) every service. `/service.json` lists the whole catalogue. "
        "Imported banks are listed once the operator enables them; `q` narrows the list "
        "(name, BIC or BLZ)."
    ),
)
async def service_list(
    request: AnyRequest, q: Annotated[str | None, SEARCH] = None
) -> s.ServiceListEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app = await hub.authenticate(session, request)
    media_path = f"{hub.public_url(request)}{MEDIA_PREFIX}/"
    listed = hub.catalogue.listed(_search(q))
    return s.ServiceListEnvelope(
        data=[_service_out(sv, media_path) for sv in modes.visible(app, listed)]
    )


@get(
    f"{MEDIA_PREFIX}/{{name:str}}",
    opt=scopes.public(),
    tags=["service"],
    summary="A service's logo or cover (public)",
    media_type="image/png",
    operation_class=PublicOperation,
    responses=errors(E.NOT_FOUND),
)
async def service_media(request: AnyRequest, name: FromPath[str]) -> File | Response[bytes]:
    catalogue = hub_of(request).catalogue
    path = catalogue.media_file(name)
    if path is None:
        imported = catalogue.imported_media(name)
        if imported is None:
            raise ApiError(
                ErrorCode.NOT_FOUND, f"No media file named {name!r}", {"name": name[:100]}
            )
        cache = {"Cache-Control": "public, max-age=86400"}
        if isinstance(imported, str):  # the operator's logo_url (https, checked at import)
            return Response(b"", status_code=302, headers={**cache, "Location": imported})
        return Response(imported, media_type="image/png", headers=cache)
    return File(
        path=path,
        media_type="image/png",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=86400"},
    )


# --- customers and tokens --------------------------------------------------------------------


@post(
    "/v2/customer",
    opt=scopes.write(),
    status_code=200,
    tags=["customer"],
    summary="Create a customer",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.CUSTOMER_EXISTS, E.CUSTOMER_CREATE_ERROR, body=True),
)
async def create_customer(request: AnyRequest, data: JSONBody[s.CustomerIn]) -> s.CustomerEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app = await hub.authenticate(session, request)
        customer = await customers.create_customer(session, hub.clock, app, data.identifier)
    return s.CustomerEnvelope(s.CustomerOut(customer.id, customer.identifier))


def _connect_url(hub: Hub, request: AnyRequest, token_id: str) -> str:
    return f"{hub.public_url(request)}/v2/connect/term/{token_id}"


@post(
    "/v2/token",
    opt=scopes.write(),
    status_code=200,
    tags=["token"],
    summary="Create a connect token",
    security=APP_SECURITY,
    responses=errors(
        *APP_AUTH, E.CUSTOMER_NOT_FOUND, E.SERVICE_NOT_FOUND, E.TOKEN_CREATE_ERROR, body=True
    ),
    description=(
        "`service_id` must be a service the app's mode allows (see `GET /v2/service`); "
        "another is refused with `ServiceNotFound`, naming the mode."
    ),
)
async def create_token(request: AnyRequest, data: JSONBody[s.TokenIn]) -> s.TokenEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app = await hub.authenticate(session, request)
        callback = logins.validate_callback_url(
            data.callback_url, allow_plain_http=hub.settings.is_dev
        )
        customer = await customers.get_customer(session, app, data.customer_id)
        service = modes.require_allowed(app, logins.require_service(hub.catalogue, data.service_id))
        token = await logins.create_token(
            session, hub.clock, hub.settings.token_ttl_seconds, app, customer, service, callback
        )
    return s.TokenEnvelope(s.TokenOut(token.id, _connect_url(hub, request, token.id)))


@post(
    "/v2/token/reconnect",
    opt=scopes.write(),
    status_code=200,
    tags=["token"],
    summary="A connect token to re-login",
    security=LOGIN_SECURITY,
    responses=errors(
        *LOGIN_AUTH, E.CUSTOMER_NOT_FOUND, E.SERVICE_NOT_FOUND, E.TOKEN_CREATE_ERROR, body=True
    ),
    description=(
        "Refused with `ServiceNotFound` when the login's service is one the app's mode no "
        "longer allows (a sandbox bank's login after the switch to `live`, or the reverse)."
    ),
)
async def reconnect_token(request: AnyRequest, data: JSONBody[s.ReconnectIn]) -> s.TokenEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app, login = await hub.authenticate_login(session, request)
        callback = logins.validate_callback_url(
            data.callback_url, allow_plain_http=hub.settings.is_dev
        )
        customer = await customers.get_customer(session, app, login.customer_id)
        service = modes.require_allowed(
            app, logins.require_service(hub.catalogue, login.service_id)
        )
        token = await logins.create_token(
            session,
            hub.clock,
            hub.settings.token_ttl_seconds,
            app,
            customer,
            service,
            callback,
            login,
        )
    return s.TokenEnvelope(s.TokenOut(token.id, _connect_url(hub, request, token.id)))


# --- logins ----------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_notices(notices: list[str] | None) -> list[str]:
    """Provider text as escaped plain text: no control characters, no markup, bounded."""
    return [html.escape(_CONTROL.sub("", str(n)))[:1000] for n in (notices or [])][:20]


def login_out(login: Login, hub: Hub) -> s.LoginOut:
    return s.LoginOut(
        id=login.id,
        customer_id=login.customer_id,
        service_id=login.service_id,
        status=f"login_{login.status}",
        active=login.active,
        consent_expires_at=s.wire_time(as_utc(login.consent_expires_at))
        if login.consent_expires_at
        else None,
        last_refresh_at=s.wire_time(as_utc(login.last_refresh_at))
        if login.last_refresh_at
        else None,
        next_refresh_possible_at=s.wire_time(next_possible(login, hub.settings.refresh_cooldown)),
        created_at=s.wire_time(as_utc(login.created_at)) or "",
        consent=s.ConsentOut(
            scopes=list(login.consent_scopes or []),
            granted_at=s.wire_time(as_utc(login.consent_granted_at))
            if login.consent_granted_at
            else None,
            expires_at=s.wire_time(as_utc(login.consent_expires_at))
            if login.consent_expires_at
            else None,
            history_days=login.consent_history_days,
        ),
        notices=plain_notices(login.notices),
    )


@get(
    "/v2/login",
    opt=audit.account_data(scopes.read()),
    tags=["login"],
    summary="Read the login named by login-secret",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH),
)
async def read_login(request: AnyRequest) -> s.LoginEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        _, login = await hub.authenticate_login(session, request)
        audit.account_data_read(
            request, resource="login", login_ids=[login.id], customer_id=login.customer_id
        )
        return s.LoginEnvelope(login_out(login, hub))


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
async def delete_login(request: AnyRequest) -> s.DeletedEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app, login = await hub.authenticate_login(session, request)
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
            request_id=audit.request_id(request),
        )
    await erasure.scrub(hub.db)  # nothing of the login's readable in the files once we answer
    return s.DeletedEnvelope(s.DeletedOut(upstream.login_id, True))


async def _set_active(request: AnyRequest, active: bool) -> int:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        _, login = await hub.authenticate_login(session, request)
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
async def activate_login(request: AnyRequest) -> s.ActivateEnvelope:
    return s.ActivateEnvelope(s.ActivateOut(await _set_active(request, True), True))


@put(
    "/v2/login/deactivate",
    opt=scopes.write(),
    tags=["login"],
    summary="Deactivate a login",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, write=True),
)
async def deactivate_login(request: AnyRequest) -> s.DeactivateEnvelope:
    return s.DeactivateEnvelope(s.DeactivateOut(await _set_active(request, False), True))


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
async def refresh(request: AnyRequest) -> s.RefreshEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        app, login = await hub.authenticate_login(session, request)
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
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(int(failure.retry_after))
        raise ApiError(
            ErrorCode.CONNECT_ERROR,
            failure.message,
            {
                "login_id": login.id,
                "status": f"login_{outcome.status}",
                "next_refresh_possible_at": s.wire_time(outcome.next_refresh_possible_at),
            },
            headers=headers,
        )
    return s.RefreshEnvelope(
        s.RefreshOut(
            id=outcome.login_id,
            refreshed=outcome.refreshed,
            last_refresh_at=s.wire_time(outcome.last_refresh_at),
            next_refresh_possible_at=s.wire_time(outcome.next_refresh_possible_at) or "",
            status=f"login_{outcome.status}",
        )
    )


# --- accounts and transactions ---------------------------------------------------------------


def account_out(account: Account, cipher: Cipher) -> s.AccountOut:
    return s.AccountOut(
        id=account.id,
        original_id=account_bank_id(cipher, account) or f"acc-{account.id}",
        login_id=account.login_id,
        name=mask_pans(account.name),
        balance=None
        if account.balance is None
        else format_amount(account.balance, account.currency),
        currency=account.currency,
        type=account.type,
    )


def wire_meta(row: accounts.TransactionView) -> dict[str, Any] | None:
    """``meta`` as the API shows it: what the bank or file gave, plus bankhub's marks (added
    keys only): ``status: "pending"`` on an item not booked yet, and on a booked item that
    replaced one, ``pending_transaction_id``, the id the pending item had (it is gone)."""
    meta = row.meta
    if row.status == accounts.PENDING:
        meta = {**(meta or {}), "status": accounts.PENDING}
    if row.pending_transaction_id is not None:
        meta = {**(meta or {}), "pending_transaction_id": row.pending_transaction_id}
    return meta


def transaction_out(row: accounts.TransactionView) -> s.TransactionOut:
    return s.TransactionOut(
        id=row.id,
        original_id=row.original_id,
        date=row.date.isoformat(),
        amount=format_amount(row.amount, row.currency),
        currency=row.currency,
        description=row.description,
        category=row.category,
        meta=wire_meta(row),
    )


@get(
    "/v2/account",
    opt=audit.account_data(scopes.read()),
    tags=["account"],
    summary="Accounts of the login named by login-secret",
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH),
)
async def list_accounts(request: AnyRequest) -> s.AccountListEnvelope:
    hub = hub_of(request)
    async with hub.db.transaction() as session:
        _, login = await hub.authenticate_login(session, request)
        logins.require_active(login)
        rows = await accounts.accounts_of(session, login)
        audit.account_data_read(
            request,
            resource="accounts",
            login_ids=[login.id],
            customer_id=login.customer_id,
            account_ids=[a.id for a in rows],
            rows=len(rows),
            session=audit.read_unit(session),
        )
        return s.AccountListEnvelope([account_out(a, hub.keyring) for a in rows])


def _date_param(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if not _DATE.match(value):
        raise ApiError(
            ErrorCode.BAD_REQUEST, f"{name} must be a date as YYYY-MM-DD", {name: value[:40]}
        )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            ErrorCode.BAD_REQUEST, f"{name} is not a valid date", {name: value}
        ) from None


def _int_param(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    number = whole_number(value, high)
    if number is None or number < low:
        raise ApiError(
            ErrorCode.BAD_REQUEST,
            f"{name} must be a whole number from {low} to {high}",
            {name: value[:40]},
        )
    return number


#: rows per slice of an answer streamed without ``page``/``per_page``
STREAM_SLICE = 1000
_LIST_ENCODER = msgspec.json.Encoder()


@get(
    "/v2/transaction",
    opt=audit.account_data(scopes.read()),
    tags=["transaction"],
    summary="Transactions of an account (newest first)",
    description=(
        "`end_date` is accepted as a synonym of `to_date`. Without `page` and `per_page` the "
        "answer holds every transaction of the range (streamed as it is read, for answers "
        "longer than 1000 rows). Pages are opt-in: `page` (from 1) and `per_page` (default "
        'and maximum 1000); a `Link: <...>; rel="next"` header names the next page. '
        '`meta.status` is `"pending"` on an item the bank has not booked yet; a booked item '
        "that replaced a pending one names it in `meta.pending_transaction_id` (that id is "
        "gone from then on)."
    ),
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, E.ACCOUNT_NOT_FOUND),
    response_headers=[
        ResponseHeader(
            name="Link",
            description='`<url>; rel="next"` when pages were asked for and more rows follow',
            required=False,
            documentation_only=True,
        )
    ],
)
async def list_transactions(
    request: AnyRequest,
    account_id: Annotated[str | None, ACCOUNT_ID] = None,
    from_date: Annotated[str | None, query("First day, `YYYY-MM-DD`", pattern=DATE)] = None,
    to_date: Annotated[str | None, query("Last day, `YYYY-MM-DD`", pattern=DATE)] = None,
    end_date: Annotated[str | None, query("Synonym of `to_date`", pattern=DATE)] = None,
    page: Annotated[str | None, query("Page, from 1", integer=(1, MAX_PAGE))] = None,
    per_page: Annotated[
        str | None, query("Rows per page (at most 1000)", integer=(1, MAX_PER_PAGE))
    ] = None,
) -> Response[s.TransactionListEnvelope]:
    hub = hub_of(request)
    start = _date_param("from_date", from_date)
    if to_date and end_date and to_date != end_date:
        raise ApiError(ErrorCode.BAD_REQUEST, "to_date and end_date disagree")
    end = _date_param("to_date" if to_date else "end_date", to_date or end_date)
    if start and end and start > end:
        raise ApiError(ErrorCode.BAD_REQUEST, "from_date is after to_date")
    paged = bool(page) or bool(per_page)
    limit = _int_param(
        "per_page", per_page, hub.settings.max_page_size, 1, hub.settings.max_page_size
    )
    page_no = _int_param("page", page, 1, 1, MAX_PAGE)
    if not paged:
        limit, page_no = STREAM_SLICE, 1
    wanted = None if account_id is None else whole_number(account_id)
    async with hub.db.transaction() as session:
        app = await hub.authenticate(session, request)
        secret = request.headers.get("login-secret")
        account: Account | None = None
        if wanted is None:
            login = await logins.login_by_secret(session, hub.hasher, app, secret)
        else:  # the login and the account in one round trip
            login, account = await accounts.login_with_account(
                session, hub.hasher, app, secret, wanted
            )
        logins.require_active(login)
        if account_id is not None:
            if wanted is None:
                raise ApiError(
                    ErrorCode.ACCOUNT_NOT_FOUND,
                    f"Cannot find account with id: {account_id[:40]}.",
                    {"account_id": account_id[:40]},
                )
            if account is None:
                raise accounts.account_not_found(wanted)
            ids = [account.id]
        else:
            ids = [a.id for a in await accounts.accounts_of(session, login)]
        rows = await accounts.transactions_of(
            session, login, ids, start, end, (page_no - 1) * limit, limit + 1
        )
        more = len(rows) > limit
        views = await accounts.opened_rows(session, hub.keyring, login.app_id, rows[:limit])
        answered = len(views)
        if more and not paged:
            answered = await accounts.count_transactions(session, login, ids, start, end)
        audit.account_data_read(
            request,
            resource="transactions",
            login_ids=[login.id],
            customer_id=login.customer_id,
            account_ids=ids,
            rows=answered,
            session=audit.read_unit(session),
        )
    if more and not paged:
        rest = accounts.transaction_slices(
            hub.db, hub.keyring, login, ids, start, end, rows[limit - 1], STREAM_SLICE
        )
        # the same document as below, written a slice at a time (the schema is the envelope's)
        streamed = Stream(_streamed(views, rest), media_type=MediaType.JSON)
        return cast(Response[s.TransactionListEnvelope], streamed)
    headers = {}
    if more:
        params = dict(request.query_params)
        params["page"] = str(page_no + 1)
        params["per_page"] = str(limit)
        query = urlencode(params)
        headers["Link"] = f'<{hub.public_url(request)}/v2/transaction?{query}>; rel="next"'
    body = s.TransactionListEnvelope([transaction_out(row) for row in views])
    return Response(body, headers=headers)


async def _streamed(
    first: list[accounts.TransactionView], rest: AsyncIterator[list[accounts.TransactionView]]
) -> AsyncIterator[bytes]:
    """The seed's ``{"data": [...], "version": "v2"}``, a slice of rows at a time: only one
    slice is ever in memory. A failure after the first bytes ends the answer short (invalid
    JSON), never as a well-formed document missing rows."""
    yield b'{"data":[' + _LIST_ENCODER.encode([transaction_out(r) for r in first])[1:-1]
    async for views in rest:
        yield b"," + _LIST_ENCODER.encode([transaction_out(r) for r in views])[1:-1]
    yield b'],"version":"' + s.VERSION.encode() + b'"}'


ROUTES = [
    service_json,
    service_list,
    service_media,
    create_customer,
    create_token,
    reconnect_token,
    read_login,
    activate_login,
    deactivate_login,
    delete_login,
    refresh,
    list_accounts,
    list_transactions,
]
