"""What bankhub knows of the request in hand: its id, who authenticated it, what it read.

Every HTTP request gets an id: the caller's ``X-Request-Id`` when it is sane (1 to 64 letters,
digits, ``-``, ``_``, ``.`` or ``:``, given once), otherwise a fresh random one. It is sent back as
``X-Request-Id`` on every answer (errors included), bound into structlog's context for every log
line written while the request runs (``observability.logs``; the app joins it once the caller is
authenticated), and stored with every audit entry the request causes (``bankhub.audit``), also
by services that never see the request (through :func:`bankhub.context.current`, where the
context lives).

The edge (:class:`bankhub.api.edge.Edge`) wraps the whole application, outside Litestar's
routing, so that answers the router makes itself (404, 405) carry the id too.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.types import Scope

from bankhub.context import Caller, RequestContext, current, current_id, fresh, sane

__all__ = [
    "HEADER",
    "Caller",
    "RequestContext",
    "current",
    "current_id",
    "fresh",
    "given",
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


def given(scope: Scope) -> str | None:
    """The caller's ``X-Request-Id`` when sane and given once."""
    found = [value for name, value in scope.get("headers", ()) if name.lower() == _HEADER_KEY]
    if len(found) != 1:  # none, or ambiguous
        return None
    try:
        return sane(found[0].decode("ascii"))
    except UnicodeDecodeError:
        return None
