"""Client addresses and what they may do: allow-lists (S17), referers, automatic blocks (S18).

The client address is the socket peer, unless the peer is a trusted proxy: then X-Forwarded-For
is walked from the right while each hop is trusted, and the first untrusted hop is the client.

Automatic blocks count *consecutive* authentication failures per address (S5): wherever a
credential is refused or verified, the request's :class:`AuthOutcome` is marked
(:func:`note_failure`, :func:`note_success`), and once the answer is sent
:class:`Settlement` hands the outcome to the :class:`AbuseGuard`, which keeps the counts
in one :class:`FailureCounts` store: a failure adds one to the address's run, a success from
the address ends the run, and the run reaching ``BANKHUB_BLOCK_FAILURES`` blocks the address.

Several processes serving one installation share the runs and the blocks through the store of
``BANKHUB_RATE_LIMIT_STORAGE`` (:mod:`bankhub.security.shared`): :class:`SharedFailureCounts`
counts there, and a block is put there before the answer that caused it leaves, so every
process refuses the address from its next request on. The ``blocked_addresses`` table stays
the durable record (with its ``address.blocked`` audit entry): it outlives the store, and while
the store does not answer, blocks are read from it (each process trusting what it read for
``BANKHUB_BLOCK_CACHE_SECONDS``) and failures are counted in the process. Blocks never fail
open: a block that was stored is refused by every process, at most that cache time late.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, Protocol
from urllib.parse import urlsplit

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.clock import Clock
from bankhub.config import IPNetwork, Settings
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode, Throttled
from bankhub.partners.models import App, BlockedAddress
from bankhub.security.authcache import AppView
from bankhub.security.shared import SharedStore, StoreUnavailable

log = logging.getLogger("bankhub.security")

IPAddress = IPv4Address | IPv6Address

#: the API surface end users reach from their browsers; never subject to an app's allow-list
CONNECT_PREFIX = "/v2/connect/"
#: never refused for an address block: the load balancer's health check
UNGUARDED_PATHS = frozenset({"/healthz", "/readyz"})
MAX_CIDRS = 100
#: where a request's authentication outcome lives in the ASGI scope's state
OUTCOME_KEY = "bankhub.auth-outcome"
UNKNOWN = ip_address("0.0.0.0")  # noqa: S104 - a placeholder value, never bound  # nosec B104


# --- the client address --------------------------------------------------------------------------


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]


def _parse(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def peer_address(scope: Scope) -> IPAddress:
    client = scope.get("client")
    peer = _parse(str(client[0])) if client else None
    return peer or UNKNOWN


def from_trusted_proxy(scope: Scope, trusted: Sequence[IPNetwork]) -> bool:
    return bool(trusted) and _trusted(peer_address(scope), trusted)


def client_ip(scope: Scope, trusted: Sequence[IPNetwork]) -> IPAddress:
    """The client's address: the socket peer, or the nearest untrusted X-Forwarded-For hop."""
    address = peer_address(scope)
    if not from_trusted_proxy(scope, trusted):
        return address
    hops = [h for value in _header_values(scope, b"x-forwarded-for") for h in value.split(",")]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:
            # A hop we cannot read ends the walk; the trusted proxy that passed it is the client.
            return address
        address = parsed
        if not _trusted(address, trusted):
            return address
    return address


# --- S17: the app's allow-list -------------------------------------------------------------------


def parse_cidrs(values: Iterable[str]) -> list[str]:
    """Each entry as a normalised CIDR; a DataInvalid error names every entry that is not one."""
    cidrs: list[str] = []
    bad: list[str] = []
    for value in values:
        try:
            network = ip_network(value.strip(), strict=False) if value.strip() else None
        except ValueError:
            network = None
        if network is None:
            bad.append(value[:100])
        elif str(network) not in cidrs:
            cidrs.append(str(network))
    if bad:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "Not an IPv4/IPv6 address or CIDR range: " + ", ".join(repr(b) for b in bad),
            {"problems": [f"cidrs: {b!r}" for b in bad]},
        )
    if len(cidrs) > MAX_CIDRS:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"At most {MAX_CIDRS} CIDR ranges are allowed",
            {"problems": ["cidrs"]},
        )
    return cidrs


def check_ip_allowed(app: App | AppView, ip: IPAddress) -> None:
    """Raise ``AddressNotAllowed`` unless the app allows any address or ``ip`` is in its list."""
    if app.ip_allowlist is None:
        return
    if any(ip in ip_network(cidr, strict=False) for cidr in app.ip_allowlist):
        return
    raise DomainError(
        ErrorCode.ADDRESS_NOT_ALLOWED,
        f"Requests from {ip} are not allowed for this app; add it to the app's IP allow-list",
        {"address": str(ip)},
    )


