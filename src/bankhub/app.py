"""The ASGI application: routes, the error envelope, request checks, lifecycle."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, Message, Middleware, Scope

from bankhub import __version__
from bankhub.accounts.routes import ACCOUNT_ROUTES
from bankhub.api import json_bodies, request_context
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.api.openapi import finish
from bankhub.api.routes import ROUTES
from bankhub.audit import services as audit
from bankhub.config import Settings
from bankhub.connect import hop
from bankhub.connect.flow import ConnectFlow
from bankhub.connect.pages import error_page, is_page_path, page_security_headers
from bankhub.connect.routes import CONNECT_ROUTES
from bankhub.connect.templates import template_engine
from bankhub.connectors.sandbox.pages import router as sandbox_bank_router
from bankhub.customers.routes import CUSTOMER_ROUTES
from bankhub.dashboard.pages import PREFIX as DASHBOARD_PREFIX
from bankhub.dashboard.pages import dashboard_error_page
from bankhub.dashboard.router import dashboard_router
from bankhub.db.tenancy import TenantReset
from bankhub.events.routes import EVENT_ROUTES
from bankhub.hub import Hub, hub_of
from bankhub.jobs import serving
from bankhub.oauth.routes import OAUTH_ROUTES
from bankhub.observability import logs, metrics
from bankhub.observability.http import RequestObserver
from bankhub.operations.routes import OPERATION_ROUTES, OPERATOR_PATHS
from bankhub.partners.key_routes import KEY_ROUTES
from bankhub.partners.routes import APP_ROUTES
from bankhub.security import idempotency, network, ratelimit, shared
from bankhub.security.ratelimit import RateLimitMiddleware, RateLimits
from bankhub.security.tls import HstsMiddleware, TransportMiddleware
from bankhub.statements.routes import STATEMENT_PATH, STATEMENT_ROUTES
from bankhub.usage import counters as usage_counters
from bankhub.usage import store as usage_store
from bankhub.webhooks.routes import WEBHOOK_ROUTES

log = logging.getLogger("bankhub")

AnyRequest = Request[Any, Any, Any]

JSON_CONTENT_TYPES = ("application/json",)
CREDENTIAL_HEADERS = (
    "client-id",
    "service-secret",
    "app-secret",
    "login-secret",
    "authorization",
)
#: paths whose POST bodies are HTML forms, not the API's JSON
FORM_PREFIXES = ("/v2/connect/", "/sandbox-bank/", "/oauth/", f"{DASHBOARD_PREFIX}/")
#: API routes that take a multipart upload instead of JSON (exact paths)
MULTIPART_PATHS = frozenset({STATEMENT_PATH})


def _error_response(request: AnyRequest, error: ApiError) -> Response[Any]:
    # S33: a request whose app credential was not verified is its address's anonymous traffic,
    # refused whatever its own error once the address is over its limit
    refused = ratelimit.refusal(request.scope)
    if refused is not None and error.status != 429:
        error = refused
    headers = {"Cache-Control": "no-store", **error.headers}
    if request.url.path == DASHBOARD_PREFIX or request.url.path.startswith(f"{DASHBOARD_PREFIX}/"):
        return dashboard_error_page(request, error)
    if is_page_path(request.url.path):
        return error_page(request, error, headers)
    return Response(
        content=error.body(), status_code=error.status, headers=headers, media_type=MediaType.JSON
    )


def handle_api_error(request: AnyRequest, exc: ApiError) -> Response[Any]:
    if network.is_auth_failure(exc, request.headers):
        # S18: noted here, by error code, wherever the credential was refused; counted for the
        # address once the answer is sent (network.OutcomeMiddleware)
        network.note_failure(request.scope)
    audit.api_auth_failure(request, exc)  # S42: failed authentications, coalesced
    return _error_response(request, exc)


def _problem(item: dict[str, Any]) -> str:
    """Litestar's message plus the field it is about, as msgspec writes it (``at `$.name```)."""
    message, key = str(item.get("message", "")), str(item.get("key", ""))
    if not message or not key or key == "data":
        return message
    where = f"$.{key}" if item.get("source") == "body" else key
    return f"{message} - at `{where[:100]}`"


def handle_validation(request: AnyRequest, exc: ValidationException) -> Response[Any]:
    # Litestar raises this for bodies that are JSON but do not fit the request model.
    detail = exc.extra if isinstance(exc.extra, list) else []
    problems = [_problem(item) for item in detail if isinstance(item, dict)]
    message = "; ".join(p for p in problems if p) or "Data is invalid"
    return _error_response(
        request, ApiError(ErrorCode.DATA_INVALID, message, {"problems": problems})
    )


