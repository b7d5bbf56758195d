"""The store every process of one installation shares: rate-limit counts (S33), runs of
authentication failures and the fast path of address blocks (S5, S18).

``BANKHUB_RATE_LIMIT_STORAGE`` names it. ``memory://`` (the default) keeps it all in the process:
right for the embedded mode, where one process serves. Scaled out, every API process names the
same Redis (``redis://host:6379/0``, ``rediss://...``, ``redis+unix:///path/redis.sock`` or
``unix:///path/redis.sock``): then a limit of N allows N requests across all the processes, an
address's run of failures is one run whichever process answers, and a block is refused by every
process from the moment it is made.

Redis through the ``limits`` library's own storage: its moving windows are kept atomically
(Lua scripts) by its ``async+redis`` storage, which talks to Redis through the ``coredis``
client (installed by ``bankhub[redis]``). The failure runs and the block keys go through the
same client and connection pool. Each failure is one Lua script of our own
(:data:`FAILURE_RUN`) that reads, advances and re-arms the run inside Redis, so two processes
counting the same address at once never lose a failure; nothing is read, changed in Python and
written back. Our own because the storage's ``incr`` arms the expiry once, at the first
increment: a fixed window from the first failure, where a run of consecutive failures (S5) ends
only after a pause of the window since the *last* one, measured on bankhub's clock.

A store that stops answering while serving never turns a request into an error. Each operation
is bounded (:data:`OPERATION_TIMEOUT`); after a failure the store is left alone for
:data:`RETRY_SECONDS` so that requests do not each wait for it; :attr:`SharedStore.unavailable`
counts what went without it (for a metrics exporter), and the outage and the recovery are
logged once each. What each user of the store does meanwhile is its own choice (rate limits
are not enforced; failure runs are counted in the process; blocks are read from the database);
docs/security.md says why.

Start-up is where a wrong URL, a missing client or an unreachable server must show:
:func:`check` PINGs the store and raises a :class:`ConfigError` naming the variable, so ``bankhub
serve``, ``bankhub worker`` and the granian factory stop with one clear line instead of serving
500s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from limits.aio.storage import MovingWindowSupport, Storage
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from bankhub.config import ConfigError, Settings

if TYPE_CHECKING:
    from coredis import ConnectionPool, Redis
    from coredis.commands import Script

log = logging.getLogger("bankhub.security")

T = TypeVar("T")

VARIABLE = "BANKHUB_RATE_LIMIT_STORAGE"
#: how long start-up waits for the store's answer to PING
STARTUP_TIMEOUT = 3.0
#: the most one operation on the store may take while serving (connecting included)
OPERATION_TIMEOUT = 1.0
#: after an operation failed, the store is not asked again for this long
RETRY_SECONDS = 2.0
#: the prefix of bankhub's own keys (the ``limits`` library's keys start with ``LIMITS:``)
PREFIX = "bankhub:"

#: One more authentication failure of the address whose run is KEYS[1], at ARGV[1] (ms since the
#: epoch, the caller's clock): the run goes on when its last failure is less than ARGV[2] ms
#: ago, else this failure starts a new one. Returns the run's length. The key lapses ARGV[2] ms
#: after the last failure, when the run would have ended anyway.
FAILURE_RUN = """
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local run = redis.call('HMGET', KEYS[1], 'count', 'last')
local count = tonumber(run[1]) or 0
local last = tonumber(run[2])
if last == nil or now - last >= idle then
  count = 0
  last = now
end
count = count + 1
if now > last then
  last = now
