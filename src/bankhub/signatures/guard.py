"""One process's check of signed requests: its nonce store and its cache of apps without keys
(kept in the authentication cache, under its invalidation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.security.authcache import AuthCache, Ticket
from bankhub.security.shared import SharedStore
from bankhub.signatures import services, verify
from bankhub.signatures.models import SignatureKey
from bankhub.signatures.nonces import NonceStore


class SignatureGuard:
    def __init__(
        self,
        store: SharedStore | None,
        clock: Callable[[], datetime],
        auth_cache: AuthCache | None = None,
    ) -> None:
        self.nonces = NonceStore(store, clock)
        self.cache = services.KeyCache(auth_cache)
        self.clock = clock

    async def check(
        self,
        session: AsyncSession,
        app_id: int,
        headers: Mapping[str, Sequence[str]],
        request: Callable[[], Awaitable[verify.SignedRequest]],
        ticket: Ticket | None = None,
    ) -> SignatureKey | None:
        """The key that signed the request, None when it may go unsigned, else the refusal.

        An unsigned request of an app without keys costs a dictionary look-up once the app's
        absence of keys is cached (``ticket``: the request's use of the authentication cache);
        ``request`` (which reads the body) is awaited only for a signed request.
        """
        signed = verify.is_signed(headers)
        if not signed and self.cache.has_none(app_id, ticket):
            return None
        active = await services.active_keys(session, app_id, self.cache, ticket)
        if not signed:
            return await verify.verify(
                verify.SignedRequest("", "", headers, b""),
                active,
                app_id=app_id,
                now=self.clock(),
                claim=self.nonces.claim,
            )
        return await verify.verify(
            await request(), active, app_id=app_id, now=self.clock(), claim=self.nonces.claim
        )
