"""Everything a request or job needs, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api import request_context
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.audit.writer import AuditWriter
from bankhub.banks.live import LiveCatalogue
from bankhub.catalogue import Catalogue, default_catalogue, load_catalogue
from bankhub.clock import Clock, utcnow
from bankhub.config import Settings
from bankhub.connectors.registry import ConnectorRegistry, default_registry
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.events import flags
from bankhub.jobs.identity import Identity
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.oauth.service import TokenService
from bankhub.partners import services as partners
from bankhub.partners.models import ApiKey, App
from bankhub.security import network, ratelimit, scopes, tls
from bankhub.security.keyring import Keyring, load_keks
from bankhub.security.scopes import Scope
from bankhub.security.secrets import SecretHasher
from bankhub.sync.engine import SyncEngine
from bankhub.usage import counters as usage_counters
from bankhub.webhooks.transport import KeyedTransport


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the app, the scope granted, and which key or token it used."""

    app: App
    scope: Scope
    key_id: str | None
    #: the access token's id when the caller presented a bearer token
    token_id: str | None


def require_scope(principal: Principal, needed: str | None) -> None:
    wanted = Scope.parse(needed or "")
    if wanted is None:
        # Deny by default: an API route must declare the scope it needs.
        raise ApiError(ErrorCode.INSUFFICIENT_SCOPE, "This route declares no scope")
    if not principal.scope.allows(wanted):
        headers = {}
        if principal.token_id is not None:
            headers["WWW-Authenticate"] = (
                f'Bearer error="insufficient_scope", scope="{wanted.value}"'
            )
        raise ApiError(
            ErrorCode.INSUFFICIENT_SCOPE,
            f"This call needs the {wanted.value} scope; the credential has {principal.scope.value}",
            {"required": wanted.value, "granted": principal.scope.value},
            headers=headers,
        )


