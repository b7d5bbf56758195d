"""Helpers for the edge-protection tests: clients that arrive from a chosen address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select

from bankhub.app import create_app
from bankhub.audit.models import AuditEntry
from bankhub.hub import Hub
from tests.conftest import BASE_URL
from tests.support.asgi import asgi_transport


@asynccontextmanager
async def client_from(
    app: Litestar, address: str, *, base_url: str = BASE_URL
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose socket peer address, as the app sees it, is ``address``."""
    transport = asgi_transport(app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


def new_process(hub: Hub) -> Litestar:
    """A second app on the same hub and database: what another server process would be."""
    return create_app(hub)


async def audit_entries(hub: Hub, action: str) -> list[AuditEntry]:
    async with hub.db.transaction() as session:
        rows = await session.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return list(rows.scalars())


def envelope(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "extra"}, body
    return body
