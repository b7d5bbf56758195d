"""What bankhub knows of the request in hand: its id, who authenticated it, what it read.

Every HTTP request gets an id: the caller's ``X-Request-Id`` when it is sane (1 to 64 letters,
digits, ``-``, ``_``, ``.`` or ``:``, given once), otherwise a fresh random one. It is sent back as
``X-Request-Id`` on every answer (errors included), bound into structlog's context for every log
line written while the request runs (``observability.logs``; the app joins it once the caller is
authenticated), and stored with every audit entry the request causes (``bankhub.audit``), also
by services that never see the request (through :func:`bankhub.context.current`, where the
context lives).

:class:`RequestIdMiddleware` wraps the whole application, outside Litestar's routing, so that
answers the router makes itself (404, 405) carry the id too.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub import context as _context
from bankhub.context import Caller, RequestContext, current, current_id, fresh, sane
from bankhub.observability import logs

__all__ = [
    "HEADER",
    "Caller",
    "RequestContext",
    "RequestIdMiddleware",
    "current",
    "current_id",
    "fresh",
    "of",
    "sane",
]

HEADER = "X-Request-Id"
_HEADER_KEY = b"x-request-id"
#: where the context lives in the ASGI scope's state
STATE_KEY = "bankhub.request"


def of(request: Request[Any, Any, Any]) -> RequestContext:
    """The request's context (made on first use for a request that bypassed the middleware)."""
    state = request.scope.setdefault("state", {})
    context = state.get(STATE_KEY)
    if not isinstance(context, RequestContext):
        context = current() or RequestContext(fresh(), request.scope)
        state[STATE_KEY] = context
    return context


def _given(scope: Scope) -> str | None:
    found = [value for name, value in scope.get("headers", ()) if name.lower() == _HEADER_KEY]
    if len(found) != 1:  # none, or ambiguous
        return None
    try:
        return sane(found[0].decode("ascii"))
    except UnicodeDecodeError:
        return None


class RequestIdMiddleware:
    """Gives each HTTP request its id and context, and sends the id back on the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _given(scope) or fresh()
        context = RequestContext(request_id, scope)
        scope.setdefault("state", {})[STATE_KEY] = context

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)[HEADER] = request_id
            await send(message)

        token = _context.enter(context)
        try:
            with logs.bound_request(request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _context.leave(token)
