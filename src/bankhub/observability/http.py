"""One observation per HTTP answer: the latency histogram and the access line.

An ASGI middleware of our own rather than Litestar's ``PrometheusMiddleware``: that one runs
inside the router, so the router's own 404 and 405 answers never reach it, and it labels a
request by its raw path unless grouping is on, where a path no route matches still comes as it
is (a scanner would make a series per probe). This one wraps the router (inside the request id,
which its lines carry) and takes the route's template from the scope once routing set it.

The access line (logger ``bankhub.access``) names the method, the path without its query, the
route template, the status and the time taken; the request id and, once the caller was
authenticated, the app come from the log context (``observability.logs``).
"""

from __future__ import annotations

import logging
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub.observability import metrics

access = logging.getLogger("bankhub.access")
#: a label takes what a client cannot vary at will
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the application raised before answering

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template") or metrics.UNMATCHED
            method = scope.get("method", "")
            metrics.request_served(method if method in METHODS else "other", route, status, seconds)
            access.info(
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={"route": route, "status": status, "duration_ms": round(seconds * 1000, 2)},
            )
