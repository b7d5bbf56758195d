"""One observation per HTTP answer: the latency histogram and the access line.

Observed by the edge (:class:`bankhub.api.edge.Edge`) rather than Litestar's
``PrometheusMiddleware``: that one runs inside the router, so the router's own 404 and 405
answers never reach it, and it labels a request by its raw path unless grouping is on, where a
path no route matches still comes as it is (a scanner would make a series per probe). The edge
wraps the router (inside the request id, which its lines carry); the route's template comes
from the scope once routing set it.

The access line (logger ``bankhub.access``) names the method, the path without its query, the
route template, the status and the time taken; the request id and, once the caller was
authenticated, the app come from the log context (``observability.logs``).
"""

from __future__ import annotations

import logging

from litestar.types import Scope

from bankhub.observability import metrics

access = logging.getLogger("bankhub.access")
#: a label takes what a client cannot vary at will
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def served(scope: Scope, status: int, seconds: float) -> None:
    """Observe one answer: ``status`` as sent (500 when the application raised before
    answering), ``seconds`` from the request's start to the application's end."""
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
