"""Typed settings, read once from ``BANKHUB_*`` environment variables.

Outside ``dev`` the settings fail closed: a missing secret key stops start-up with a message that
names the variable, instead of silently generating one that would differ per process, and so
does a guessable one (``weak_secret_key``).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # ships no type hints


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message names the variable to set."""


IPNetwork = IPv4Network | IPv6Network

#: the fewest guesses (log10) zxcvbn may estimate for a production secret key: about 83 bits in
#: its deliberately pessimistic model (10 symbols per random character), where any random key of
#: 32 characters scores near 10^31, while repeats, sequences, keyboard runs and words score far
#: less ("test-pepper-" + "x" * 40: 10^12)
MIN_KEY_GUESSES_LOG10 = 25
#: zxcvbn's work grows with the square of the length; a longer key is judged by its start
_KEY_JUDGED_CHARACTERS = 128


@lru_cache(maxsize=8)
def weak_secret_key(key: str) -> str | None:
    """Why ``key`` is too guessable to be the server pepper, or None when it is not.

    The pepper keys every stored hash of an issued secret (S1); one that can be guessed makes a
    leaked database as good as the secrets. zxcvbn (Dropbox's estimator) rather than a rule of our
    own: it knows repeats, sequences, keyboard patterns, dates and common words.
    """
    if len(key) < 32:
        return "must be at least 32 characters"
    judged = key[:_KEY_JUDGED_CHARACTERS]
    guesses = float(zxcvbn(judged, max_length=_KEY_JUDGED_CHARACTERS)["guesses_log10"])
    if guesses < MIN_KEY_GUESSES_LOG10:
        return (
            f"is too easy to guess (about 10^{guesses:.0f} guesses; repeated characters, "
            "sequences or words); use a random key, e.g. the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    return None


def parse_networks(text: str, variable: str) -> tuple[IPNetwork, ...]:
    """A comma- or space-separated CIDR list; a bare address is a /32 (or /128)."""
    networks: list[IPNetwork] = []
    for item in text.replace(",", " ").split():
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{variable}: {item!r} is not an IP address or CIDR range") from None
    return tuple(networks)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKHUB_", extra="ignore")

    env: Environment = Environment.DEV
    data_dir: Path = Path("bankhub-data")
    #: the runtime connection; on PostgreSQL a role that does not own the tables (S14)
    database_url: str | None = None
    #: the role that owns the tables, for ``bankhub migrate`` and ``bankhub db create-app-role``
    #: (docs/operations.md); the runtime URL when not set
    migration_database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    #: the key-encryption key (base64url of 32 bytes), or a file holding it; dev keeps one in
    #: the data dir. ``previous_kek`` is still accepted for unwrapping after a KEK change.
    kek: str | None = Field(default=None, repr=False)
    kek_file: Path | None = None
    previous_kek: str | None = Field(default=None, repr=False)
    #: a KMS plug-in (entry point in the ``bankhub.kms`` group) instead of a local KEK
    kms: str | None = None
    keyring_refresh_seconds: float = 30.0
    public_url: str | None = None
    #: the operator's privacy notice (https), linked on the connect page's consent step for
    #: every app that gives none of its own; and the operator's name, which the default "who
    #: handles your data" sentence names (docs/connect.md)
    privacy_url: str | None = Field(default=None, pattern=r"^https://\S+$")
    operator_name: str = Field(default="bankhub", min_length=1, max_length=100)
    #: where the other bankhub processes reach this one, to pass on requests for the connect
    #: sessions it holds (docs/operations.md); ``serve`` defaults it to its own address
    internal_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000

    token_ttl_seconds: int = 30 * 60
    connect_idle_seconds: int = 5 * 60
    connect_max_attempts: int = 5
    #: how long a connect-page step waits for the bank before answering with the progress page
    connect_step_wait_seconds: float = 0.3
    refresh_cooldown_seconds: int = 5 * 60
    connector_timeout_seconds: float = 30.0
    sandbox_decoupled_delay_seconds: float = 3.0
    sandbox_slow_seconds: float = 60.0
    #: how long the sandbox bank keeps ``user_pending``'s payments accepted before executing
    sandbox_payment_settle_seconds: float = 60.0
    #: how often a runner asks the banks about payments not final yet (docs/payments.md)
    payment_sweep_seconds: float = Field(default=15.0, gt=0)
    #: how often each signature key source is fetched, and how long after its last good sync a
    #: failing one keeps its keys (docs/signatures.md)
    signature_sync_seconds: float = Field(default=300.0, ge=10)
    #: the per-process cache of credential look-ups, invalidated on every change
    #: (docs/architecture.md); ``BANKHUB_AUTH_CACHE=off`` reads through, for diagnosis
    auth_cache: bool = True
    signature_sync_grace_seconds: float = Field(default=86400.0, ge=0)
    #: the FinTS product registration id (Deutsche Kreditwirtschaft), passed to the connector
    fints_product_id: str | None = None
    #: GoCardless Bank Account Data (docs/connectors-gocardless.md): its API root, and the
    #: countries (ISO 3166 alpha-2, comma-separated) whose institutions are imported daily
    gocardless_url: str = "https://bankaccountdata.gocardless.com"
    gocardless_countries: str = Field(
        default="", pattern=r"^\s*([A-Za-z]{2}\s*(,\s*[A-Za-z]{2}\s*)*)?$"
    )
    maintenance: bool = False
    create_demo_app: bool = True
    max_page_size: int = 1000
    #: a service catalogue of the operator's own instead of the built-in one
    catalogue_file: Path | None = None
    #: a bank registry imported at start (docs/banks.md): xs2a-adapter CSV, bankhub JSON/YAML
    banks_file: Path | None = None
    #: its format; by default from its name (``.csv``: xs2a-adapter, else bankhub)
    banks_format: Literal["xs2a-adapter", "bankhub"] | None = None
    #: how often a process looks for changed imported banks (bankhub.banks.live)
    catalogue_refresh_seconds: float = Field(default=5.0, ge=0, le=300)

    #: run scheduled syncs and webhook deliveries inside ``serve`` (off for API-only processes)
    embedded_worker: bool = True
    #: the SFTP statement drop (docs/sftp.md): off unless a port is set; ``serve`` runs it too
    sftp_port: int | None = Field(default=None, ge=0, le=65535)
    sftp_host: str = "127.0.0.1"
    #: the largest file one upload may be (the API's ``POST /v2/statement`` limit by default)
    sftp_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    #: the most files (with their results) an app keeps in its inbox
    sftp_max_files: int = Field(default=1000, ge=1, le=100_000)
    sync_concurrency: int = 8
    delivery_concurrency: int = 32
    webhook_timeout_seconds: float = 10.0
    #: the most missed events re-enabling a webhook endpoint queues again (past it: the feed)
    webhook_catch_up_limit: int = Field(default=1000, ge=0, le=100_000)
    #: how long a claimed sync or delivery stays with its process without a heartbeat; the
    #: holder renews it every third of this while it works (docs/operations.md, "Leases")
    lease_seconds: int = Field(default=30, ge=1)
    worker_poll_seconds: float = 1.0
    #: the stable name of this process in the leases it holds (jobs.identity); by default one
    #: per host, role and data dir
    worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,40}$")
    #: how often a runner purges financial data older than each app's retention window
    retention_sweep_seconds: float = 300.0
    #: audit entries are kept this long, then purged by the same sweep (S42)
    audit_retention_days: int = Field(default=400, ge=1, le=36500)

    #: usage counts (docs/usage.md): written every this many seconds, kept this many days
    usage_flush_seconds: float = Field(default=5.0, gt=0)
    usage_retention_days: int = Field(default=400, ge=1)
    #: the apps' API request log (docs/dashboard.md): kept this many days
    request_log_days: int = Field(default=14, ge=1, le=400)
    #: the Bank Feed's record of sync runs (docs/dashboard.md): kept this many days
    sync_run_days: int = Field(default=90, ge=1, le=3650)

    #: S40: how long the first request with an Idempotency-Key holds it before another process
    #: may take over (a crashed process never blocks the key for longer)
    idempotency_lease_seconds: int = Field(default=600, ge=1)

    # --- the team dashboard (docs/dashboard.md; S5-S7) ------------------------------------------
    dashboard_idle_seconds: int = Field(default=15 * 60, ge=60, le=15 * 60)
    dashboard_absolute_seconds: int = Field(default=8 * 3600, ge=300, le=8 * 3600)
    #: how long after giving password and code a member may change keys and network settings
    dashboard_reauth_seconds: int = Field(default=5 * 60, ge=30, le=3600)
    #: consecutive failed sign-in steps before the member is blocked, and for how long
    dashboard_max_failures: int = Field(default=5, ge=1, le=5)
    dashboard_lock_seconds: int = Field(default=15 * 60, ge=60)
    dashboard_invite_days: int = Field(default=7, ge=1, le=30)

    # --- edge protections (docs/operations.md) --------------------------------------------------
    #: S17: proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (CIDR list)
    trusted_proxies: str = ""
    #: S5, S18: block an address after this many consecutive authentication failures (a
    #: success from the address starts the count again; so does a pause of the window)
    block_enabled: bool | None = None
    block_failures: int = Field(default=5, ge=1, le=5)
    block_window_seconds: int = Field(default=300, ge=1)
    block_seconds: int = Field(default=900, ge=1)
    #: how long a process trusts its memory of the ``blocked_addresses`` table
    block_cache_seconds: float = Field(default=5.0, ge=0)
    #: S33: limits in the ``limits`` notation ("600/minute", "10/second;100/hour")
    rate_limits_enabled: bool | None = None
    rate_limit_storage: str = "memory://"
    rate_limit_per_ip: str = "1200/minute"
    rate_limit_per_credential: str = "600/minute"
    rate_limit_per_app: str = "3000/minute"
    #: POST /oauth/token and POST /v2/token(/reconnect), per address and per credential
    rate_limit_token: str = "60/minute"  # noqa: S105 - a rate, not a secret
    #: form submissions under /v2/connect/ and dashboard sign-in steps, per address
    rate_limit_connect: str = "120/minute"
    #: S26: serve TLS directly with this certificate chain and key (PEM files)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: S31: outbound TLS trusts only this CA bundle (PEM) instead of the system store
    ca_bundle: Path | None = None
    #: eIDAS (security/eidas.py): the QWAC presented to XS2A banks over TLS and the QSealC that
    #: signs requests; each a file or PEM text, the key optionally under a passphrase
    xs2a_qwac_cert_file: Path | None = None
    xs2a_qwac_key_file: Path | None = None
    xs2a_qwac_cert: str | None = Field(default=None, repr=False)
    xs2a_qwac_key: str | None = Field(default=None, repr=False)
    xs2a_qwac_key_passphrase: str | None = Field(default=None, repr=False)
    xs2a_qseal_cert_file: Path | None = None
    xs2a_qseal_key_file: Path | None = None
    xs2a_qseal_cert: str | None = Field(default=None, repr=False)
    xs2a_qseal_key: str | None = Field(default=None, repr=False)
    xs2a_qseal_key_passphrase: str | None = Field(default=None, repr=False)
    #: S32: the API docs (/docs, /openapi.json); public in dev, off in production unless set
    docs: Literal["public", "off"] | None = None
    #: S32: the bearer token that reads /metrics; without one /metrics is open in dev and test
    #: and absent in production (docs/operations.md, "Metrics")
    metrics_token: str | None = Field(default=None, repr=False)
    #: where the processes of one host keep their metrics for /metrics to add up; by default
    #: ``metrics`` in the data dir
    metrics_dir: Path | None = None

    @model_validator(mode="after")
    def _check_edge(self) -> Settings:
        parse_networks(self.trusted_proxies, "BANKHUB_TRUSTED_PROXIES")
        if self.internal_url is not None and not self.internal_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError("BANKHUB_INTERNAL_URL must be an http:// or https:// URL")
        if self.metrics_token is not None and len(self.metrics_token) < 32:
            # named, never echoed: a short token is still a secret
            raise ConfigError("BANKHUB_METRICS_TOKEN must be at least 32 characters")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("BANKHUB_TLS_CERT and BANKHUB_TLS_KEY must be set together")
        for variable, path in (
            ("BANKHUB_TLS_CERT", self.tls_cert),
            ("BANKHUB_TLS_KEY", self.tls_key),
            ("BANKHUB_CA_BUNDLE", self.ca_bundle),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{variable}: {path} is not a readable file")
        return self

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies, "BANKHUB_TRUSTED_PROXIES")

    @property
    def blocking_on(self) -> bool:
        """S18 is on outside dev/test unless switched off; tests switch it on explicitly."""
        return (not self.is_dev) if self.block_enabled is None else self.block_enabled

    @property
    def rate_limits_on(self) -> bool:
        """S33 is on outside dev/test unless switched off; tests switch it on explicitly."""
        return (not self.is_dev) if self.rate_limits_enabled is None else self.rate_limits_enabled

    @property
    def docs_public(self) -> bool:
        return self.is_dev if self.docs is None else self.docs == "public"

    @property
    def tls_on(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def token_ttl(self) -> timedelta:
        return timedelta(seconds=self.token_ttl_seconds)

    @property
    def connect_idle(self) -> timedelta:
        return timedelta(seconds=self.connect_idle_seconds)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def signature_sync_grace(self) -> timedelta:
        return timedelta(seconds=self.signature_sync_grace_seconds)

    @property
    def refresh_cooldown(self) -> timedelta:
        return timedelta(seconds=self.refresh_cooldown_seconds)

    @property
    def is_dev(self) -> bool:
        return self.env in (Environment.DEV, Environment.TEST)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return _async_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bankhub.sqlite3').resolve()}"

    def resolved_migration_url(self) -> str:
        """Where schema changes run: the owner role's URL, else the runtime one."""
        if self.migration_database_url:
            return _async_url(self.migration_database_url)
        return self.resolved_database_url()

    @property
    def gocardless_country_codes(self) -> list[str]:
        return [c.strip().upper() for c in self.gocardless_countries.split(",") if c.strip()]

    def resolved_secret_key(self) -> bytes:
        """The server pepper for keyed hashes; in dev it is kept in the data dir for good."""
        if self.secret_key:
            if len(self.secret_key) < 32:
                raise ConfigError("BANKHUB_SECRET_KEY must be at least 32 characters")
            problem = None if self.is_dev else weak_secret_key(self.secret_key)
            if problem is not None:
                raise ConfigError(f"BANKHUB_SECRET_KEY {problem}")
            return self.secret_key.encode()
        if not self.is_dev:
            raise ConfigError(
                "BANKHUB_SECRET_KEY is not set; it is required when BANKHUB_ENV=production"
            )
        self.make_data_dir()
        key_file = self.data_dir / "secret.key"
        try:
            # created 0600 in one step: never readable by others, not even for a moment
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if key_file.stat().st_mode & 0o777 != 0o600:
                key_file.chmod(0o600)
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return key_file.read_text().strip().encode()

    def resolved_metrics_dir(self) -> Path:
        return self.metrics_dir or self.data_dir / "metrics"

    def make_data_dir(self) -> None:
        """The data dir, for its owner only (0700): the database and dev keys live in it."""
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def _async_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url
