"""Who is calling the API: credentials checked at the edge, against the scope a route declares.

The hub builds the collaborators (the token service, the secret hasher, the settings); this
module uses them for one request. A route gets an :class:`Auth` bound to its request through
Litestar's dependency injection (``bankhub.api.principal``) and authenticates inside its own unit
of work, so that the tenant scope entered on PostgreSQL (S14) holds for everything the route then
reads and writes in that unit.

The order is the protection (S2, S10, S15, S17, S18, S33): the credential first, then the app's
address allow-list, then the key's and the app's rate limits, then the scope guard, then the
tenant scope; nothing counts against an app before its credential is verified.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import services as accounts
from bankhub.accounts.models import Account
from bankhub.api import request_context
from bankhub.db import tenancy
from bankhub.errors import DomainError, ErrorCode
from bankhub.hub import Hub
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners import services as partners
from bankhub.partners.models import ApiKey, App
from bankhub.partners.principal import Principal
from bankhub.security import network, ratelimit, scopes, tls
from bankhub.security.authcache import AppView, LoginView, Ticket
from bankhub.security.scopes import Scope
from bankhub.signatures import verify as signatures
from bankhub.signatures.guard import SignatureGuard
from bankhub.usage import counters as usage_counters

AnyRequest = Request[Any, Any, Any]

#: ``scope["state"]`` key: the app whose signature this request already passed (the
#: Idempotency-Key middleware authenticates before the route does; a nonce is spent once)
SIGNATURE_CHECKED = "bankhub.signature-checked"


def require_scope(principal: Principal, needed: str | None) -> None:
    """The scope guard: the credential's scope must cover the one the route declares."""
    wanted = Scope.parse(needed or "")
    if wanted is None:
        # Deny by default: an API route must declare the scope it needs.
        raise DomainError(ErrorCode.INSUFFICIENT_SCOPE, "This route declares no scope")
    if not principal.scope.allows(wanted):
        challenge = None
        if principal.token_id is not None:
            challenge = f'Bearer error="insufficient_scope", scope="{wanted.value}"'
        raise DomainError(
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This call needs the {wanted.value} scope; the credential has {principal.scope.value}",
            {"required": wanted.value, "granted": principal.scope.value},
            challenge=challenge,
        )


async def admit(request: AnyRequest, app: App | AppView, key_id: str | None) -> None:
    """A credential of ``app`` is verified and the address allowed: the address's run of
    authentication failures ends (S18), and the request counts against the key's and the app's
    rate limits, 429 when one is exhausted (S33). Never before this point, so that nobody
    without the app's credential can use up its limits."""
    network.note_success(request.scope)
    await ratelimit.admit(request.scope, app.id, key_id)


