"""S33: request rate limits per client address, per API key and per app.

A limit for an app or a key is only ever counted once the credential is verified: a client-id
alone, or a wrong secret beside it, consumes nothing of the app's limits, so nobody can use
them up for its owner. What each request counts against:

* Routes that take no app credential (the catalogue, the connect page, the dashboard, health
  and media): per client address (``ip``) before the route runs, form submissions also under
  the stricter ``connect``.
* Routes that take an app credential (the API's ``read``/``write``/``master`` routes, OAuth's
  token, revocation and introspection endpoints): nothing before the route runs. Once the
  credential is verified (:func:`admit`, from :meth:`bankhub.hub.Hub.principal` and the OAuth
  endpoints), per key (``credential``; a bearer token counts for the key it was granted with)
  and per app (``app``); the token endpoints also per key under the stricter ``token``. When
  no credential is verified (missing, wrong, revoked, refused by the allow-list), the request
  is anonymous traffic of its address: it counts under ``ip`` (and the token endpoints'
  ``token`` per address), and once the address is over one of those, such requests are
  answered 429 instead of their error (:func:`refusal`). Partners sharing an address (NAT) are
  therefore never refused for the address's anonymous traffic nor for each other.

Counts live in the ``limits`` storage of the :class:`~bankhub.security.shared.SharedStore`: in
memory by default (one process), or the Redis named by ``BANKHUB_RATE_LIMIT_STORAGE`` when several
processes serve the API, so that a limit of N allows N requests across all of them. A request
counts only when every policy has room; each count is the storage's own atomic check-and-add,
so two processes racing for the last unit cannot both have it. While the store does not answer,
the limits fail open: requests are served uncounted (a logged warning, and
``SharedStore.unavailable`` counts them), because refusing everything would turn an outage of
the store into an outage of the API. Every answer carries the ``RateLimit-Policy`` and
``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers for the policies the request
counted against; a refused request gets 429 ``RateLimited``, ``Retry-After`` and the same
fields, and consumes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub.config import ConfigError, Settings
from bankhub.errors import DomainError, ErrorCode, Throttled
from bankhub.security import scopes
from bankhub.security.network import client_ip
from bankhub.security.shared import SharedStore, StoreUnavailable

TOKEN_PATHS = frozenset({"/oauth/token", "/v2/token", "/v2/token/reconnect"})
#: OAuth endpoints that authenticate the client from the form (their routes are ``public``)
CLIENT_AUTH_PATHS = frozenset({"/oauth/token", "/oauth/revoke", "/oauth/introspect"})
#: route declarations whose routes authenticate with an app credential
CREDENTIAL_SCOPES = frozenset(s.value for s in scopes.Scope)
CONNECT_PREFIX = "/v2/connect/"
#: form posts counted per address under the stricter ``connect`` limit: the connect page's, and
#: the dashboard's sign-in, code and re-authentication steps
FORM_LIMITED = (CONNECT_PREFIX, "/dashboard/sign-in", "/dashboard/reauth")
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
#: where the request's :class:`Meter` lives in the ASGI scope's state
STATE_KEY = "bankhub.rate-limits"


def _limits(text: str, variable: str) -> list[RateLimitItem]:
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"{variable}: {text!r} is not a rate limit such as '600/minute'")
    return items


@dataclass(frozen=True, slots=True)
class Policy:
    """One named limit; ``key`` is what it counts (an address, an API key, an app)."""

    name: str
    item: RateLimitItem

    @property
    def field(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'


Counted = list[tuple[Policy, str]]
#: per policy name: the policy, what is left of it, the seconds until its window frees up
Status = dict[str, tuple[Policy, int, int]]


def takes_credential(scope: Scope) -> bool:
    """Whether the route authenticates with an app credential (counted once it is verified)."""
    if scope["path"] in CLIENT_AUTH_PATHS:
        return True
    handler = scope.get("route_handler")
    declared = scopes.declared(handler.opt or {}) if handler is not None else None
    return declared in CREDENTIAL_SCOPES


class RateLimits:
    """The configured policies and their storage."""

    def __init__(
        self,
        settings: Settings,
        store: SharedStore | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else SharedStore(settings)
        self.now = now
        self.trusted = settings.trusted_networks
        self._limiter: MovingWindowRateLimiter | None = None
        self.policies: dict[str, list[Policy]] = {}
        for name, text, variable in (
            ("ip", settings.rate_limit_per_ip, "BANKHUB_RATE_LIMIT_PER_IP"),
            ("credential", settings.rate_limit_per_credential, "BANKHUB_RATE_LIMIT_PER_CREDENTIAL"),
            ("app", settings.rate_limit_per_app, "BANKHUB_RATE_LIMIT_PER_APP"),
            ("token", settings.rate_limit_token, "BANKHUB_RATE_LIMIT_TOKEN"),
            ("connect", settings.rate_limit_connect, "BANKHUB_RATE_LIMIT_CONNECT"),
        ):
            items = _limits(text, variable)
            self.policies[name] = [
                Policy(name if n == 0 else f"{name}-{n + 1}", item) for n, item in enumerate(items)
            ]

    def limiter(self) -> MovingWindowRateLimiter:
        # Made on first use: the in-memory storage needs the running event loop.
        if self._limiter is None:
            self._limiter = MovingWindowRateLimiter(self.store.storage())
        return self._limiter

    def _each(self, keys: list[tuple[str, str]]) -> Counted:
        return [(policy, key) for name, key in keys for policy in self.policies[name]]

    def applicable(self, scope: Scope) -> Counted:
        """The policies counted before the route runs, each with the key it is counted under."""
        path, method = scope["path"], scope.get("method", "GET")
        address = str(client_ip(scope, self.trusted))
        keys: list[tuple[str, str]] = []
        if not takes_credential(scope):
            keys.append(("ip", address))
        if method == "POST" and path.startswith(FORM_LIMITED):
            keys.append(("connect", address))
        return self._each(keys)

    def anonymous(self, scope: Scope) -> Counted:
        """The policies a route taking an app credential counts when none is verified."""
        if not takes_credential(scope):
            return []
        address = str(client_ip(scope, self.trusted))
        keys = [("ip", address)]
        if scope.get("method", "GET") == "POST" and scope["path"] in TOKEN_PATHS:
            keys.append(("token", f"ip:{address}"))
        return self._each(keys)

    def verified(self, scope: Scope, app_id: int, key_id: str | None) -> Counted:
        """The policies a verified credential counts against: its key's, its app's."""
        key = f"key:{key_id}" if key_id is not None else f"app:{app_id}"
        keys = [("credential", key), ("app", f"app:{app_id}")]
        if scope.get("method", "GET") == "POST" and scope["path"] in TOKEN_PATHS:
            keys.append(("token", key))
        return self._each(keys)

    async def _state(self, policy: Policy, key: str) -> tuple[int, int]:
        """What is left of the policy under ``key``, and the seconds until its window frees up."""
        reset, remaining = await self.limiter().get_window_stats(policy.item, policy.name, key)
        return max(0, remaining), max(0, math.ceil(reset - self.now()))

    async def exhausted(self, counted: Counted) -> Status:
        """The policies with nothing left, with their state; counts nothing. Nothing is
        exhausted while the store does not answer (the limits fail open)."""
        if not counted:
            return {}
        limiter = self.limiter()

        async def find() -> Status:
            found: Status = {}
            for policy, key in counted:
                if not await limiter.test(policy.item, policy.name, key):
                    found[policy.name] = (policy, *await self._state(policy, key))
            return found

        try:
            return await self.store.run("reading rate limits", find)
        except StoreUnavailable:
            return {}

    async def count(self, counted: Counted, status: Status) -> int | None:
        """Count the request against every policy, unless one is exhausted: then it counts
        nowhere and the answer is the seconds to wait. Each policy's state goes to ``status``.
        While the store does not answer the request is served uncounted (fail open)."""
        if not counted:
            return None
        limiter = self.limiter()

        async def counting() -> tuple[int | None, Status]:
            exhausted = [not await limiter.test(p.item, p.name, key) for p, key in counted]
            if not any(exhausted):
                for n, (policy, key) in enumerate(counted):
                    # the storage's own check-and-add: another process may have taken the last
                    # unit since the test above, and then this request is over the limit too
                    if not await limiter.hit(policy.item, policy.name, key):
                        exhausted[n] = True
            refused: list[int] = []
            states: Status = {}
            for (policy, key), over in zip(counted, exhausted, strict=True):
                remaining, wait = await self._state(policy, key)
                if over:
                    refused.append(max(1, wait))
                seen = states.get(policy.name)
                # the same policy counted under two keys: report the tighter of the two
                if seen is None or remaining < seen[1]:
                    states[policy.name] = (policy, remaining, wait)
            return (max(refused) if refused else None), states

        try:
            wait, states = await self.store.run("counting rate limits", counting)
        except StoreUnavailable:
            return None
        for name, state in states.items():
            seen = status.get(name)
            if seen is None or state[1] < seen[1]:
                status[name] = state
        return wait


#: the draft's header fields, as :func:`fields` names them
FIELD_NAMES = ("RateLimit-Policy", "RateLimit")


def fields(status: Status) -> dict[str, str]:
    """The RateLimit-Policy and RateLimit fields of the policies in ``status``."""
    if not status:
        return {}
    return {
        "RateLimit-Policy": ", ".join(p.field for p, _, _ in status.values()),
        "RateLimit": ", ".join(
            f'"{p.name}";r={remaining};t={wait}' for p, remaining, wait in status.values()
        ),
    }


def too_many(seconds: int, status: Status) -> Throttled:
    sent = fields(status)
    return Throttled(
        ErrorCode.RATE_LIMITED,
        f"Too many requests; retry after {seconds} seconds",
        retry_after=seconds,
        policy=sent.get("RateLimit-Policy"),
        state=sent.get("RateLimit"),
    )


@dataclass(slots=True)
class Meter:
    """One request's counting: what it counted, and whether an app credential was verified."""

    limits: RateLimits
    #: counted when no app credential is verified (routes taking one)
    anonymous: Counted
    #: the policies of ``anonymous`` the address had exhausted before the route ran: when not
    #: empty, a request whose credential is not verified is refused
    address_over: Status = field(default_factory=dict)
    #: a credential was verified and counted; ``wait`` is set when that count was refused (a
    #: request may be authenticated twice: the Idempotency-Key layer looks up the app first)
    verified: bool = False
    wait: int | None = None
    settled: bool = False
    #: per policy name: the policy, what is left, the seconds until its window frees up
    status: Status = field(default_factory=dict)

    async def settle(self) -> None:
        """Once: a request whose credential was never verified counts as its address's."""
        if self.settled:
            return
        self.settled = True
        if not self.verified and self.anonymous:
            await self.limits.count(self.anonymous, self.status)


