"""The nonces of signed requests, each accepted once within its signature's window.

They live in the store the address limits use (``BANKHUB_RATE_LIMIT_STORAGE``): Redis when
several processes serve, so a nonce one process accepted is refused by every other; in the
process itself (``memory://``, the embedded mode, where one process serves). While a shared
store does not answer, the nonces are remembered in the process, as the failure runs are: the
request is not refused for the store's outage, and a replay sent to the same process is still
refused (docs/signatures.md says what this leaves open).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bankhub.security.shared import SharedStore, StoreUnavailable

#: the most nonces one process keeps (past it the oldest go first: a bound on memory, reached
#: only by more than 600 verified signed requests a second for the five-minute window)
MAX_REMEMBERED = 200_000


class NonceStore:
    def __init__(self, store: SharedStore | None, clock: Callable[[], datetime]) -> None:
        self.store = store if store is not None and store.shared else None
        self.clock = clock
        self._seen: dict[str, datetime] = {}

    def _remember(self, key: str, until: datetime) -> bool:
        now = self.clock()
        known = self._seen.get(key)
        if known is not None and known > now:
            return False
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            while len(self._seen) >= MAX_REMEMBERED:  # the oldest first (insertion order)
                del self._seen[next(iter(self._seen))]
        self._seen[key] = until
        return True

    async def claim(self, key: str, until: datetime) -> bool:
        """True the first time ``key`` is given before ``until``, False after."""
        if self.store is not None:
            try:
                return await self.store.claim_once(key, until, self.clock())
            except StoreUnavailable:
                pass
        return self._remember(key, until)
