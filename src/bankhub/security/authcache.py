"""What authenticating an API request reads, kept per process and dropped the moment it changes.

Every API request looked up its key and app, then its login, by keyed hash: two to three
statements (and their ORM objects) before the data it asked for. Those rows change rarely, so
each process keeps them here as plain values, keyed by the keyed hash (never the secret):

* an API key, by ``(client-id, kind, digest)``: the key's id, scope, overlap end and revocation,
  its referers, and its app's id, client id and address allow-list;
* a login, by ``(app id, digest)``: its id, app, customer and whether it is active;
* which apps have no active signature key (``signatures.services.KeyCache``);
* an OAuth2 access token whose signature and grant were verified, by the SHA-256 of the token:
  its app, its key, its scope, its id and its validity (``oauth.service``). Its times and its
  key's end are checked on every use; its grant's revocation and its key's drop the cache.

Nothing expires by time: a time-based cache would let a revoked key work until it expires,
which the security bar forbids. Instead the database says when anything cached changed, and
the whole cache is dropped before the next request uses it, in every process:

* **SQLite**: triggers on ``apps``, ``api_keys``, ``signature_keys`` and the fields of
  ``logins`` and ``oauth_token_families`` the check reads bump the one-row counter
  ``auth_version`` (migrations ``authcache1``, ``perf1``). Each request reads the counter
  first, in one indexed statement on its own connection (``db.inline_sqlite`` for reads), and
  drops the cache when it moved. ``PRAGMA data_version`` was not used: it moves on every
  commit of any table, and the audit entry each read writes would empty the cache all the
  time.
* **PostgreSQL**: the same triggers ``NOTIFY bankhub_auth`` in the changing transaction, so the
  notice leaves when, and only if, it commits, whoever wrote it (API, dashboard, CLI, a
  migration). Each process listens on a connection of its own (:class:`Listener`); while it is
  not listening (start-up, a dropped connection) the cache is not used at all (every request
  reads through), and it is emptied each time the listener (re)connects.

A value read from the database is kept only if no invalidation happened since the request's
ticket was taken (:meth:`AuthCache.ticket`): a read that raced a change is used once, never
kept. Only found rows are kept (an unknown key is asked of the database every time). The
triggers' presence is checked at start-up (:meth:`AuthCache.verify`); a database without them
(an older schema, a migration that rebuilt a table without its triggers) is read through.

Written here rather than taken from a caching package: what matters is the invalidation
protocol against the database, not the storage, and no maintained package offers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]  # ships no type hints
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bankhub.db import tenancy
from bankhub.jobs import wakeup

log = logging.getLogger("bankhub.security.authcache")

#: PostgreSQL: the channel the triggers of migrations ``authcache1`` and ``perf1`` notify on
CHANNEL: Final = "bankhub_auth"
#: the tables whose changes drop the cache (``logins``, ``oauth_token_families``: only the
#: fields the check reads)
WATCHED: Final = ("apps", "api_keys", "signature_keys", "logins", "oauth_token_families")
#: tables whose new rows drop nothing: what a look-up did not find is never kept
_NO_INSERT_TRIGGER: Final = ("logins", "oauth_token_families")
#: the triggers migrations ``authcache1`` and ``perf1`` make, one per watched table (SQLite:
#: per event)
SQLITE_TRIGGERS: Final = tuple(
    f"auth_version_{table}_{event}"
    for table in WATCHED
    for event in ("insert", "update", "delete")
    if not (table in _NO_INSERT_TRIGGER and event == "insert")
)
PG_TRIGGERS: Final = tuple(f"auth_notify_{table}" for table in WATCHED)
#: the most keys, and the most logins, one process keeps (then the oldest go first)
MAX_ENTRIES = 20_000
_VERSION = text("SELECT version FROM auth_version WHERE id = 1")
#: PostgreSQL: what ``tenancy.enter`` sends, and the counter (``confirm``)
_ENTER_AND_VERSION = text(
    "SELECT (SELECT version FROM auth_version WHERE id = 1),"
    " set_config('bankhub.app_id', :app_id, true), set_config('bankhub.scope', '', true)"
)

#: how often an idle listening connection proves it is still there; the most a connect,
#: ping or close may take; the first and the longest pause before connecting again
PING_SECONDS = 30.0
TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = (0.5, 30.0)


@dataclass(frozen=True, slots=True)
class AppView:
    """What authenticating a request needs of an app, as plain values."""

    id: int
    client_id: str
    #: S17: CIDRs the app's calls may come from; None allows any address
    ip_allowlist: tuple[str, ...] | None
    #: the team archived the app: its credentials are refused (``AppArchived``)
    archived: bool = False


@dataclass(frozen=True, slots=True)
class KeyView:
    """An API key as the credential check reads it (never its secret nor its hash)."""

    key_id: str
    scope: str
    allowed_referers: tuple[str, ...] | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def live(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class LoginView:
    """A login as the data reads need it: whose it is and whether it may be read."""

    id: int
    app_id: int
    customer_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class BearerView:
    """A verified access token: whom it names, and until when it may be used."""

    app: AppView
    key: KeyView
    scope: str
    token_id: str
    not_before: int
    expires: int

    def live(self, now: datetime) -> bool:
        """Within its own times (seconds since the epoch, as its claims say) and its key's."""
        return self.not_before <= int(now.timestamp()) < self.expires and self.key.live(now)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request's permission to use the cache: the generation it was valid at."""

    generation: int


