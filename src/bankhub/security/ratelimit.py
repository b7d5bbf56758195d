"""S33: request rate limits per client address, per credential and per app (ASGI middleware).

Counts live in a ``limits`` storage: in memory by default (one process), or a shared one named by
``BANKHUB_RATE_LIMIT_STORAGE`` (``redis://...``) when several processes serve the API. Every
answer carries the ``RateLimit-Policy`` and ``RateLimit`` fields of
draft-ietf-httpapi-ratelimit-headers; a refused request gets 429 ``RateLimited`` and
``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from bankhub.api.errors import ApiError, ErrorCode
from bankhub.config import ConfigError, Settings
from bankhub.security.network import client_ip
from bankhub.security.secrets import SecretHasher

TOKEN_PATHS = frozenset({"/oauth/token", "/v2/token", "/v2/token/reconnect"})
CONNECT_PREFIX = "/v2/connect/"
#: form posts counted per address under the stricter ``connect`` limit: the connect page's, and
#: the dashboard's sign-in, code and re-authentication steps
FORM_LIMITED = (CONNECT_PREFIX, "/dashboard/sign-in", "/dashboard/reauth")
UNLIMITED_PATHS = frozenset({"/healthz"})
CREDENTIAL_HEADERS = (b"client-id", b"service-secret", b"app-secret", b"authorization")
SECRET_HEADERS = frozenset(CREDENTIAL_HEADERS[1:])


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
    """One named limit; ``key`` is what it counts (an address, a credential hash, an app)."""

    name: str
    item: RateLimitItem

    @property
    def field(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimits:
    """The configured policies and their storage."""

    def __init__(
        self, settings: Settings, hasher: SecretHasher, now: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.hasher = hasher
        self.now = now
        self.trusted = settings.trusted_networks
        url = settings.rate_limit_storage
        self.storage_url = url if url.startswith("async+") else f"async+{url}"
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
            try:
                storage = storage_from_string(self.storage_url)
            except ConfigurationError as exc:
                raise ConfigError(f"BANKHUB_RATE_LIMIT_STORAGE: {exc}") from None
            if not isinstance(storage, Storage) or not isinstance(storage, MovingWindowSupport):
                raise ConfigError(
                    f"BANKHUB_RATE_LIMIT_STORAGE: {self.storage_url} has no moving-window support"
                )
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    def _credential(self, headers: dict[bytes, str]) -> str | None:
        if not SECRET_HEADERS & headers.keys():
            return None
        joined = "\0".join(headers.get(name, "") for name in CREDENTIAL_HEADERS)
        return self.hasher.hash(joined, purpose="rate-limit")

    def applicable(self, scope: Scope) -> list[tuple[Policy, str]]:
        """The policies this request counts against, each with the key it is counted under."""
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path, method = scope["path"], scope.get("method", "GET")
        address = str(client_ip(scope, self.trusted))
        credential = self._credential(headers)
        keys: list[tuple[str, str]] = [("ip", address)]
        if credential is not None:
            keys.append(("credential", credential))
        if headers.get(b"client-id"):
            keys.append(("app", headers[b"client-id"][:64]))
        if method == "POST" and path in TOKEN_PATHS:
            keys.append(("token", f"ip:{address}"))
            if credential is not None:
                keys.append(("token", f"credential:{credential}"))
        if method == "POST" and path.startswith(FORM_LIMITED):
            keys.append(("connect", address))
        return [(policy, key) for name, key in keys for policy in self.policies[name]]

    async def check(self, scope: Scope) -> Verdict:
        """Count the request against every applicable policy; refused if any is exhausted."""
        limiter = self.limiter()
        counted = self.applicable(scope)
        # A refused request consumes nothing: first test every policy, then count in all of them.
        exhausted = [not await limiter.test(p.item, p.name, key) for p, key in counted]
        if not any(exhausted):
            for policy, key in counted:
                await limiter.hit(policy.item, policy.name, key)
        refused: list[int] = []
        status: dict[str, tuple[Policy, int, int]] = {}
        for (policy, key), over in zip(counted, exhausted, strict=True):
            reset, remaining = await limiter.get_window_stats(policy.item, policy.name, key)
            wait = max(0, math.ceil(reset - self.now()))
            if over:
                refused.append(max(1, wait))
            seen = status.get(policy.name)
            # the same policy counted under two keys (token per address and per credential):
            # report the tighter of the two
            if seen is None or remaining < seen[1]:
                status[policy.name] = (policy, max(0, remaining), wait)
        headers: dict[str, str] = {}
        if status:
            headers["RateLimit-Policy"] = ", ".join(p.field for p, _, _ in status.values())
            headers["RateLimit"] = ", ".join(
                f'"{p.name}";r={remaining};t={wait}' for p, remaining, wait in status.values()
            )
        if refused:
            headers["Retry-After"] = str(max(refused))
        return Verdict(not refused, headers)


class RateLimitMiddleware:
    """Refuses requests over a limit with 429 and adds the RateLimit fields to every answer."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        verdict = await self.limits.check(scope)
        if not verdict.allowed:
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"Too many requests; retry after {verdict.headers['Retry-After']} seconds",
                headers=verdict.headers,
            )

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                fields = MutableScopeHeaders.from_message(message)
                for name, value in verdict.headers.items():
                    fields[name] = value
            await send(message)

        await self.app(scope, receive, send_with_fields)
