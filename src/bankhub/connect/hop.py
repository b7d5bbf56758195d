"""The two ASGI ends of the connect hop (:mod:`bankhub.connect.routing`).

* :class:`ConnectForwarder`, a route middleware placed after the edge protections: a connect
  request whose session this process does not hold, and another process does, is passed there
  and its answer sent back as it is. This process, which the load balancer chose, checked and
  counted it as any other request (address blocks, rate limits), before any database lookup;
  the owner does not count it again. Its usage (per app) is counted by the owner, which knows
  the app.
* :class:`HopReceiver`, around the whole application: takes a peer's hop at
  :data:`~bankhub.connect.routing.HOP_PATH`, checks it, and serves the request it carries as if
  the user had sent it here (their address, scheme, headers and body).
"""

from __future__ import annotations

import logging

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from bankhub.api import request_context
from bankhub.connect.flow import ConnectFlow
from bankhub.connect.pages import CONNECT_COOKIES, CONNECT_PREFIX, ConnectEnded
from bankhub.connect.routes import MAX_STATEMENT_BYTES
from bankhub.connect.routing import (
    HOP_ANSWER,
    HOP_PATH,
    HOP_SIGNATURE,
    NOT_HERE,
    REFUSED,
    Elsewhere,
    HopRefused,
    Relayed,
    header,
)
from bankhub.errors import DomainError, ErrorCode
from bankhub.security.ratelimit import PASSED_ON
from bankhub.usage.counters import FORWARDED

log = logging.getLogger("bankhub.connect")

#: a request the hop brought (never passed on again, nor counted again)
HOPPED = PASSED_ON
#: paths every process serves alike: no session behind them
SHARED_PREFIXES = ("/v2/connect/static/", "/v2/connect/brand/")
RETURN_PATH = "/v2/connect/return"
#: the largest request passed on (the upload step's limit, and room for its form fields)
MAX_BODY = MAX_STATEMENT_BYTES + 64 * 1024
#: the envelope adds the request's description to its body
MAX_ENVELOPE = MAX_BODY + 256 * 1024
#: session ids and redirect states are ``secrets.token_urlsafe(32)``: 43 such characters
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _token_shaped(value: str | None) -> bool:
    return value is not None and len(value) == 43 and set(value) <= _TOKEN_CHARS


def _cookie(scope: Scope) -> str | None:
    """The connect session's cookie (its values are URL-safe: no quoting to undo)."""
    jar: dict[str, str] = {}
    for raw in (v for k, v in scope.get("headers", []) if k.lower() == b"cookie"):
        for part in raw.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            jar.setdefault(name, value)
    return next((jar[name] for name in CONNECT_COOKIES if jar.get(name)), None)


def _return_state(scope: Scope) -> str | None:
    if scope["path"] != RETURN_PATH:
        return None
    for part in bytes(scope.get("query_string", b"")).decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "state":
            return value
    return None


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            return None
        chunks.append(piece)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ConnectForwarder:
    """Route middleware: a connect request for a session another process holds goes there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == ScopeType.HTTP else ""
        if not path.startswith(CONNECT_PREFIX) or path.startswith(SHARED_PREFIXES):
            await self.app(scope, receive, send)
            return
        if scope["state"].get(HOPPED):
            await self.app(scope, receive, send)
            return
        flow: ConnectFlow = scope["litestar_app"].state.connect
        sid, state = _cookie(scope), _return_state(scope)
        route = None
        # The bank's redirect names its session by ``state``, whichever browser it reached;
        # anything else by the browser's cookie. Held here: served here, no lookup.
        if _token_shaped(state):
            if flow.holds(None, state):
                await self.app(scope, receive, send)
                return
            route = await flow.routing.find(state=state)
        if route is None and _token_shaped(sid) and not flow.holds(sid):
            route = await flow.routing.find(sid=sid)
        if route is None or route.owner == flow.routing.owner:
            await self.app(scope, receive, send)
            return
        body = await _body(receive, MAX_BODY)
        if body is None:
            raise HTTPException(status_code=413, detail="The request is too large.")
        passed = dict(scope)
        request_id = request_context.current_id()
        if request_id is not None:
            # the owner logs the request under this process's id for it (the user's own, when sane)
            passed["headers"] = [
                *((k, v) for k, v in scope["headers"] if k.lower() != b"x-request-id"),
                (b"x-request-id", request_id.encode("latin-1")),
            ]
        outcome = await flow.routing.relay(route, passed, body)
        if isinstance(outcome, Relayed):
            scope["state"][FORWARDED] = True
            await _answer(send, outcome.status, outcome.headers, outcome.body)
            return
        language = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"accept-language"),
            None,
        )
        ended = await flow.elsewhere(route.token_id, outcome, language)
        if ended is None:
            raise DomainError(
                ErrorCode.CONNECT_ERROR,
                "Your connection is being handled by another of our servers, which this one "
                "cannot reach. Go back to the app and start again.",
            )
        refusal = ConnectEnded(ended)
        if outcome is Elsewhere.UNREACHABLE:
            refusal.retry_after = 5
        raise refusal


class HopReceiver:
    """Around the whole application: the requests peers pass on for this process's sessions."""

    def __init__(self, app: ASGIApp, flow: ConnectFlow) -> None:
        self.app = app
        self.flow = flow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] != HOP_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _plain(send, 405, "POST only", REFUSED)
            return
        envelope = await _body(receive, MAX_ENVELOPE)
        if envelope is None:
            await _plain(send, 413, "too large", REFUSED)
            return
        routing = self.flow.routing
        try:
            signature = header(list(scope["headers"]), HOP_SIGNATURE.encode())
            hop = routing.open_hop(signature, envelope)
        except HopRefused as refused:
            log.warning("a connect hop was refused: %s", refused)
            await _plain(send, 403, str(refused), REFUSED)
            return
        if hop.owner != routing.owner:
            # a process that held the session once listened here; its sessions went with it
            await _plain(send, 421, "the session's process is gone", NOT_HERE)
            return
        scope.update(hop.scope)  # type: ignore[typeddict-item]
        scope.setdefault("state", {})[HOPPED] = True
        given = [hop.body]

        async def replay() -> ReceiveMessage:
            if given:
                event: HTTPRequestEvent = {
                    "type": "http.request",
                    "body": given.pop(),
                    "more_body": False,
                }
                return event
            return await receive()

        await self.app(scope, replay, send)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    whole: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(whole)


async def _plain(send: Send, status: int, text: str, said: str) -> None:
    """The hop layer's own answer (never a page): ``said`` tells the sending process why."""
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (HOP_ANSWER.encode(), said.encode()),
    ]
    await _answer(send, status, headers, body)


def forwarder(app: ASGIApp) -> ASGIApp:
    """The :class:`ConnectForwarder` as an entry of Litestar's middleware list."""
    return ConnectForwarder(app)