end
redis.call('HSET', KEYS[1], 'count', count, 'last', last)
redis.call('PEXPIRE', KEYS[1], idle)
return count
"""


class StoreUnavailable(Exception):
    """The shared store did not answer (or is being left alone after it did not); the caller
    goes on without it."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """``BANKHUB_RATE_LIMIT_STORAGE`` as each of its readers needs it."""

    #: as configured
    text: str
    kind: Literal["memory", "redis"]
    #: for the ``limits`` library's async storage
    limits_url: str
    #: for the ``coredis`` client (``redis://``, ``rediss://`` or ``unix://``); "" for memory
    client_url: str

    @property
    def shared(self) -> bool:
        return self.kind == "redis"

    @property
    def shown(self) -> str:
        """The URL without its password, for messages and logs."""
        return shown(self.text)


def shown(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("@", 1)[-1]
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_url(text: str) -> StoreUrl:
    """The store named by ``text``; a :class:`ConfigError` naming the variable when bankhub
    cannot use it (the rate limits alone could live elsewhere, the failure runs and blocks
    cannot)."""
    url = text.strip()
    bare = url.removeprefix("async+")
    scheme = bare.split("://", 1)[0].lower() if "://" in bare else ""
    rest = bare.split("://", 1)[1] if "://" in bare else ""
    if scheme == "memory":
        return StoreUrl(url, "memory", "async+memory://", "")
    if scheme in ("redis", "rediss") and rest.split("/", 1)[0]:
        return StoreUrl(url, "redis", f"async+{scheme}://{rest}", f"{scheme}://{rest}")
    if scheme in ("redis+unix", "unix") and rest.startswith("/"):
        return StoreUrl(url, "redis", f"async+redis+unix://{rest}", f"unix://{rest}")
    raise ConfigError(
        f"{VARIABLE}: {shown(url)!r} is not a store bankhub can share; use memory:// (one "
        "process) or a Redis URL: redis://host:6379/0, rediss://host:6380/0 or "
        "redis+unix:///path/to/redis.sock"
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SharedStore:
    """One process's way to the store named by ``BANKHUB_RATE_LIMIT_STORAGE``: the ``limits``
    storage for the rate limits, and (with Redis) the failure runs and block keys."""

    def __init__(self, settings: Settings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = parse_url(settings.rate_limit_storage)
        self.monotonic = monotonic
        #: operations that went without the store (failed, timed out, or skipped while it was
        #: being left alone); only ever grows
        self.unavailable = 0
        self._down = False
        self._retry_at = 0.0
        self._warned_at: float | None = None
        self._pool: ConnectionPool | None = None
        self._client: Redis[bytes] | None = None
        self._failure_run: Script[bytes] | None = None
        self._storage: Storage | None = None
        self._errors: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError)

    @property
    def shared(self) -> bool:
        return self.url.shared

    # --- connections, made on first use (the in-memory storage needs the running loop) -------

    def _connect(self) -> Redis[bytes]:
        if self._client is None:
            try:
                import coredis
            except ImportError:
                raise ConfigError(self._missing_client()) from None
            self._pool = coredis.ConnectionPool.from_url(
                self.url.client_url,
                connect_timeout=OPERATION_TIMEOUT,
                stream_timeout=OPERATION_TIMEOUT,
            )
            self._client = coredis.Redis(connection_pool=self._pool)
            self._failure_run = self._client.register_script(FAILURE_RUN)
            self._errors = (StorageError, coredis.exceptions.RedisError, OSError, TimeoutError)
        return self._client

    def _missing_client(self) -> str:
        return (
            f"{VARIABLE}: {self.url.shown} needs the Redis client coredis, which is not "
            "installed; install bankhub with its redis extra: pip install 'bankhub[redis]'"
        )

    def storage(self) -> Storage:
        """The ``limits`` storage of the rate limits, with moving-window support."""
        if self._storage is None:
            options: dict[str, Any] = {}
            if self.shared:
                self._connect()
                options = {"connection_pool": self._pool, "wrap_exceptions": True}
            try:
                storage = storage_from_string(self.url.limits_url, **options)
            except ConfigurationError as exc:
                if "prerequisite" in str(exc):
                    raise ConfigError(self._missing_client()) from None
                raise ConfigError(f"{VARIABLE}: {exc}") from None
            if not isinstance(storage, Storage) or not isinstance(storage, MovingWindowSupport):
                raise ConfigError(f"{VARIABLE}: {self.url.shown} has no moving-window support")
            self._storage = storage
        return self._storage

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.disconnect()

    # --- every operation goes through here ------------------------------------------------

    async def run(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation``'s result, or :class:`StoreUnavailable` when the store failed it, took
        longer than :data:`OPERATION_TIMEOUT`, or failed less than :data:`RETRY_SECONDS` ago."""
        if self._down and self.monotonic() < self._retry_at:
            self.unavailable += 1
            raise StoreUnavailable(what)
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT):
                result = await operation()
        except self._errors as exc:
            self._failed(what, exc)
            raise StoreUnavailable(what) from exc
        if self._down:
            self._down = False
            log.warning(
                "%s %s answers again (%d operations went without it)",
                VARIABLE,
                self.url.shown,
                self.unavailable,
            )
        return result

    def _failed(self, what: str, exc: BaseException) -> None:
        self.unavailable += 1
        now = self.monotonic()
        self._retry_at = now + RETRY_SECONDS
        if self._down and self._warned_at is not None and now - self._warned_at < 60:
            return
        self._down = True
        self._warned_at = now
        log.warning(
            "%s %s is unavailable (%s: %s, while %s): rate limits are not enforced, "
            "authentication failures are counted in each process and blocks are read from the "
            "database until it answers again (%d operations without it so far)",
            VARIABLE,
            self.url.shown,
            type(exc).__name__,
            str(exc) or "no answer in time",
            what,
            self.unavailable,
        )

    async def ping(self) -> None:
        """Raise :class:`ConfigError` naming the variable unless the store answers PING within
        :data:`STARTUP_TIMEOUT`."""
        if not self.shared:
            return
        self.storage()  # the client is there, and ``limits`` takes the URL
        client = self._connect()
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                answer = await client.ping()
        except TimeoutError:
            reason = f"no answer within {STARTUP_TIMEOUT:.0f} s"
        except self._errors as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if answer in (b"PONG", "PONG"):
                return
            reason = f"it answered PING with {answer!r}"
        raise ConfigError(f"{VARIABLE}: the Redis at {self.url.shown} is unreachable ({reason})")

    # --- runs of authentication failures (S5, S18) -----------------------------------------

    async def add_failure(self, address: str, now: datetime, idle: timedelta) -> int:
        """One more failure of ``address``; the length of its run (see :data:`FAILURE_RUN`)."""
        self._connect()
        script = self._failure_run
        assert script is not None  # noqa: S101 - set by _connect  # nosec B101
        key = f"{PREFIX}failures:{address}"
        idle_ms = max(1, int(idle.total_seconds() * 1000))

        async def add() -> int:
            return int(str(await script(keys=[key], args=[_ms(now), idle_ms])))

        return await self.run("counting a failure", add)

    async def clear_failures(self, address: str) -> None:
        client = self._connect()

        async def clear() -> None:
            await client.delete([f"{PREFIX}failures:{address}"])

        await self.run("ending a run of failures", clear)

    # --- the fast path of blocks (S18) ------------------------------------------------------

    async def block(self, address: str, until: datetime, now: datetime) -> None:
        """Every process refuses ``address`` until ``until`` from its next request on."""
        client = self._connect()
        ttl = max(1, _ms(until) - _ms(now))

        async def store() -> None:
            await client.set(f"{PREFIX}block:{address}", str(_ms(until)), px=ttl)

        await self.run("storing a block", store)

    async def blocked_until(self, address: str) -> datetime | None:
        """The end of the address's block as the store knows it (None: not blocked there)."""
        client = self._connect()

        async def read() -> bytes | None:
            return await client.get(f"{PREFIX}block:{address}")

        value = await self.run("reading a block", read)
        if value is None:
            return None
        try:
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        except ValueError:
            return None

    async def unblock(self, address: str) -> bool:
        """Lift the block in the store; True when there was one."""
        client = self._connect()

        async def remove() -> int:
            return await client.delete([f"{PREFIX}block:{address}"])

        return await self.run("lifting a block", remove) > 0

    # --- nonces of signed requests (docs/signatures.md) -------------------------------------

    async def claim_once(self, key: str, until: datetime, now: datetime) -> bool:
        """Remember ``key`` until ``until``; False when it was already remembered (one atomic
        SET NX, so two processes given the same nonce at once accept it once)."""
        client = self._connect()
        from coredis.tokens import PureToken  # installed with the client _connect checked

        ttl = max(1, _ms(until) - _ms(now))

        async def claim() -> bool:
            stored = await client.set(f"{PREFIX}nonce:{key}", "1", px=ttl, condition=PureToken.NX)
            return bool(stored)

        return await self.run("remembering a nonce", claim)


def _in_a_loop_of_its_own(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end from synchronous code, whether or not this thread already runs
    an event loop (the granian factory may be called from one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def in_use(settings: Settings) -> bool:
    """Whether anything of this process reads the store: rate limits or blocks are on."""
    return settings.rate_limits_on or settings.blocking_on


def check(settings: Settings) -> None:
    """At start-up: the store can be used, else a :class:`ConfigError` that names
    ``BANKHUB_RATE_LIMIT_STORAGE`` and what is wrong (a URL bankhub cannot share, the Redis
    client missing, the server not answering PING within :data:`STARTUP_TIMEOUT`)."""
    if not in_use(settings):
        return
    store = SharedStore(settings)
    if not store.shared:
        return

    async def ping() -> None:
        try:
            await store.ping()
        finally:
            await store.close()

    _in_a_loop_of_its_own(ping())


def lift_block(settings: Settings, address: str) -> bool:
    """For ``bankhub unblock``: remove the address's block from the store too (True when it
    had one). :class:`StoreUnavailable` when the store does not answer."""
    store = SharedStore(settings)
    if not store.shared:
        return False

    async def lift() -> bool:
        try:
            return await store.unblock(address)
        finally:
            await store.close()

    return _in_a_loop_of_its_own(lift())
