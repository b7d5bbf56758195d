"""Everything a request or job needs, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.catalogue import Catalogue, default_catalogue, load_catalogue
from bankhub.clock import Clock, utcnow
from bankhub.config import Settings
from bankhub.connectors.registry import ConnectorRegistry, default_registry
from bankhub.db.engine import Database
from bankhub.events import flags
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.security import network, tls
from bankhub.security.crypto import Box
from bankhub.security.secrets import SecretHasher
from bankhub.sync.engine import SyncEngine


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
    box: Box
    maintenance: flags.CachedFlag = field(
        default_factory=lambda: flags.CachedFlag(flags.MAINTENANCE)
    )

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
        db = Database(settings.resolved_database_url())
        hasher = SecretHasher(settings.resolved_secret_key())
        registry = registry or default_registry()
        if catalogue is None:
            catalogue = (
                load_catalogue(settings.catalogue_file)
                if settings.catalogue_file
                else default_catalogue()
            )
        http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.connector_timeout_seconds),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100),
            # Never an ambient proxy: webhooks must reach the address the SSRF guard checked.
            trust_env=False,
            # S31: certificates always checked, against BANKHUB_CA_BUNDLE or the system store
            verify=tls.outbound_ssl_context(settings.ca_bundle),
        )
        box = Box.from_secret(settings.resolved_secret_key())
        engine = SyncEngine(settings, registry, catalogue, clock, hasher, http, box)
        return cls(settings, db, catalogue, registry, hasher, clock, http, engine, box)

    async def close(self) -> None:
        await self.http.aclose()
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
        headers = request.headers
        app = await partners.authenticate(
            session,
            self.hasher,
            headers.get("client-id"),
            headers.get("service-secret"),
            headers.get("app-secret"),
        )
        network.enforce(request, app, self.settings)
        return app

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
