"""Keeping the GoCardless token pair valid for every login and every process.

The pair lives in a :class:`TokenVault` (the database, through ``bankhub.banks.gocardless``)
next to the operator's secrets, with a version number. A process keeps the pair it last saw in
memory and uses it while it has more than ``margin`` left; then, one coroutine at a time, it reads
the vault again (another process may have renewed it), renews it itself when it must (refresh
token first, a new pair from the secrets when the refresh token is spent) and stores it only if
the version is still the one it read. A process that loses that race takes the winner's pair:
the provider keeps both valid, so nothing is lost, and all processes converge on one pair.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import httpx

from bankhub.clock import Clock
from bankhub.connectors.gocardless.client import (
    ConfigurationMissing,
    Secrets,
    TokenPair,
    obtain_tokens,
    refresh_tokens,
)

#: renew this long before the access token expires, so a long read never starts with a token
#: about to lapse (the provider's tokens last a day)
RENEW_MARGIN = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the vault holds: the secrets, the pair (None before the first one) and its version."""

    secrets: Secrets | None
    pair: TokenPair | None
    version: int


class TokenVault(Protocol):
    async def load(self) -> Stored: ...

    async def store(self, pair: TokenPair, version: int) -> bool:
        """Save ``pair`` as ``version + 1`` if the vault still holds ``version``."""
        ...


class TokenKeeper:
    """A process's :class:`~bankhub.connectors.gocardless.client.TokenProvider`."""

    def __init__(
        self,
        vault: TokenVault,
        http: httpx.AsyncClient,
        base_url: str,
        clock: Clock,
        margin: timedelta = RENEW_MARGIN,
    ) -> None:
        self.vault = vault
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.margin = margin
        self._pair: TokenPair | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, pair: TokenPair | None, refused: str | None) -> bool:
        return (
            pair is not None
            and pair.access != refused
            and pair.access_expires_at - self.margin > self.clock()
        )

    async def access_token(self, *, refused: str | None = None) -> str:
        if self._fresh(self._pair, refused):
            assert self._pair is not None  # noqa: S101 - checked by _fresh  # nosec B101
            return self._pair.access
        async with self._lock:
            if self._fresh(self._pair, refused):  # renewed by another coroutine meanwhile
                assert self._pair is not None  # noqa: S101 - checked by _fresh  # nosec B101
                return self._pair.access
            for _ in range(3):
                stored = await self.vault.load()
                if self._fresh(stored.pair, refused):
                    self._pair = stored.pair
                    assert stored.pair is not None  # noqa: S101 - checked  # nosec B101
                    return stored.pair.access
                pair = await self._renew(stored, refused)
                if await self.vault.store(pair, stored.version):
                    self._pair = pair
                    return pair.access
                # another process stored a pair first: read and use theirs
            raise ConfigurationMissing("The GoCardless token pair keeps changing; try again")

    async def _renew(self, stored: Stored, refused: str | None) -> TokenPair:
        if stored.secrets is None:
            raise ConfigurationMissing(
                "GoCardless is not configured: the operator must set the secret id and key "
                "(bankhub banks gocardless-secret)"
            )
        now = self.clock()
        pair = stored.pair
        if pair is not None and pair.refresh_expires_at - self.margin > now:
            renewed = await refresh_tokens(self.http, self.base_url, pair, now)
            if renewed is not None and renewed.access != refused:
                return renewed
        return await obtain_tokens(self.http, self.base_url, stored.secrets, now)
