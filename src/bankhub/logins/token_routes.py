"""Connect tokens' routes: ``POST /v2/token`` and ``POST /v2/token/reconnect``."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from bankhub import i18n
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, LOGIN_AUTH, LOGIN_SECURITY, E, errors
from bankhub.api.principal import AuthDep, HubDep, public_url
from bankhub.customers import services as customers
from bankhub.errors import DomainError, ErrorCode
from bankhub.logins import services as logins
from bankhub.logins.schemas import ReconnectIn, TokenEnvelope, TokenIn, TokenOut
from bankhub.partners import modes
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]


def _locale(value: str | None) -> str | None:
    """The connect page's language given with a token, as one of the supported locales;
    another is refused with ``DataInvalid`` naming those that are."""
    if value is None:
        return None
    try:
        return i18n.supported(value)
    except i18n.UnsupportedLocale as unsupported:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            str(unsupported),
            {"locale": value[:40], "supported": list(i18n.SUPPORTED)},
        ) from None


def _connect_url(hub: HubDep, request: AnyRequest, token_id: str) -> str:
    return f"{public_url(hub, request)}/v2/connect/term/{token_id}"


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
        "another is refused with `ServiceNotFound`, naming the mode. `locale` (optional, "
        "beyond the seed) chooses the connect page's language: "
        + ", ".join(f"`{code}`" for code in i18n.SUPPORTED)
        + "; without it the browser's `Accept-Language` chooses, else the bank's country."
    ),
)
async def create_token(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[TokenIn]
) -> TokenEnvelope:
    locale = _locale(data.locale)
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        callback = logins.validate_callback_url(
            data.callback_url, allow_plain_http=hub.settings.is_dev
        )
        customer = await customers.get_customer(session, app, data.customer_id)
        service = modes.require_allowed(app, logins.require_service(hub.catalogue, data.service_id))
        token = await logins.create_token(
            session, hub.clock, hub.settings.token_ttl_seconds, app, customer, service, callback
        )
        token.locale = locale
    return TokenEnvelope(TokenOut(token.id, _connect_url(hub, request, token.id)))


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
        "longer allows (a sandbox bank's login after the switch to `live`, or the reverse). "
        "`locale` as for `POST /v2/token`."
    ),
)
async def reconnect_token(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[ReconnectIn]
) -> TokenEnvelope:
    locale = _locale(data.locale)
    async with hub.db.transaction() as session:
        app, login = await auth.login(session)
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
        token.locale = locale
    return TokenEnvelope(TokenOut(token.id, _connect_url(hub, request, token.id)))


TOKEN_ROUTES = [create_token, reconnect_token]
