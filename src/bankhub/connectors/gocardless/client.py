"""The HTTP side of GoCardless Bank Account Data (API v2): tokens, calls, errors, rate limits.

The provider authenticates bankhub (not the user) with a JWT pair obtained from the operator's
secret id and key: an access token (a day by default) and a refresh token (30 days). The pair is
one per bankhub installation, shared by every login and every process; a :class:`TokenProvider`
hands it out (``bankhub.banks.gocardless`` keeps it in the database), and this module only speaks
the protocol. Errors are the provider's JSON (``summary``, ``detail``, ``type``,
``status_code``) and become the typed failures of :mod:`bankhub.connectors.base`.

Rate limits come in two families of headers: the general one (``X-RateLimit-Limit``,
``-Remaining``, ``-Reset``) and the per-account one on account reads
(``X-RateLimit-Account-Success-Limit``, ``-Remaining``, ``-Reset``), the latter being the
provider's 4 unattended reads per account and day. The provider has sent them both as
``X-RateLimit-…`` and in the WSGI spelling ``HTTP_X_RATELIMIT_…``; both are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from bankhub.connectors.base import (
    ConnectorFailure,
    ConsentExpired,
    InteractionRejected,
    ProviderUnavailable,
    RateLimited,
)

DEFAULT_BASE_URL = "https://bankaccountdata.gocardless.com"
#: what a call is for: the same refusal means another thing while the user waits
Stage = Literal["login", "read"]
#: the provider's error ``type`` values after which only a new agreement helps
ACCESS_GONE = frozenset(
    {"AccessExpiredError", "AccountInactiveError", "EUAExpiredError", "RequisitionExpiredError"}
)
#: 401 answers about the bank or the agreement, not about bankhub's access token
NOT_ABOUT_THE_TOKEN = ACCESS_GONE | {"FailedAuthentication", "AccountEUAScopeError"}


class ConfigurationMissing(ProviderUnavailable):
    """The operator has not configured the GoCardless secret id and key."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    """The provider's JWT pair with the moments each stops working."""

    access: str
    access_expires_at: datetime
    refresh: str
    refresh_expires_at: datetime

    def __repr__(self) -> str:  # the tokens are bearer credentials: never in a log line
        return f"TokenPair(<hidden>, access until {self.access_expires_at.isoformat()})"


@dataclass(frozen=True, slots=True)
class Secrets:
    """The operator's secret id and key (the provider's user secrets)."""

    secret_id: str
    secret_key: str

    def __repr__(self) -> str:  # never in a log line or a traceback's locals
        return "Secrets(<hidden>)"


class TokenProvider(Protocol):
    """Hands out a valid access token, renewing the pair before it expires."""

    async def access_token(self, *, refused: str | None = None) -> str:
        """A valid access token; ``refused``: the one the provider just turned down (renew it
        unless another holder already has)."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One family of ``X-RateLimit-*`` headers: what is left and when it is renewed."""

    limit: int | None
    remaining: int | None
    reset_seconds: float | None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    general: RateLimit
    account: RateLimit


def _header(headers: httpx.Headers, name: str) -> str | None:
    """``X-RateLimit-Reset`` or its WSGI spelling ``HTTP_X_RATELIMIT_RESET``."""
    for key in (name, "HTTP_" + name.upper().replace("-", "_")):
        value: str | None = headers.get(key)
        if value is not None and value.strip():
            return value.strip()
    return None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def rate_limit(headers: httpx.Headers, family: str = "") -> RateLimit:
    """The ``X-RateLimit{family}-*`` headers (``family``: ``""`` or ``"-Account-Success"``)."""

    def read(part: str) -> float | None:
        return _number(_header(headers, f"X-RateLimit{family}-{part}"))

    limit, remaining = read("Limit"), read("Remaining")
    return RateLimit(
        None if limit is None else int(limit),
        None if remaining is None else int(remaining),
        read("Reset"),
    )


