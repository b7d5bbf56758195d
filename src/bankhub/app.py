"""The ASGI application: routes, the error envelope, request checks, lifecycle."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, Message, Middleware, Scope

from bankhub import supervision
from bankhub.api import audit as edge_audit
from bankhub.api import edge, idempotency, json_bodies
from bankhub.api.handlers import EXCEPTION_HANDLERS
from bankhub.api.openapi import openapi_config
from bankhub.api.principal import DEPENDENCIES, hub_of
from bankhub.api.router import ROUTES, openapi_json
from bankhub.config import Settings
from bankhub.connect import hop
from bankhub.connect.flow import ConnectFlow
from bankhub.connect.pages import page_security_headers
from bankhub.connect.templates import template_engine
from bankhub.connectors.sandbox.pages import router as sandbox_bank_router
from bankhub.dashboard.pages import PREFIX as DASHBOARD_PREFIX
from bankhub.dashboard.router import dashboard_router
from bankhub.errors import DomainError, ErrorCode
from bankhub.hub import Hub
from bankhub.jobs import serving
from bankhub.observability import logs, metrics
from bankhub.operations.routes import OPERATOR_PATHS
from bankhub.requestlog import buffer as request_log
from bankhub.requestlog import store as request_log_store
from bankhub.security import network, shared
from bankhub.security.ratelimit import RateLimitMiddleware, RateLimits
from bankhub.security.tls import TransportMiddleware
from bankhub.sftp import embedded as sftp
from bankhub.signatures.guard import SignatureGuard
from bankhub.statements.routes import STATEMENT_PATH
from bankhub.usage import counters as usage_counters
from bankhub.usage import store as usage_store

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


async def check_request(request: AnyRequest) -> None:
    """Before every handler: the maintenance switch, then the JSON body rules of the seed (and
    bankhub's nesting limit, before anything decodes the body)."""
    path = request.url.path
    if path in OPERATOR_PATHS:
        return  # answered whatever the database and the switch say (they check for themselves)
    hub = hub_of(request)
    await hub.ready()
    if await hub.maintenance_on():
        raise DomainError(ErrorCode.SERVER_MAINTENANCE, retry_after=300)
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or path.startswith(FORM_PREFIXES):
        return
    if request.method == "POST" and path in MULTIPART_PATHS:
        return  # the route reads (and size-limits) its own multipart body
    body = await request.body()
    if not body:
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_CONTENT_TYPES:
        raise DomainError(
            ErrorCode.CONTENT_INPUT_INVALID,
            extra={"content_type": request.headers.get("content-type", "")[:100]},
        )
    json_bodies.decode(body)  # ContentInputInvalid, or DataInvalid when nested too deep


async def after_handler(response: Response[Any]) -> Response[Any]:
    """After every handler, before anything is sent: the audit entry of an answer carrying
    account data is committed first (S42; a failure answers 500 instead), then headers."""
    await edge_audit.before_answer(response.status_code or 200)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def no_store_for_credentials(message: Message, scope: Scope) -> None:
    """S24: nothing answered under /v2, or to a caller who sent credentials, may be cached."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    sent = {name.decode("latin-1").lower() for name, _ in scope.get("headers", [])}
    if scope["path"].startswith("/v2/") or sent & set(CREDENTIAL_HEADERS):
        MutableScopeHeaders.from_message(message)["Cache-Control"] = "no-store"


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
            # the SFTP statement drop, when BANKHUB_SFTP_PORT is set (docs/sftp.md)
            drop = sftp.running(hub.settings, hub.db, hub.engine, hub.clock, guard)
            async with serving.background(hub), drop:
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
    app = Litestar(
        route_handlers=[
            *ROUTES,
            sandbox_bank_router,
            dashboard_router(),
            *([openapi_json] if docs else []),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=check_request,
        after_request=after_handler,
        # Once the edge has checked and counted it, a connect step for a session another
        # process holds goes there. Innermost: Idempotency-Key (S40) sees the route's own
        # answer, errors included.
        middleware=[
            *edge_middleware(hub, guard, store),
            hop.forwarder,
            idempotency.middleware(hub),
        ],
        openapi_config=openapi_config() if docs else None,
        template_config=TemplateConfig(instance=template_engine()),
        lifespan=[
            lifespan,
            usage_store.flusher(hub.db, hub.usage, hub.settings.usage_flush_seconds),
            request_log_store.flusher(hub.db, hub.request_log, hub.settings.usage_flush_seconds),
        ],
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
    # signed requests (docs/signatures.md): nonces in the same store, keys' absence cached
    # under the authentication cache's invalidation
    app.state.signatures = SignatureGuard(store, hub.clock, hub.auth_cache)
    # One layer outside the router (api.edge), so that every answer, the router's own too,
    # carries the request id and HSTS (S26), starts with no tenant (S14), counts the outcome of
    # its authentication before it leaves (S18), is observed, and gets the answer's hooks: no
    # caching (S24), the pages' headers, the usage counters. Outermost: a peer's hop becomes
    # the user's own request before anything looks at it.
    hooks: list[edge.AnswerHook] = [
        no_store_for_credentials,
        page_security_headers,
        usage_counters.hook(hub.usage, hub.clock),
        request_log.RequestLogHook(hub.request_log, hub.clock),
    ]
    app.asgi_handler = hop.HopReceiver(
        edge.Edge(app.asgi_handler, hub.settings, guard, hooks), app.state.connect
    )
    return app


def create_app_from_env() -> Litestar:
    """The granian target: settings from ``BANKHUB_*``; the schema must already be migrated.
    A shared store that cannot be used stops the worker here, never a request later."""
    logs.configure()  # the worker's own log chain, redacted (S23)
    settings = Settings()
    shared.check(settings)
    return create_app(Hub.build(settings))


def worker_app() -> Litestar:
    """granian's factory target in ``serve``'s worker process: tie the process to ``serve``
    first (``bankhub.supervision``), then build the application from ``BANKHUB_*``."""
    parent = os.environ.get(supervision.PARENT_PID_ENV, "")
    if parent.isdigit():
        supervision.die_with_parent(int(parent))
    return create_app_from_env()