class Auth:
    """The authentication of one request (given to routes as the ``auth`` dependency)."""

    __slots__ = ("hub", "request", "ticket")

    def __init__(self, hub: Hub, request: AnyRequest) -> None:
        self.hub = hub
        self.request = request
        #: this request's use of the process's authentication cache (``security.authcache``)
        self.ticket: Ticket | None = None

    async def principal(self, session: AsyncSession) -> Principal:
        """Who is calling, checked against the scope the route declares (S2, S10, S15).

        ``Authorization: Bearer`` (an OAuth2 access token) or the seed's ``client-id`` with
        ``service-secret`` / ``app-secret``. A route that declares no scope refuses everyone.
        Once the credential is verified, the app's allow-list (S17) comes before anything
        counts against the app (:func:`admit`).
        """
        request, settings = self.request, self.hub.settings
        needed = scopes.declared(request.route_handler.opt)
        first_use = not session.in_transaction()
        try:
            principal = await self._checked_credential(session)
        except DBAPIError as error:
            # a pooled connection that died while idle (the read pool has no pre-ping): it is
            # gone now; nothing was done in this unit of work, so its first step runs again
            if not (first_use and error.connection_invalidated):
                raise
            await session.rollback()
            principal = await self._checked_credential(session)
        usage_counters.attribute(principal.app.id)
        request_context.of(request).caller = request_context.Caller(  # for audits
            principal.app.id, principal.app.client_id, principal.key_id, principal.token_id
        )
        # S17 first: a call from outside the allow-list consumes nothing of the app's limits
        network.enforce(request, principal.app, settings)
        # the signature is part of the credential: checked before anything counts
        await self._signature(session, principal.app.id)
        await admit(request, principal.app, principal.key_id)
        require_scope(principal, needed)
        # S14: from here on, this transaction and the request's later ones see only this app's
        # rows on PostgreSQL (one statement, in this transaction).
        await tenancy.enter(session, principal.app.id)
        return principal

    async def app(self, session: AsyncSession) -> App:
        """The caller's app as a row of ``session`` (for the routes that read or change more
        of it than authentication does)."""
        principal = await self.principal(session)
        app = await session.get(App, principal.app.id)
        if app is None:  # deleted since its key was read: the credential names nothing
            raise DomainError(ErrorCode.CLIENT_NOT_FOUND)
        return app

    async def login(self, session: AsyncSession) -> tuple[App, Login]:
        """The app, and the login its ``login-secret`` names."""
        app = await self.app(session)
        login = await logins.login_by_secret(
            session, self.hub.hasher, app, self.request.headers.get("login-secret")
        )
        return app, login

    async def login_view(self, session: AsyncSession) -> LoginView:
        """The login the ``login-secret`` names, as plain values (the data reads: no ORM
        object, answered from the authentication cache when it holds the login)."""
        principal = await self.principal(session)
        return await logins.login_view_by_secret(
            session,
            self.hub.hasher,
            principal.app.id,
            self.request.headers.get("login-secret"),
            cache=self.hub.auth_cache,
            ticket=self.ticket,
        )

    async def login_view_with_account(
        self, session: AsyncSession, account_id: int
    ) -> tuple[LoginView, Account | None]:
        """:meth:`login_view` and that login's account ``account_id`` (None when it has no
        such account), in one round trip when the login is not cached."""
        principal = await self.principal(session)
        return await accounts.login_view_with_account(
            session,
            self.hub.hasher,
            principal.app.id,
            self.request.headers.get("login-secret"),
            account_id,
            cache=self.hub.auth_cache,
            ticket=self.ticket,
        )

    async def oauth_client(
        self, session: AsyncSession, client_id: str | None, client_secret: str | None
    ) -> tuple[App, ApiKey]:
        """The client of an OAuth token, revocation or introspection request (an app's service
        key), held to the API's walls: the app's allow-list (S17), then :func:`admit`."""
        app, key = await self.hub.tokens.client(session, client_id, client_secret)
        request_context.of(self.request).caller = request_context.Caller(
            app.id, app.client_id, key.key_id, None
        )
        network.enforce(self.request, app, self.hub.settings)
        await admit(self.request, app, key.key_id)
        return app, key

    async def _signature(self, session: AsyncSession, app_id: int) -> None:
        """RFC 9421: a signed request is verified against the app's keys; an unsigned one is
        refused when one of them is required (docs/signatures.md)."""
        request = self.request
        guard = request.app.state.get("signatures")
        state = request.scope.setdefault("state", {})
        if not isinstance(guard, SignatureGuard) or state.get(SIGNATURE_CHECKED) == app_id:
            return
        await tenancy.enter(session, app_id)  # S14: the keys are the app's rows
        headers = {name: request.headers.getall(name, []) for name in _SIGNATURE_FIELDS}

        async def signed() -> signatures.SignedRequest:
            fields: dict[str, list[str]] = {}
            for raw_name, raw_value in request.scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                fields.setdefault(name, []).append(raw_value.decode("latin-1"))
            return signatures.SignedRequest(
                request.method, target_uri(request, self.hub), fields, await request.body()
            )

        await guard.check(session, app_id, headers, signed, self.ticket)
        state[SIGNATURE_CHECKED] = app_id

    async def _checked_credential(self, session: AsyncSession) -> Principal:
        principal = await self._credential(session)
        if not await self._confirmed(session, principal.app.id):
            principal = await self._credential(session)  # the cache was dropped: read through
        return principal

    async def _confirmed(self, session: AsyncSession, app_id: int) -> bool:
        """PostgreSQL: whether what the cache answered still holds, read in the statement that
        makes the app the transaction's tenant (``AuthCache.confirm``); a look-up that went to
        the database has read both already."""
        cache = self.hub.auth_cache
        if self.ticket is None or cache.dialect != "postgresql":
            return True
        if tenancy.sent(session) == app_id:
            return True
        confirmed = await cache.confirm(session, app_id)
        self.ticket = await cache.ticket(session)
        return confirmed

    async def _credential(self, session: AsyncSession) -> Principal:
        hub, headers = self.hub, self.request.headers
        # before anything the cache would answer: on SQLite this reads whether it still holds
        self.ticket = await hub.auth_cache.ticket(session)
        authorization = headers.get("authorization")
        if authorization is not None:
            return await hub.tokens.verify_bearer(
                session, authorization, hub.clock(), cache=hub.auth_cache, ticket=self.ticket
            )
        app, key = await partners.authenticate(
            session,
            hub.hasher,
            headers.get("client-id"),
            headers.get("service-secret"),
            headers.get("app-secret"),
            now=hub.clock(),
            enter=True,  # tenancy.enter in principal then sends nothing
            cache=hub.auth_cache,
            ticket=self.ticket,
        )
        # S17: an app key used from a browser may be limited to the partner's own pages
        if key.allowed_referers and not network.referer_allowed(
            headers.get("referer"), headers.get("origin"), key.allowed_referers
        ):
            raise DomainError(ErrorCode.REFERER_NOT_ALLOWED, extra={"key_id": key.key_id})
        return Principal(app, Scope(key.scope), key.key_id, None)


_SIGNATURE_FIELDS = ("signature-input", "signature")


def target_uri(request: AnyRequest, hub: Hub) -> str:
    """The URI the client addressed (RFC 9421 ``@target-uri``): the scheme a trusted proxy
    reports (``X-Forwarded-Proto``, as the HTTPS check reads it), the Host the client sent,
    the path and query as they came on the wire."""
    scope = request.scope
    scheme = "https" if tls.is_secure(scope, hub.settings) else str(scope.get("scheme", "http"))
    host = request.headers.get("host", "")
    path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    uri = f"{scheme}://{host}{path.decode('latin-1')}"
    return uri + ("?" + query.decode("latin-1") if query else "")