def handle_not_found(request: AnyRequest, exc: NotFoundException) -> Response[Any]:
    return _error_response(
        request, ApiError(ErrorCode.NOT_FOUND, f"No resource at {request.url.path[:200]}")
    )


def handle_method(request: AnyRequest, exc: MethodNotAllowedException) -> Response[Any]:
    error = ApiError(
        ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.url.path[:200]}"
    )
    if exc.headers and "allow" in {k.lower() for k in exc.headers}:
        error.headers.update(exc.headers)
    return _error_response(request, error)


def handle_http(request: AnyRequest, exc: HTTPException) -> Response[Any]:
    code = ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL_ERROR
    error = ApiError(code, exc.detail if exc.status_code < 500 else None)
    response = _error_response(request, error)
    response.status_code = exc.status_code
    return response


def handle_internal(request: AnyRequest, exc: Exception) -> Response[Any]:
    # Generic body, never a traceback (S32); the details go to the operator's log only.
    log.error(
        "unhandled error on %s %s (request %s): %s",
        request.method,
        request.url.path,
        request_context.of(request).request_id,
        type(exc).__name__,
        exc_info=exc,
    )
    return _error_response(request, ApiError(ErrorCode.INTERNAL_ERROR))


async def check_request(request: AnyRequest) -> None:
    """Before every handler: the maintenance switch, then the JSON body rules of the seed (and
    bankhub's nesting limit, before anything decodes the body)."""
    path = request.url.path
    if path in OPERATOR_PATHS:
        return  # answered whatever the database and the switch say (they check for themselves)
    hub = hub_of(request)
    await hub.ready()
    if await hub.maintenance_on():
        raise ApiError(ErrorCode.SERVER_MAINTENANCE, headers={"Retry-After": "300"})
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or path.startswith(FORM_PREFIXES):
        return
    if request.method == "POST" and path in MULTIPART_PATHS:
        return  # the route reads (and size-limits) its own multipart body
    body = await request.body()
    if not body:
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_CONTENT_TYPES:
        raise ApiError(
            ErrorCode.CONTENT_INPUT_INVALID,
            extra={"content_type": request.headers.get("content-type", "")[:100]},
        )
    json_bodies.decode(body)  # ContentInputInvalid, or DataInvalid when nested too deep


