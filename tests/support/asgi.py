"""An httpx transport that calls a bankhub app in the test's own process and event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import httpx
from litestar import Litestar

Message = MutableMapping[str, Any]
# httpx types an ASGI app with plain mappings, Litestar types its scopes and messages as
# TypedDicts: the same protocol at run time, but neither type is a subtype of the other (the
# callables' parameters are contravariant), so the app is named here as httpx spells it.
HttpxASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def plain_asgi(app: Litestar) -> HttpxASGIApp:
    """``app`` as an ASGI callable of plain mappings, for a test that writes its own scope."""
    return cast(HttpxASGIApp, app)


def asgi_transport(
    app: Litestar, *, client: tuple[str, int] = ("127.0.0.1", 123)
) -> httpx.ASGITransport:
    """httpx's ASGI transport over ``app``; ``client`` is the peer address the app sees."""
    return httpx.ASGITransport(app=plain_asgi(app), client=client)
