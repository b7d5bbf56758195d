"""The composition root: everything a request or job needs, built once per process.

:class:`Hub` builds the collaborators from the settings (the database, the connector registry,
the keyring, the token service, the sync engine, the outbound HTTP clients) and holds them; it
does nothing with them itself. The API's edge gives routes the hub and the request's
authentication through dependency injection (``bankhub.api.principal``); services take the
collaborators they need as arguments and never see the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from bankhub.audit.writer import AuditWriter
from bankhub.banks.gocardless import GoCardless
from bankhub.banks.live import LiveCatalogue
from bankhub.catalogue import Catalogue, default_catalogue, load_catalogue
from bankhub.clock import Clock, utcnow
from bankhub.config import Settings
from bankhub.connectors.registry import ConnectorRegistry, default_registry
from bankhub.db.engine import Database
from bankhub.events import flags
from bankhub.jobs.identity import Identity
from bankhub.oauth.service import TokenService
from bankhub.payments import services as payments
from bankhub.requestlog.buffer import RequestLog
from bankhub.security import authcache, tls
from bankhub.security.keyring import Keyring, load_keks
from bankhub.security.secrets import SecretHasher
from bankhub.sync.engine import SyncEngine
from bankhub.usage import counters as usage_counters
from bankhub.webhooks.transport import KeyedTransport


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
    #: the apps' API calls recorded in this process, not yet written (``bankhub.requestlog``)
    request_log: RequestLog = field(default_factory=RequestLog)
    #: the group-commit writer of audit entries (S42)
    audit: AuditWriter = field(init=False)
    #: the imported banks merged into ``catalogue``, kept current (bankhub.banks.live)
    live: LiveCatalogue = field(init=False)
    #: the holder this process writes into the leases it takes (manual refreshes; the runner
    #: has its own): the process's identity once claimed (``jobs.identity``)
    lease_owner: str = field(default_factory=lambda: Identity.ephemeral().owner)
    #: the installation's GoCardless access: one token keeper for every login of the process
    gocardless: GoCardless = field(init=False)
    #: what authenticating a request reads, per process, dropped on any change
    #: (``security.authcache``); PostgreSQL: its listener, from :meth:`ready` on
    auth_cache: authcache.AuthCache = field(init=False)
    auth_listener: authcache.Listener | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.audit = AuditWriter(self.db, self.clock)
        self.auth_cache = authcache.AuthCache(enabled=self.settings.auth_cache)
        self.live = LiveCatalogue(
            self.catalogue,
            self.clock,
            refresh_seconds=self.settings.catalogue_refresh_seconds,
            banks_file=self.settings.banks_file,
            banks_format=self.settings.banks_format,
        )
        self.tokens.audit = self.audit
        self.gocardless = GoCardless(
            self.db,
            self.keyring,
            self.http,
            self.clock,
            self.settings.gocardless_url,
            self.settings.gocardless_country_codes,
        )
        self.engine.connector_options["gocardless"] = self.gocardless.options()

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

    def payment_initiation(self) -> payments.Initiation:
        """What initiating a payment takes from this process (``payments.initiate``)."""
        return payments.Initiation(
            clock=self.clock,
            cipher=self.keyring,
            catalogue=self.catalogue,
            account_details=self.engine.account_details,
            needs_debtor=lambda connector: self.registry.info(connector).payment_needs_debtor,
            token_ttl_seconds=self.settings.token_ttl_seconds,
            allow_plain_http=self.settings.is_dev,
        )

    async def ready(self) -> None:
        """Load what must come from the database before serving (the data keyring, the
        imported banks)."""
        await self.keyring.ensure(self.db)
        await self.live.ensure(self.db)
        if not self.auth_cache.served:  # once: this runs before every request
            self.auth_listener = await authcache.serve(self.auth_cache, self.db.engine)

    async def close(self) -> None:
        if self.auth_listener is not None:
            await self.auth_listener.close()
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
