"""``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: for load balancers, orchestrators and
Prometheus, outside the partner API (none is in the OpenAPI description).

``/healthz`` answers while the process runs, whatever its database does; ``/readyz`` answers 503
naming the checks that failed (``operations.readiness``). Neither needs credentials; both take
plain HTTP (the load balancer's probe) and count against no limit.

``/metrics`` (S32): with ``BANKHUB_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>``
reads it, and a wrong or missing token is a failed authentication like any other (S18);
without one it is open in dev and test and absent (404) in production.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from litestar import MediaType, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bankhub.api.principal import HubDep
from bankhub.config import Settings
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.observability import metrics
from bankhub.operations import gauges, readiness
from bankhub.security import scopes

log = logging.getLogger("bankhub.metrics")

#: paths that answer without the API's gates: no credentials, plain HTTP, no rate limit
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
#: paths the maintenance switch and the keyring's loading leave alone (``app.check_request``)
OPERATOR_PATHS = PROBE_PATHS | {"/metrics"}


@get(
    "/healthz",
    opt=scopes.public(),
    tags=["operations"],
    summary="Liveness",
    include_in_schema=False,
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    opt=scopes.public(),
    tags=["operations"],
    summary="Readiness",
    include_in_schema=False,
)
async def readyz(hub: HubDep) -> Response[dict[str, Any]]:
    found = await readiness.check(hub)
    body = {
        "status": "ok" if found.ready else "unavailable",
        "checks": {name: "ok" if ok else "failed" for name, ok in found.checks.items()},
    }
    return Response(
        body,
        status_code=200 if found.ready else 503,
        media_type=MediaType.JSON,
        headers={"Cache-Control": "no-store"},
    )


def _admit(request: Request[Any, Any, Any], settings: Settings) -> None:
    token = settings.metrics_token
    if token is None:
        if settings.is_dev:
            return
        raise NotFound(ErrorCode.NOT_FOUND, f"No resource at {request.url.path}")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise DomainError(
            ErrorCode.INVALID_TOKEN,
            "The metrics need the bearer token configured as BANKHUB_METRICS_TOKEN",
            challenge='Bearer realm="metrics", error="invalid_token"',
        )


@get(
    "/metrics",
    opt=scopes.public(),
    tags=["operations"],
    summary="Prometheus metrics",
    include_in_schema=False,
)
async def metrics_text(request: Request[Any, Any, Any], hub: HubDep) -> Response[bytes]:
    _admit(request, hub.settings)
    body = generate_latest(metrics.collecting_registry())
    try:
        shared = await gauges.read(hub)
    except Exception as exc:  # noqa: BLE001 - the processes' own numbers are still worth reading
        log.warning("metrics: reading the shared gauges failed: %s", type(exc).__name__)
    else:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(gauges.SharedCollector(shared))
        body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


OPERATION_ROUTES = [healthz, readyz, metrics_text]