class _Bounded:
    """A dict that forgets its oldest entries past ``MAX_ENTRIES``."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.items: dict[Hashable, Any] = {}
        self.limit = limit

    def put(self, key: Hashable, value: Any) -> None:
        items = self.items
        if key not in items and len(items) >= self.limit:
            del items[next(iter(items))]
        items[key] = value


class AuthCache:
    """The process's cache of credential look-ups (see the module's text)."""

    def __init__(self, *, enabled: bool = True, limit: int = MAX_ENTRIES) -> None:
        #: ``BANKHUB_AUTH_CACHE=off`` turns it off (every request reads through)
        self.enabled = enabled
        self.generation = 0
        #: SQLite: the triggers were found at start-up. PostgreSQL: the listener is connected
        #: (and the triggers were found). Until then nothing is used nor kept.
        self.live = False
        #: SQLite: the counter's value the entries were read under
        self.version: int | None = None
        self.dialect: str | None = None
        #: :func:`serve` ran (or runs) for this cache
        self.served = False
        self._keys = _Bounded(limit)
        self._logins = _Bounded(limit)
        self._tokens = _Bounded(limit)
        self._unsigned: set[int] = set()

    # --- validity ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Drop everything; values read before this moment are never kept."""
        self.generation += 1
        self._keys.items.clear()
        self._logins.items.clear()
        self._tokens.items.clear()
        self._unsigned.clear()

    def listening(self, live: bool) -> None:
        """PostgreSQL: the listener connected (``True``, the cache starts empty) or lost its
        connection (``False``: read through until it is back)."""
        self.invalidate()
        self.live = live and self.enabled

    async def verify(self, engine: AsyncEngine) -> bool:
        """Whether the database carries the triggers this cache relies on; without them it is
        never used (and says so once). SQLite goes live here; PostgreSQL when it listens."""
        self.dialect = engine.dialect.name
        if not self.enabled:
            return False
        if self.dialect == "sqlite":
            query = text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            expected: tuple[str, ...] = SQLITE_TRIGGERS
        else:
            query = text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
            expected = PG_TRIGGERS
        async with engine.connect() as connection:
            found = {str(row[0]) for row in await connection.execute(query)}
        missing = sorted(set(expected) - found)
        if missing:
            log.warning(
                "the authentication cache is off: the database lacks its triggers %s "
                "(run bankhub migrate)",
                ", ".join(missing),
            )
            self.enabled = False
            return False
        if self.dialect == "sqlite":
            self.invalidate()
            self.live = True
        return True

    async def ticket(self, session: AsyncSession) -> Ticket | None:
        """The request may use the cache: its ticket, or None (read through). SQLite: one
        statement, the counter, read before anything the cache would answer. PostgreSQL: the
        counter comes with the request's first statement instead (:meth:`confirm`, or the
        look-up that missed), before anything answered from the cache is acted on."""
        if not self.live:
            return None
        if self.dialect == "sqlite":
            self.observe(int((await session.execute(_VERSION)).scalar_one()))
        return Ticket(self.generation)

    def observe(self, version: int) -> bool:
        """The counter read in this request: whether the cache still holds (else it is
        dropped, and what it answered must be read again)."""
        if version == self.version:
            return True
        self.invalidate()
        self.version = version
        return False

    async def confirm(self, session: AsyncSession, app_id: int) -> bool:
        """PostgreSQL: this transaction acts for ``app_id`` (S14) and reads the counter, in one
        statement (the one :func:`tenancy.enter` would send anyway). False when the cache was
        dropped: the caller reads again what the cache answered.

        The counter closes the moment between a change's commit and its notice reaching this
        process: a request that starts after the commit sees the new value here."""
        row = (await session.execute(_ENTER_AND_VERSION, {"app_id": str(int(app_id))})).one()
        tenancy.entered(session, app_id)
        return self.observe(int(row[0]))

    def _valid(self, ticket: Ticket | None) -> bool:
        return ticket is not None and self.live and ticket.generation == self.generation

    # --- what is kept ------------------------------------------------------------------------

    def key(
        self, ticket: Ticket | None, found: tuple[str, str, str]
    ) -> tuple[AppView, KeyView] | None:
        """The app and key of ``(client id, kind, digest)``, when cached."""
        if not self._valid(ticket):
            return None
        value: tuple[AppView, KeyView] | None = self._keys.items.get(found)
        return value

    def keep_key(
        self, ticket: Ticket | None, found: tuple[str, str, str], value: tuple[AppView, KeyView]
    ) -> None:
        if self._valid(ticket):
            self._keys.put(found, value)

    def login(self, ticket: Ticket | None, found: tuple[int, str]) -> LoginView | None:
        """The login of ``(app id, digest)``, when cached."""
        if not self._valid(ticket):
            return None
        value: LoginView | None = self._logins.items.get(found)
        return value

    def keep_login(self, ticket: Ticket | None, found: tuple[int, str], value: LoginView) -> None:
        if self._valid(ticket):
            self._logins.put(found, value)

    def bearer(self, ticket: Ticket | None, digest: bytes) -> BearerView | None:
        """The access token whose SHA-256 is ``digest``, when cached."""
        if not self._valid(ticket):
            return None
        value: BearerView | None = self._tokens.items.get(digest)
        return value

    def keep_bearer(self, ticket: Ticket | None, digest: bytes, value: BearerView) -> None:
        if self._valid(ticket):
            self._tokens.put(digest, value)

    def unsigned(self, ticket: Ticket | None, app_id: int) -> bool:
        """The app had no active signature key when last read, and nothing changed since."""
        return self._valid(ticket) and app_id in self._unsigned

    def keep_unsigned(self, ticket: Ticket | None, app_id: int) -> None:
        if self._valid(ticket) and len(self._unsigned) < self._keys.limit:
            self._unsigned.add(app_id)

    def drop_unsigned(self, app_id: int) -> None:
        self._unsigned.discard(app_id)


