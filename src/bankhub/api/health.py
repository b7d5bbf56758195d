"""Liveness for orchestrators (``/healthz``): the process answers."""

from __future__ import annotations

from litestar import get

from bankhub.security import scopes


@get(
    "/healthz",
    opt=scopes.public(),
    tags=["operations"],
    summary="Liveness",
    include_in_schema=False,
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


HEALTH_ROUTES = [healthz]
