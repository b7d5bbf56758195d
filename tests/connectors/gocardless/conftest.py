"""Fixtures for the GoCardless connector: the stateful peer provider and an in-memory vault."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bankhub.connectors.base import ConnectorContext, MemoryStateStore
from bankhub.connectors.gocardless import GoCardlessConnector
from bankhub.connectors.gocardless.client import Secrets, TokenPair
from bankhub.connectors.gocardless.tokens import Stored, TokenKeeper
from tests.conftest import FakeClock
from tests.connectors.gocardless.peer import (
    INSTITUTION,
    SECRET_ID,
    SECRET_KEY,
    PeerProvider,
    running,
)

RETURN_URL = "http://127.0.0.1:9/v2/connect/return?state=s-1"

Build = Callable[..., GoCardlessConnector]


class MemoryVault:
    """The token vault as one dict: what ``DbTokenVault`` stores, without a database."""

    def __init__(self, secrets: Secrets | None = None) -> None:
        self.secrets = secrets
        self.pair: TokenPair | None = None
        self.version = 0
        self.stores = 0

    async def load(self) -> Stored:
        return Stored(self.secrets, self.pair, self.version)

    async def store(self, pair: TokenPair, version: int) -> bool:
        if version != self.version:
            return False
        self.pair, self.version = pair, version + 1
        self.stores += 1
        return True


@pytest.fixture
def peer(clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[PeerProvider]:
    options: dict[str, Any] = getattr(request, "param", {})
    with running(PeerProvider(clock, **options)) as provider:
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def vault() -> MemoryVault:
    return MemoryVault(Secrets(SECRET_ID, SECRET_KEY))


@pytest.fixture
def keeper(
    vault: MemoryVault, http: httpx.AsyncClient, peer: PeerProvider, clock: FakeClock
) -> TokenKeeper:
    return TokenKeeper(vault, http, peer.base_url, clock)


def institution(**extra: Any) -> dict[str, Any]:
    return {
        "slug": "bank-1001",
        "name": "Peer Bank",
        "institution_id": INSTITUTION,
        "history_days": 540,
        "consent_days": 90,
        **extra,
    }


@pytest.fixture
def build(
    peer: PeerProvider, http: httpx.AsyncClient, clock: FakeClock, keeper: TokenKeeper
) -> Build:
    """``build(store=None, **params)`` → a connector for the peer's Peer Bank."""

    def make(
        store: MemoryStateStore | None = None, *, language: str | None = None, **extra: Any
    ) -> GoCardlessConnector:
        options: dict[str, Any] = {"gocardless_tokens": keeper, "gocardless_url": peer.base_url}
        if language is not None:
            options["user_language"] = language
        context = ConnectorContext(
            institution=institution(**extra),
            http=http,
            state=store if store is not None else MemoryStateStore(),
            clock=clock,
            return_url=RETURN_URL,
            options=options,
        )
        return GoCardlessConnector(context)

    return make