def enforce(request: Request[Any, Any, Any], app: App | AppView, settings: Settings) -> None:
    """The allow-list check after authentication; connect pages belong to end users, not apps."""
    if request.url.path.startswith(CONNECT_PREFIX):
        return
    check_ip_allowed(app, client_ip(request.scope, settings.trusted_networks))


# --- S17: referer restriction (browser-exposed keys) --------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_parts(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _matches(pattern: str, origin: tuple[str, str, int]) -> bool:
    wildcard = "://*." in pattern
    parsed = _origin_parts(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if parsed is None:
        return False
    scheme, host, port = parsed
    if (scheme, port) != (origin[0], origin[2]):
        return False
    if wildcard:
        return origin[1].endswith("." + host)
    return origin[1] == host


def referer_allowed(referer: str | None, origin: str | None, patterns: Sequence[str]) -> bool:
    """Whether a browser request's Origin (else its Referer) matches one of ``patterns``.

    Patterns are origins such as ``https://app.example.com`` or ``https://*.example.com`` (any
    subdomain, not the bare domain). No patterns means no restriction; with patterns, a request
    that names neither header is refused.
    """
    if not patterns:
        return True
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    parts = _origin_parts(source)
    if parts is None:
        return False
    return any(_matches(pattern, parts) for pattern in patterns)


# --- S18: automatic blocks -----------------------------------------------------------------------

#: error codes that mean a wrong or unknown credential
FAILURE_CODES = frozenset(
    {
        ErrorCode.CREDENTIAL_INVALID,
        ErrorCode.CLIENT_NOT_FOUND,
        ErrorCode.LOGIN_NOT_FOUND,
        # a refused request signature is a refused credential (docs/signatures.md)
        ErrorCode.SIGNATURE_INVALID,
        ErrorCode.SIGNATURE_EXPIRED,
        ErrorCode.SIGNATURE_REPLAYED,
        ErrorCode.SIGNATURE_REQUIRED,
    }
)


def is_auth_failure(error: DomainError, headers: dict[str, str] | Any) -> bool:
    """A failed authentication: a wrong client-id/secret, a guessed login-secret, a bad token."""
    challenge = error.challenge or ""
    if "invalid_token" in challenge:
        return True
    if error.code == ErrorCode.LOGIN_NOT_FOUND:
        # LoginNotFound also answers an unknown login id; only a presented secret is a guess.
        return "login-secret" in headers
    return error.code in FAILURE_CODES


@dataclass(slots=True)
class AuthOutcome:
    """What the credentials a request presented came to.

    A request can have both: a verified API key with a guessed login-secret. Then the failure
    counts, else a guesser holding one right credential would end its own run of failures.
    """

    failed: bool = False
    succeeded: bool = False


def outcome_of(scope: Scope) -> AuthOutcome:
    state = scope.setdefault("state", {})
    outcome = state.get(OUTCOME_KEY)
    if not isinstance(outcome, AuthOutcome):
        outcome = state[OUTCOME_KEY] = AuthOutcome()
    return outcome


def note_failure(scope: Scope) -> None:
    """A credential this request presented was refused (S18 counts it for the address)."""
    outcome_of(scope).failed = True


def note_success(scope: Scope) -> None:
    """This request's app credential was verified (it ends the address's run of failures)."""
    outcome_of(scope).succeeded = True


class FailureCounts(Protocol):
    """The runs of consecutive authentication failures, per address: the one place S18 counts.

    :class:`MemoryFailureCounts` keeps them in the process (one process serves);
    :class:`SharedFailureCounts` in the store every process shares (Redis), so that an
    address's run is the same whichever process answers.
    """

    async def add(self, address: str, now: datetime, idle: timedelta) -> int:
        """Count one failure of ``address``; the length of its run, this one included. A run
        with no failure for ``idle`` has ended: the failure starts a new one."""
        ...

    async def clear(self, address: str) -> None:
        """End the address's run: it authenticated, or it is blocked now."""
        ...


class MemoryFailureCounts:
    """:class:`FailureCounts` in this process's memory."""

    #: addresses remembered at most; past it, runs that have ended are dropped first
    MAX_ADDRESSES = 100_000

    def __init__(self) -> None:
        self._runs: dict[str, tuple[int, datetime]] = {}

    async def add(self, address: str, now: datetime, idle: timedelta) -> int:
        count, last = self._runs.get(address, (0, now))
        count = count + 1 if now - last < idle else 1
        self._runs[address] = (count, now)
        if len(self._runs) > self.MAX_ADDRESSES:
            self._prune(now, idle)
        return count

    async def clear(self, address: str) -> None:
        self._runs.pop(address, None)

    def _prune(self, now: datetime, idle: timedelta) -> None:
        self._runs = {a: run for a, run in self._runs.items() if now - run[1] < idle}
        if len(self._runs) > self.MAX_ADDRESSES:
            # a flood from more addresses than that: forget the oldest half rather than grow
            newest = sorted(self._runs.items(), key=lambda item: item[1][1])
            self._runs = dict(newest[len(newest) // 2 :])


class SharedFailureCounts:
    """:class:`FailureCounts` in the shared store: one atomic script per failure there, so
    failures counted by several processes at once all count. While the store does not answer,
    the runs are counted in this process instead (as with one process): protection degrades
    to what one process sees, never to none."""

    def __init__(self, store: SharedStore) -> None:
        self.store = store
        self.fallback = MemoryFailureCounts()

    async def add(self, address: str, now: datetime, idle: timedelta) -> int:
        try:
            return await self.store.add_failure(address, now, idle)
        except StoreUnavailable:
            return await self.fallback.add(address, now, idle)

    async def clear(self, address: str) -> None:
        await self.fallback.clear(address)
        # while the store does not answer, the run there lapses by itself within the window
        with contextlib.suppress(StoreUnavailable):
            await self.store.clear_failures(address)


@dataclass(slots=True)
class _Cached:
    until: datetime | None
    read_at: float


class AbuseGuard:
    """Blocks an address after a run of consecutive authentication failures (S5, S18)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        counts: FailureCounts | None = None,
        store: SharedStore | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.monotonic = monotonic
        #: failures further apart than this do not make one run
        self.window = timedelta(seconds=settings.block_window_seconds)
        self.store = store if store is not None else SharedStore(settings)
        if counts is None:
            counts = SharedFailureCounts(self.store) if self.store.shared else MemoryFailureCounts()
        self.counts: FailureCounts = counts
        self._cache: dict[str, _Cached] = {}
        #: blocks not stored yet: their end, the run's length and when the run completed
        self._pending: dict[str, tuple[datetime, int, datetime]] = {}

    async def blocked_until(self, address: str) -> datetime | None:
        """The end of the address's block: a block this process made and could not store
        yet, or one it knows of, else the shared store's (at once, whichever process made it),
        else the ``blocked_addresses`` table (read at most once per cache TTL)."""
        now = self.clock()
        pending = self._pending.get(address)
        if pending is not None and pending[0] > now:
            return pending[0]
        cached = self._cache.get(address)
        fresh = cached is not None and (
            self.monotonic() - cached.read_at < self.settings.block_cache_seconds
        )
        if fresh and cached is not None and cached.until is not None and cached.until > now:
            return cached.until
        if self.store.shared:
            try:
                shared_until = await self.store.blocked_until(address)
            except StoreUnavailable:
                shared_until = None  # the table below still holds every stored block
            if shared_until is not None and shared_until > now:
                self._cache[address] = _Cached(shared_until, self.monotonic())
                return shared_until
        if not fresh:
            async with self.db.transaction() as session:
                row = await session.get(BlockedAddress, address)
                until = row.blocked_until if row is not None else None
            cached = _Cached(until, self.monotonic())
            self._cache[address] = cached
            if len(self._cache) > 100_000:
                self._cache.clear()
        if cached is None:  # set just above when missing
            return None
        return cached.until if cached.until is not None and cached.until > now else None

    async def settle(self, address: str, outcome: AuthOutcome) -> None:
        """Count the request's outcome for its address, then store any block it caused."""
        if outcome.failed:
            await self.note_failure(address)
        elif outcome.succeeded:
            await self.counts.clear(address)
        await self.flush()

    async def note_failure(self, address: str) -> bool:
        """Count one failure; True when this one completes the run: the block is then in
        this process's memory and the shared store, and pending for the database."""
        now = self.clock()
        count = await self.counts.add(address, now, self.window)
        if count < self.settings.block_failures:
            return False
        await self.counts.clear(address)
        until = now + timedelta(seconds=self.settings.block_seconds)
        self._pending[address] = (until, count, now)
        self._cache[address] = _Cached(until, self.monotonic())
        if self.store.shared:
            # while the store does not answer, other processes read the block from the table
            # (flushed before the answer leaves), within their cache time
            with contextlib.suppress(StoreUnavailable):
                await self.store.block(address, until, now)
        return True

    async def flush(self) -> None:
        """Store pending blocks with their audit entries, so that every process honours them
        and the block outlives the shared store. A block that cannot be stored now is logged
        and kept pending: the next outcome this process settles tries again."""
        while self._pending:
            address, (until, count, now) = self._pending.popitem()
            reason = f"{count} consecutive authentication failures"
            try:
                # S14: a block belongs to no app, and neither does its audit entry; the request
                # that caused it may act for an app (a guessed login-secret beside a valid key)
                with tenancy.everything():
                    async with self.db.transaction() as session:
                        await session.execute(
                            delete(BlockedAddress).where(BlockedAddress.address == address)
                        )
                        session.add(
                            BlockedAddress(
                                address=address, reason=reason, blocked_until=until, created_at=now
                            )
                        )
                        audit.record(
                            session,
                            now=now,
                            actor="system:abuse-guard",
                            action="address.blocked",
                            target_type="address",
                            target_id=address,
                            detail={"reason": reason, "blocked_until": until.isoformat()},
                        )
            except (SQLAlchemyError, OSError):
                self._pending.setdefault(address, (until, count, now))
                log.exception(
                    "could not store the block of %s until %s (%s); this process refuses it "
                    "and tries again with its next authentication outcome",
                    address,
                    until.isoformat(),
                    reason,
                )
                return
            log.warning("blocked %s until %s: %s", address, until.isoformat(), reason)

    def refusal(self, address: str, until: datetime) -> DomainError:
        """429 ``AddressBlocked`` with ``Retry-After`` and the RateLimit fields of every 429:
        the block is a policy of ``BANKHUB_BLOCK_FAILURES`` failures with nothing left until
        the block ends."""
        seconds = max(1, int((until - self.clock()).total_seconds() + 0.999))
        policy = f'"block";q={self.settings.block_failures};w={self.settings.block_window_seconds}'
        return Throttled(
            ErrorCode.ADDRESS_BLOCKED,
            f"Requests from {address} are blocked after too many failed authentications; "
            f"retry in {seconds} seconds",
            {"address": address},
            retry_after=seconds,
            policy=policy,
            state=f'"block";r=0;t={seconds}',
        )


def address_key(address: str) -> str:
    """An address as blocks are kept under it (``2001:DB8:0::66`` is ``2001:db8::66``)."""
    parsed = _parse(address)
    if parsed is None:
        raise DomainError(ErrorCode.DATA_INVALID, f"{address[:100]!r} is not an IP address")
    return str(parsed)


async def unblock(session: AsyncSession, address: str, *, now: datetime, actor: str) -> bool:
    """Remove a block (audited); False when the address was not blocked. The shared store's
    copy is lifted by the caller (:func:`bankhub.security.shared.lift_block`)."""
    key = address_key(address)
    row = await session.get(BlockedAddress, key)
    if row is None:
        return False
    await session.execute(delete(BlockedAddress).where(BlockedAddress.address == key))
    audit.record(
        session,
        now=now,
        actor=actor,
        action="address.unblocked",
        target_type="address",
        target_id=key,
        detail={"reason": row.reason, "blocked_until": row.blocked_until.isoformat()},
    )
    return True


class BlockMiddleware:
    """Refuses blocked addresses before anything else of the route runs."""

    def __init__(self, app: ASGIApp, guard: AbuseGuard, settings: Settings) -> None:
        self.app = app
        self.guard = guard
        self.trusted = settings.trusted_networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in UNGUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        address = str(client_ip(scope, self.trusted))
        until = await self.guard.blocked_until(address)
        if until is not None:
            raise self.guard.refusal(address, until)
        await self.app(scope, receive, send)


class Settlement:
    """The request's authentication outcome, counted for its address and any block it caused
    stored (the edge, :class:`bankhub.api.edge.Edge`, settles it as the answer starts, outside
    the error handlers too). So the failure that completes a run is answered only once every
    process refuses the address, and nothing is left to fail after the answer started (where no
    error handler could report it). A request that sends no answer is settled when it ends;
    :meth:`settle` acts once."""

    __slots__ = ("_guard", "_outcome", "_scope", "_settled", "_trusted")

    def __init__(self, scope: Scope, guard: AbuseGuard) -> None:
        self._scope = scope
        self._guard = guard
        self._trusted = guard.settings.trusted_networks
        self._outcome = outcome_of(scope)
        self._settled = False

    async def settle(self) -> None:
        outcome = self._outcome
        if self._settled or not (outcome.failed or outcome.succeeded):
            return
        self._settled = True
        address = str(client_ip(self._scope, self._trusted))
        try:
            await self._guard.settle(address, outcome)
        except Exception:
            # the answer is decided and must leave; what went wrong goes to the log
            log.exception("could not count the authentication outcome of %s", address)