async def after_handler(response: Response[Any]) -> Response[Any]:
    """After every handler, before anything is sent: the audit entry of an answer carrying
    account data is committed first (S42; a failure answers 500 instead), then headers."""
    await audit.before_answer(response.status_code or 200)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def no_store_for_credentials(message: Message, scope: Scope) -> None:
    """S24: nothing answered under /v2, or to a caller who sent credentials, may be cached."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    sent = {name.decode("latin-1").lower() for name, _ in scope.get("headers", [])}
    if scope["path"].startswith("/v2/") or sent & set(CREDENTIAL_HEADERS):
        MutableScopeHeaders.from_message(message)["Cache-Control"] = "no-store"


@get("/openapi.json", include_in_schema=False, opt={"scope": "public"})
async def openapi_json(request: AnyRequest) -> dict[str, Any]:
    spec = idempotency.describe(finish(request.app.openapi_schema), request.app.routes)
    schema: dict[str, Any] = spec.to_schema()
    return schema


def edge_middleware(
    hub: Hub, guard: network.AbuseGuard | None, store: shared.SharedStore
) -> list[Middleware]:
    """Outermost first: HTTPS (S26), address blocks (S18), rate limits (S33, counted in
    ``store``, the one every process shares). What must reach every answer (HSTS, the address's
    authentication outcome) wraps the whole application instead, in :func:`create_app`."""
    settings = hub.settings

    def transport(app: ASGIApp) -> ASGIApp:
        return TransportMiddleware(app, settings)

    stack: list[Middleware] = [transport]
    if guard is not None:

        def blocks(app: ASGIApp) -> ASGIApp:
            return network.BlockMiddleware(app, guard, settings)

        stack.append(blocks)
    if settings.rate_limits_on:
        limits = RateLimits(settings, store)

        def rate_limits(app: ASGIApp) -> ASGIApp:
            return RateLimitMiddleware(app, limits)

        stack.append(rate_limits)
    return stack


_frozen = False


def freeze_start_up() -> None:
    """Once per process: what start-up built (modules, the ORM's metadata, templates, the
    catalogue) lives as long as the process, so it leaves the garbage collector's view. A full
    collection would otherwise walk all of it, holding the event loop for tens of milliseconds
    in the middle of whatever request (or sync) allocated the object that set it off."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def create_app(hub: Hub) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await hub.ready()
        freeze_start_up()
        try:
            async with serving.background(hub):
                yield
        finally:
            await app.state.connect.close()
            await store.close()
            await hub.close()
            metrics.process_ended()

    # S18, S33: rate limits, failure runs and blocks in the store every process shares
    store = shared.SharedStore(hub.settings)
    guard = (
        network.AbuseGuard(hub.settings, hub.db, hub.clock, store=store)
        if hub.settings.blocking_on
        else None
    )
    docs = hub.settings.docs_public  # S32
    openapi = OpenAPIConfig(
        title="bankhub — Finsify Hub API v2",
        version=__version__,
        path="/docs",
        components=Components(
            security_schemes={
                "client-id": SecurityScheme(
                    type="apiKey", name="client-id", security_scheme_in="header"
                ),
                "service-secret": SecurityScheme(
                    type="apiKey", name="service-secret", security_scheme_in="header"
                ),
                "app-secret": SecurityScheme(
                    type="apiKey", name="app-secret", security_scheme_in="header"
                ),
                "login-secret": SecurityScheme(
                    type="apiKey", name="login-secret", security_scheme_in="header"
                ),
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An access token from POST /oauth/token",
                ),
            }
        ),
        security=[
            {"client-id": [], "service-secret": []},
            {"client-id": [], "app-secret": []},
            {"bearer": []},
        ],
    )
    app = Litestar(
        route_handlers=[
            *ACCOUNT_ROUTES,
            *ROUTES,
            *CUSTOMER_ROUTES,
            *APP_ROUTES,
            *KEY_ROUTES,
            *OAUTH_ROUTES,
            *EVENT_ROUTES,
            *WEBHOOK_ROUTES,
            *STATEMENT_ROUTES,
            *CONNECT_ROUTES,
            *OPERATION_ROUTES,
            sandbox_bank_router,
            dashboard_router(),
            *([openapi_json] if docs else []),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            ValidationException: handle_validation,
            NotFoundException: handle_not_found,
            MethodNotAllowedException: handle_method,
            HTTPException: handle_http,
            Exception: handle_internal,
        },
        before_request=check_request,
        after_request=after_handler,
        before_send=[
            no_store_for_credentials,
            page_security_headers,
            usage_counters.hook(hub.usage, hub.clock),
        ],
        # S14: no request inherits another's tenant; TenantReset wraps everything else.
        # Once the edge has checked and counted it, a connect step for a session another
        # process holds goes there. Innermost: Idempotency-Key (S40) sees the route's own
        # answer, errors included.
        middleware=[
            TenantReset,
            *edge_middleware(hub, guard, store),
            hop.forwarder,
            idempotency.middleware(hub),
        ],
        openapi_config=openapi if docs else None,
        template_config=TemplateConfig(instance=template_engine()),
        lifespan=[lifespan, usage_store.flusher(hub)],
        request_max_body_size=1024 * 1024,
        debug=False,
        # logging is the process's (observability.logs), never reconfigured by the framework
        logging_config=None,
    )
    app.state.hub = hub
    app.state.connect = ConnectFlow(hub)
    app.state.guard = guard
    #: ``app.state.shared_store.unavailable``: operations that went without the shared store
    app.state.shared_store = store
    # Outside the router, so that every answer carries the request id, the router's own too,
    # and HSTS (S26); the outcome of each authentication counts once its answer is sent (S18).
    handler = app.asgi_handler
    if guard is not None:
        handler = network.OutcomeMiddleware(handler, guard, hub.settings)
    handler = HstsMiddleware(handler, hub.settings)
    # Outermost: a peer's hop becomes the user's own request before anything looks at it.
    # Inside the request id, whose lines it writes: every answer's latency and access line.
    handler = RequestObserver(handler)
    app.asgi_handler = hop.HopReceiver(
        request_context.RequestIdMiddleware(handler), app.state.connect
    )
    return app


def create_app_from_env() -> Litestar:
    """The granian target: settings from ``BANKHUB_*``; the schema must already be migrated.
    A shared store that cannot be used stops the worker here, never a request later."""
    logs.configure()  # the worker's own log chain, redacted (S23)
    settings = Settings()
    shared.check(settings)
    return create_app(Hub.build(settings))