def _said(body: Any) -> str:
    """The provider's own words (``summary``/``detail``, or a field's errors)."""
    if not isinstance(body, Mapping):
        return ""
    parts: list[str] = []
    for key in ("summary", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    if not parts:
        for key, value in body.items():
            nested = value if isinstance(value, list) else [value]
            for item in nested:
                if isinstance(item, Mapping):
                    words = _said(item)
                    if words:
                        parts.append(f"{key}: {words}")
    return "; ".join(parts)


def failure_for(reply: Reply, stage: Stage) -> ConnectorFailure:
    """The typed failure for an error answer: its ``type`` first, then its status."""
    body = reply.body if isinstance(reply.body, Mapping) else {}
    kind = body.get("type") if isinstance(body.get("type"), str) else ""
    said = _said(body)
    suffix = f" ({said})" if said else ""
    if reply.status == 429:
        waits = [w for w in (reply.account.reset_seconds, reply.general.reset_seconds) if w]
        exhausted_account = reply.account.remaining == 0 and reply.account.reset_seconds
        wait = reply.account.reset_seconds if exhausted_account else max(waits, default=None)
        return RateLimited(f"GoCardless refuses more requests for now{suffix}", retry_after=wait)
    if kind in ACCESS_GONE:
        return ConsentExpired(f"The access through GoCardless has ended{suffix}")
    if kind == "FailedAuthentication":
        if stage == "login":
            return InteractionRejected(f"The bank refused the authentication{suffix}")
        return ConsentExpired(f"The bank no longer accepts the authentication{suffix}")
    if reply.status == 403 and stage == "read":
        # no valid agreement, a scope it does not cover, access withdrawn at the bank
        return ConsentExpired(f"The agreement no longer allows this read{suffix}")
    if reply.status == 404 and stage == "read":
        return ConsentExpired(f"GoCardless no longer knows this link or account{suffix}")
    if reply.status == 409 and "suspended" in said.lower():
        return ConsentExpired(f"GoCardless suspended the account after repeated errors{suffix}")
    if reply.status == 409:
        return ProviderUnavailable(f"GoCardless is not ready to read the account{suffix}")
    if reply.status >= 500:
        return ProviderUnavailable(f"GoCardless answered HTTP {reply.status}{suffix}")
    return ProviderUnavailable(f"GoCardless refused the request with HTTP {reply.status}{suffix}")


async def _exchange(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    token: str | None,
    query: Mapping[str, str] | None,
    body: Mapping[str, Any] | None,
) -> Reply:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await http.request(
        method,
        url,
        params=dict(query) if query else None,
        json=dict(body) if body is not None else None,
        headers=headers,
    )
    try:
        payload: Any = response.json() if response.content else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = {}
    return Reply(
        response.status_code,
        payload,
        rate_limit(response.headers),
        rate_limit(response.headers, "-Account-Success"),
    )


def _expiry(body: Mapping[str, Any], key: str, default: int, now: datetime) -> datetime:
    raw = body.get(key, default)
    seconds = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else default
    return now + timedelta(seconds=seconds)


def _token(body: Any, key: str) -> str:
    value = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(value, str) or not value:
        raise ProviderUnavailable(f"GoCardless answered a token request without {key!r}")
    return value


async def obtain_tokens(
    http: httpx.AsyncClient, base_url: str, secrets: Secrets, now: datetime
) -> TokenPair:
    """A new pair from the operator's secrets (``POST /api/v2/token/new/``)."""
    reply = await _exchange(
        http,
        "POST",
        f"{base_url}/api/v2/token/new/",
        token=None,
        query=None,
        body={"secret_id": secrets.secret_id, "secret_key": secrets.secret_key},
    )
    if reply.status == 401:
        raise ConfigurationMissing(
            "GoCardless refused the operator's secret id and key; the operator must set them "
            "again (bankhub banks gocardless-secret)"
        )
    if reply.status != 200:
        raise failure_for(reply, "read")
    return TokenPair(
        _token(reply.body, "access"),
        _expiry(reply.body, "access_expires", 86_400, now),
        _token(reply.body, "refresh"),
        _expiry(reply.body, "refresh_expires", 2_592_000, now),
    )


async def refresh_tokens(
    http: httpx.AsyncClient, base_url: str, pair: TokenPair, now: datetime
) -> TokenPair | None:
    """A new access token for the same refresh token (``POST /api/v2/token/refresh/``); None
    when the provider no longer accepts the refresh token (obtain a new pair then)."""
    reply = await _exchange(
        http,
        "POST",
        f"{base_url}/api/v2/token/refresh/",
        token=None,
        query=None,
        body={"refresh": pair.refresh},
    )
    if reply.status == 401:
        return None
    if reply.status != 200:
        raise failure_for(reply, "read")
    return TokenPair(
        _token(reply.body, "access"),
        _expiry(reply.body, "access_expires", 86_400, now),
        pair.refresh,
        pair.refresh_expires_at,
    )


class GoCardlessClient:
    """Sends API calls with the shared access token; renews it once when it is refused."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, tokens: TokenProvider) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens

    def url(self, *segments: str) -> str:
        path = "/".join(quote(s, safe="") for s in segments)
        return f"{self.base_url}/api/v2/{path}/"

    async def call(
        self,
        method: str,
        *segments: str,
        stage: Stage,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Reply:
        """One call; a refused access token is renewed once (another process may have
        renewed the pair, or the provider revoked the token early)."""
        url = self.url(*segments)
        token = await self.tokens.access_token()
        reply = await _exchange(self.http, method, url, token=token, query=query, body=body)
        if reply.status == 401 and _token_refused(reply.body):
            token = await self.tokens.access_token(refused=token)
            reply = await _exchange(self.http, method, url, token=token, query=query, body=body)
        if reply.status not in ok:
            raise failure_for(reply, stage)
        return reply


def _token_refused(body: Any) -> bool:
    """A 401 about the bearer token (not about the bank's authentication of the user)."""
    if not isinstance(body, Mapping):
        return True
    kind = body.get("type")
    return not isinstance(kind, str) or kind not in NOT_ABOUT_THE_TOKEN
