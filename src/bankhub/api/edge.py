"""The edge every HTTP request passes: one ASGI layer with one ``send`` wrapper.

What every answer needs from bankhub (its request id and context, a tenant-free start (S14),
the authentication outcome counted for its address (S18), HSTS (S26), ``Cache-Control:
no-store`` (S24) and the pages' headers, the usage counters, the latency histogram and the
access line) used to be six middlewares and three ``before_send`` hooks, each an ``async`` frame
and a ``send`` wrapper of its own on every request. Here they are one frame and one wrapper
(docs/architecture.md has the measured saving: tens of microseconds a request); each concern
is still its own function, in its own module, with its own tests.

Order, outermost first, as before: the tenant reset and the request's context, then the
observation (inside the request id, whose lines it writes); on the answer's start, the hooks,
then the outcome's settlement (before anything leaves), then the headers every answer carries.
What runs inside the application (HTTPS and blocks, rate limits, the connect hop's forwarder,
Idempotency-Key innermost) is Litestar's route middleware, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub import context as _context
from bankhub.api import request_context
from bankhub.config import Settings
from bankhub.db import tenancy
from bankhub.observability import http, logs
from bankhub.security import network
from bankhub.security.tls import HSTS, is_secure

#: a hook on the answer's start: ``(message, scope)``, as Litestar's ``before_send``
AnswerHook = Callable[[Message, Scope], Awaitable[None]]


class Edge:
    """Wraps the whole application (inside the connect hop's receiver, which must turn a peer's
    hop into the user's own request before anything looks at it)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        guard: network.AbuseGuard | None,
        hooks: Sequence[AnswerHook],
    ) -> None:
        self.app = app
        self.settings = settings
        self.guard = guard
        self.hooks = tuple(hooks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
        ):  # a websocket (Litestar answers lifespan itself): its own tenant-free start all the same
            tenant = tenancy.fresh_start()
            try:
                await self.app(scope, receive, send)
            finally:
                tenancy.restore(tenant)
            return
        request_id = request_context.given(scope) or request_context.fresh()
        context = request_context.RequestContext(request_id, scope)
        scope.setdefault("state", {})[request_context.STATE_KEY] = context
        hsts = is_secure(scope, self.settings)
        settlement = None if self.guard is None else network.Settlement(scope, self.guard)
        hooks = self.hooks
        status = 500  # what the server answers when the application raised before answering

        async def send_once(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                for hook in hooks:
                    await hook(message, scope)
                if settlement is not None:
                    await settlement.settle()
                status = message["status"]
                headers = MutableScopeHeaders.from_message(message)
                if hsts:
                    headers["Strict-Transport-Security"] = HSTS
                headers[request_context.HEADER] = request_id
            await send(message)

        tenant = tenancy.fresh_start()
        token = _context.enter(context)
        started = time.perf_counter()
        try:
            with logs.bound_request(request_id):
                try:
                    await self.app(scope, receive, send_once)
                finally:
                    if settlement is not None:
                        await settlement.settle()  # a request that sent no answer
                    http.served(scope, status, time.perf_counter() - started)
        finally:
            _context.leave(token)
            tenancy.restore(tenant)