def meter_of(scope: Scope) -> Meter | None:
    meter = scope.get("state", {}).get(STATE_KEY)
    return meter if isinstance(meter, Meter) else None


async def admit(scope: Scope, app_id: int, key_id: str | None) -> None:
    """A credential of ``app_id`` is verified: count the request against its key's and its
    app's limits, and refuse it (429) when one is exhausted."""
    meter = meter_of(scope)
    if meter is None:
        return
    if not meter.verified:
        meter.verified = True
        counted = meter.limits.verified(scope, app_id, key_id)
        meter.wait = await meter.limits.count(counted, meter.status)
    if meter.wait is not None:
        raise too_many(meter.wait, meter.status)


def refusal(scope: Scope) -> DomainError | None:
    """The 429 that replaces the answer to a request whose app credential was not verified,
    when its address is over its limit for such requests; None otherwise."""
    meter = meter_of(scope)
    if meter is None or meter.verified or not meter.address_over:
        return None
    wait = max(max(1, wait) for _, _, wait in meter.address_over.values())
    return too_many(wait, meter.address_over)


#: ``scope["state"]`` key of a connect step another bankhub process received, counted and passed
#: on to the process holding its session (``bankhub.connect.hop``): not counted a second time
PASSED_ON = "bankhub.hopped"


class RateLimitMiddleware:
    """Counts and refuses what is known before the route runs, holds the request's
    :class:`Meter` for what is known later, and adds the RateLimit fields to the answer."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["path"] in UNLIMITED_PATHS
            or scope.get("state", {}).get(PASSED_ON)
        ):
            await self.app(scope, receive, send)
            return
        limits = self.limits
        meter = Meter(limits, limits.anonymous(scope))
        wait = await limits.count(limits.applicable(scope), meter.status)
        if wait is not None:
            raise too_many(wait, meter.status)
        if meter.anonymous:
            meter.address_over = await limits.exhausted(meter.anonymous)
        scope.setdefault("state", {})[STATE_KEY] = meter

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                await meter.settle()
                headers = MutableScopeHeaders.from_message(message)
                counted = fields(meter.status)
                for name in FIELD_NAMES:
                    # a cached answer carries the fields of the request it was made for: this
                    # request's numbers, or none when it was not counted (the store is down)
                    if name in counted:
                        headers[name] = counted[name]
                    elif name in headers:
                        del headers[name]
            await send(message)

        try:
            await self.app(scope, receive, send_with_fields)
        finally:
            await meter.settle()