class Listener:
    """PostgreSQL: LISTEN on :data:`CHANNEL` on a connection outside the pool, dropping the
    cache on every notice; the cache is live only while the LISTEN is in place."""

    def __init__(self, cache: AuthCache, connect_args: dict[str, Any]) -> None:
        self.cache = cache
        self.connect_args = connect_args
        self.stop = asyncio.Event()
        self.connection: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="auth-cache-listen")

    async def close(self) -> None:
        self.stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.cache.listening(False)

    async def run(self) -> None:
        first, most = RETRY_SECONDS
        pause = first
        while not self.stop.is_set():
            try:
                connection = await asyncio.wait_for(
                    asyncpg.connect(**self.connect_args), TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("authentication cache off (cannot listen): %s", exc)
                await self._pause(pause)
                pause = min(most, pause * 2)
                continue
            try:
                await self._listen_on(connection)
                pause = first
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("authentication cache off (listening failed): %s", exc)
            finally:
                self.cache.listening(False)
                self.connection = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), TIMEOUT_SECONDS)
            await self._pause(pause)

    async def _listen_on(self, connection: Any) -> None:
        lost = asyncio.Event()

        def terminated(_connection: Any) -> None:
            # at once, not when the loop below wakes: no request may use the cache meanwhile
            self.cache.listening(False)
            lost.set()

        connection.add_termination_listener(terminated)
        await connection.add_listener(CHANNEL, self.on_notice)
        self.connection = connection
        self.cache.listening(True)
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_SECONDS)
            if lost.is_set() or connection.is_closed():
                log.warning("authentication cache off until its listener reconnects")
                return
            await asyncio.wait_for(connection.fetchval("SELECT 1"), TIMEOUT_SECONDS)

    def on_notice(self, *_notice: Any) -> None:
        self.cache.invalidate()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)


async def serve(cache: AuthCache, engine: AsyncEngine) -> Listener | None:
    """Put ``cache`` in service for a process that answers requests: checks the triggers, and
    on PostgreSQL starts its listener (the cache is live once it listens)."""
    cache.served = True
    if not await cache.verify(engine) or cache.dialect != "postgresql":
        return None
    listener = Listener(cache, wakeup.connect_args(engine))
    listener.start()
    return listener
