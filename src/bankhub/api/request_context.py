"""What bankhub knows of the request in hand: its id, who authenticated it, what it read.

Every HTTP request gets an id: the caller's ``X-Request-Id`` when it is sane (1 to 64 letters,
digits, ``-``, ``_``, ``.`` or ``:``, given once), otherwise a fresh random one. It is sent back as
``X-Request-Id`` on every answer (errors included), bound into structlog's context for every log
line written while the request runs (``observability.logs``; the app joins it once the caller is
authenticated), and stored with every audit entry the request causes
(``bankhub.audit``), also by services that never see the request (through :func:`current`).

:class:`RequestIdMiddleware` wraps the whole application, outside Litestar's routing, so that
answers the router makes itself (404, 405) carry the id too.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub.observability import logs

if TYPE_CHECKING:
    from bankhub.hub import Principal

HEADER = "X-Request-Id"
_HEADER_KEY = b"x-request-id"
MAX_LENGTH = 64
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: where the context lives in the ASGI scope's state
STATE_KEY = "bankhub.request"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who authenticated the request, as plain values (they outlive its units of work)."""

    app_id: int
    client_id: str
    #: the API key used, directly or through the bearer token granted with it
    key_id: str | None
    #: the access token's id (``jti``) when the caller presented a bearer token
    token_id: str | None

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        app = principal.app
        return cls(app.id, app.client_id, principal.key_id, principal.token_id)


@dataclass(slots=True)
class RequestContext:
    request_id: str
    #: the ASGI scope of the request (its route handler, once routed)
    scope: Scope | None = None
    #: the caller, once :meth:`bankhub.hub.Hub.principal` has authenticated it
    caller: Caller | None = None
    #: the audit entry of the account data this request answers with, waiting for the audit
    #: writer (``bankhub.audit``); written before the answer leaves
    pending_read: dict[str, Any] | None = None
    #: the request's account-data read is recorded (pending above, or in its own unit of work)
    read_audited: bool = False


_current: ContextVar[RequestContext | None] = ContextVar("bankhub_request", default=None)


def sane(value: str | None) -> str | None:
    """The caller's id when it is one bankhub keeps, else None."""
    if value is None or not _SANE.fullmatch(value):
        return None
    return value


def fresh() -> str:
    return secrets.token_hex(16)


def current() -> RequestContext | None:
    """The context of the request this task is serving, if any."""
    return _current.get()


def current_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def of(request: Request[Any, Any, Any]) -> RequestContext:
    """The request's context (made on first use for a request that bypassed the middleware)."""
    state = request.scope.setdefault("state", {})
    context = state.get(STATE_KEY)
    if not isinstance(context, RequestContext):
        context = _current.get() or RequestContext(fresh(), request.scope)
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

        token = _current.set(context)
        try:
            with logs.bound_request(request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
