"""Fixtures: the sdist's dummy FinTS server and connectors built against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import ConnectorContext, MemoryStateStore
from bankhub.connectors.fints import FinTSConnector

from .dummy import BLZ, DummyServer, Wrapper, dummy_server

Build = Callable[[MemoryStateStore], FinTSConnector]


def _now() -> datetime:
    return datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def institution(url: str, **extra: Any) -> dict[str, Any]:
    """The catalogue params of a FinTS bank, pointed at ``url``."""
    return {
        "blz": BLZ,
        "fints_url": url,
        "slug": "test-bank-de",
        "name": "Test Bank",
        **extra,
    }


def builder(
    http: httpx.AsyncClient, url: str, **options: Any
) -> Callable[[MemoryStateStore], FinTSConnector]:
    def build(store: MemoryStateStore) -> FinTSConnector:
        return FinTSConnector(
            ConnectorContext(
                institution=institution(url),
                http=http,
                state=store,
                clock=_now,
                options={"fints_product_id": "TEST-123", **options},
            )
        )

    return build


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[DummyServer]:
    """The dummy server; ``@pytest.mark.parametrize("server", [wrapper], indirect=True)``."""
    wrapper: Wrapper | None = getattr(request, "param", None)
    with dummy_server(wrapper) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def build(http: httpx.AsyncClient, server: DummyServer) -> Build:
    return builder(http, server.url)