@dataclass
class Hub:
    settings: Settings
    db: Database
    catalogue: Catalogue
    registry: ConnectorRegistry
    hasher: SecretHasher
    clock: Clock
    http: httpx.AsyncClient
    engine: SyncEngine
    keyring: Keyring
    tokens: TokenService
    #: webhook deliveries: kept connections, pooled per checked address and TLS name (the
    #: runner posts through the transport itself; the client wraps it for anything else)
    webhook_transport: KeyedTransport
    webhook_http: httpx.AsyncClient
    maintenance: flags.CachedFlag = field(
        default_factory=lambda: flags.CachedFlag(flags.MAINTENANCE)
    )
    #: API calls and connect outcomes counted in this process, not yet written (docs/usage.md)
    usage: usage_counters.Counters = field(default_factory=usage_counters.Counters)
    #: the group-commit writer of audit entries (S42)
    audit: AuditWriter = field(init=False)
    #: the imported banks merged into ``catalogue``, kept current (bankhub.banks.live)
    live: LiveCatalogue = field(init=False)
    #: the holder this process writes into the leases it takes (manual refreshes; the runner
    #: has its own): the process's identity once claimed (``jobs.identity``)
    lease_owner: str = field(default_factory=lambda: Identity.ephemeral().owner)

    def __post_init__(self) -> None:
        self.audit = AuditWriter(self.db, self.clock)
        self.live = LiveCatalogue(
            self.catalogue,
            self.clock,
            refresh_seconds=self.settings.catalogue_refresh_seconds,
            banks_file=self.settings.banks_file,
            banks_format=self.settings.banks_format,
        )
        self.tokens.audit = self.audit

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        registry: ConnectorRegistry | None = None,
        catalogue: Catalogue | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Hub:
        db = Database(
            settings.resolved_database_url(),
            # PostgreSQL: the tables' owner may VACUUM after an erasure; the runtime role not
            maintenance_url=settings.resolved_migration_url()
            if settings.migration_database_url
            else None,
        )
        hasher = SecretHasher(settings.resolved_secret_key())
        registry = registry or default_registry()
        if catalogue is None:
            # a copy of its own: the imported banks merged into it are this hub's
            catalogue = (
                load_catalogue(settings.catalogue_file, dev=settings.is_dev)
                if settings.catalogue_file
                else default_catalogue(dev=settings.is_dev)
            ).copy()
        http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.connector_timeout_seconds),
            follow_redirects=False,
            limits=tls.OUTBOUND_LIMITS,
            # Never an ambient proxy: webhooks must reach the address the SSRF guard checked.
            trust_env=False,
            # S31: certificates always checked, against BANKHUB_CA_BUNDLE or the system store
            verify=tls.outbound_ssl_context(settings.ca_bundle),
        )
        keyring = Keyring(
            load_keks(settings),
            settings.resolved_secret_key(),
            refresh_seconds=settings.keyring_refresh_seconds,
        )
        engine = SyncEngine(settings, registry, catalogue, clock, hasher, http, keyring)
        tokens = TokenService(db, keyring, hasher, clock, settings.public_url or "bankhub")
        webhook_transport = KeyedTransport(tls.outbound_ssl_context(settings.ca_bundle))
        webhook_http = httpx.AsyncClient(
            transport=webhook_transport,
            timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            follow_redirects=False,
            # Never an ambient proxy: webhooks must reach the address the SSRF guard checked.
            trust_env=False,
        )
        return cls(
            settings,
            db,
            catalogue,
            registry,
            hasher,
            clock,
            http,
            engine,
            keyring,
            tokens,
            webhook_transport,
            webhook_http,
        )

    async def ready(self) -> None:
        """Load what must come from the database before serving (the data keyring, the
        imported banks)."""
        await self.keyring.ensure(self.db)
        await self.live.ensure(self.db)

    async def close(self) -> None:
        await self.audit.close()
        await self.engine.clients.aclose()
        await self.http.aclose()
        await self.webhook_http.aclose()
        await self.db.dispose()

    async def maintenance_on(self) -> bool:
        if self.settings.maintenance:
            return True
        if not self.maintenance.fresh():
            async with self.db.transaction() as session:
                self.maintenance.store(await flags.get_flag(session, flags.MAINTENANCE))
        return self.maintenance.value == "on"

    def public_url(self, request: Request[Any, Any, Any]) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def authenticate(self, session: AsyncSession, request: Request[Any, Any, Any]) -> App:
        return (await self.principal(session, request)).app

    async def principal(self, session: AsyncSession, request: Request[Any, Any, Any]) -> Principal:
        """Who is calling, checked against the scope the route declares (S2, S10, S15).

        ``Authorization: Bearer`` (an OAuth2 access token) or the seed's ``client-id`` with
        ``service-secret`` / ``app-secret``. A route that declares no scope refuses everyone.
        Once the credential is verified, the app's allow-list (S17) comes before anything
        counts against the app (:meth:`admit`).
        """
        needed = scopes.declared(request.route_handler.opt)
        principal = await self._credential(session, request)
        usage_counters.attribute(principal.app.id)
        request_context.of(request).caller = request_context.Caller.of(principal)  # for audits
        # S17 first: a call from outside the allow-list consumes nothing of the app's limits
        network.enforce(request, principal.app, self.settings)
        await self.admit(request, principal.app, principal.key_id)
        require_scope(principal, needed)
        # S14: from here on, this transaction and the request's later ones see only this app's
        # rows on PostgreSQL (one statement, in this transaction).
        await tenancy.enter(session, principal.app.id)
        return principal

    async def oauth_client(
        self,
        session: AsyncSession,
        request: Request[Any, Any, Any],
        client_id: str | None,
        client_secret: str | None,
    ) -> tuple[App, ApiKey]:
        """The client of an OAuth token, revocation or introspection request (an app's service
        key), held to the API's walls: the app's allow-list (S17), then :meth:`admit`."""
        app, key = await self.tokens.client(session, client_id, client_secret)
        network.enforce(request, app, self.settings)
        await self.admit(request, app, key.key_id)
        return app, key

    async def admit(self, request: Request[Any, Any, Any], app: App, key_id: str | None) -> None:
        """A credential of ``app`` is verified and the address allowed: the address's run of
        authentication failures ends (S18), and the request counts against the key's and the
        app's rate limits, 429 when one is exhausted (S33). Never before this point, so that
        nobody without the app's credential can use up its limits."""
        network.note_success(request.scope)
        await ratelimit.admit(request.scope, app.id, key_id)

    async def _credential(
        self, session: AsyncSession, request: Request[Any, Any, Any]
    ) -> Principal:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            principal = await self.tokens.verify_bearer(session, authorization, self.clock())
        else:
            headers = request.headers
            app, key = await partners.authenticate(
                session,
                self.hasher,
                headers.get("client-id"),
                headers.get("service-secret"),
                headers.get("app-secret"),
                now=self.clock(),
                enter=True,  # tenancy.enter in principal then sends nothing
            )
            principal = Principal(app, Scope(key.scope), key.key_id, None)
            # S17: an app key used from a browser may be limited to the partner's own pages
            if key.allowed_referers and not network.referer_allowed(
                headers.get("referer"), headers.get("origin"), key.allowed_referers
            ):
                raise ApiError(ErrorCode.REFERER_NOT_ALLOWED, extra={"key_id": key.key_id})
        return principal

    async def authenticate_login(
        self, session: AsyncSession, request: Request[Any, Any, Any]
    ) -> tuple[App, Login]:
        app = await self.authenticate(session, request)
        login = await logins.login_by_secret(
            session, self.hasher, app, request.headers.get("login-secret")
        )
        return app, login


def hub_of(request: Request[Any, Any, Any]) -> Hub:
    hub: Hub = request.app.state.hub
    return hub
