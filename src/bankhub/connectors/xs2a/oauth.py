"""The client side of the OAuth2 SCA approach of NextGenPSD2 1.3.x: the bank's authorization
server metadata (RFC 8414), the authorization code flow with PKCE (RFC 7636, S256 only) and
the refresh of the access token.

Written here rather than taken from a library: the only OAuth client library among bankhub's
dependencies would be authlib, which is a development dependency (the peer bank's authorization
server in the tests is built with it, so the two sides are different code). The client side
is small: one URL, two form posts and their answers, each checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from bankhub.connectors.base import ConsentExpired, ProviderUnavailable

WELL_KNOWN = "/.well-known/oauth-authorization-server"
#: OAuth2 errors of a token request that mean the grant is gone (RFC 6749 §5.2)
GRANT_GONE = frozenset({"invalid_grant", "unauthorized_client", "invalid_client"})
#: an access token without ``expires_in`` is taken to last this long
DEFAULT_TOKEN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        # 32 random bytes give a 43-character verifier, the shortest RFC 7636 §4.1 allows
        verifier = secrets.token_urlsafe(32)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


def _json_object(response: httpx.Response, what: str, bank: str) -> dict[str, Any]:
    try:
        parsed = json.loads(response.content) if response.content else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ProviderUnavailable(f"{bank} answered its {what} with something that is not JSON")
    return parsed


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    )


async def server_metadata(
    http: httpx.AsyncClient, url: str, bank: str, seconds: float
) -> ServerMetadata:
    """The authorization server's metadata document at ``url`` (the well-known document itself,
    or the issuer, to which the well-known path is added)."""
    parts = urlsplit(url)
    if WELL_KNOWN not in parts.path:
        url = urlunsplit(
            (parts.scheme, parts.netloc, WELL_KNOWN + parts.path.rstrip("/"), parts.query, "")
        )
    if not _https_or_loopback(url):
        raise ProviderUnavailable(f"{bank} named an authorization server that is not https")
    try:
        response = await http.get(url, headers={"Accept": "application/json"}, timeout=seconds)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{bank}'s authorization server cannot be reached: {exc}"
        ) from None
    if response.status_code != 200:
        raise ProviderUnavailable(
            f"{bank}'s authorization server metadata answered HTTP {response.status_code}"
        )
    body = _json_object(response, "authorization server metadata", bank)
    issuer = body.get("issuer")
    authorize, token = body.get("authorization_endpoint"), body.get("token_endpoint")
    if not all(isinstance(v, str) and _https_or_loopback(v) for v in (issuer, authorize, token)):
        raise ProviderUnavailable(
            f"{bank}'s authorization server metadata lacks an https issuer, "
            "authorization_endpoint or token_endpoint"
        )
    if not (isinstance(issuer, str) and isinstance(authorize, str) and isinstance(token, str)):
        raise ProviderUnavailable(f"{bank}'s authorization server metadata is malformed")
    # RFC 8414 §3.3: the document is the issuer's own, or it may name any server
    issuer_parts = urlsplit(issuer)
    expected = urlunsplit(
        (
            issuer_parts.scheme,
            issuer_parts.netloc,
            WELL_KNOWN + issuer_parts.path.rstrip("/"),
            "",
            "",
        )
    )
    if urlunsplit((*urlsplit(url)[:3], "", "")) != expected:
        raise ProviderUnavailable(
            f"{bank}'s authorization server metadata names another issuer ({issuer})"
        )
    methods = body.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise ProviderUnavailable(f"{bank}'s authorization server does not offer PKCE with S256")
    return ServerMetadata(issuer, authorize, token)


def authorization_url(
    metadata: ServerMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    pkce: Pkce,
) -> str:
    """Where the PSU authorises bankhub (RFC 6749 §4.1.1 with RFC 7636 §4.3)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
    )
    parts = urlsplit(metadata.authorization_endpoint)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


def split_return_url(return_url: str) -> tuple[str, str | None]:
    """The redirect URI to register with the bank (the return URL without its query: an
    authorization server compares it exactly) and the connect session's ``state`` it carried."""
    url = httpx.URL(return_url)
    return str(url.copy_with(query=None, fragment=None)), url.params.get("state") or None


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_at: datetime
    refresh_token: str | None

    def to_state(self, token_endpoint: str) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at.isoformat(),
            "refresh_token": self.refresh_token,
            "token_endpoint": token_endpoint,
        }


async def request_tokens(
    http: httpx.AsyncClient,
    token_endpoint: str,
    form: Mapping[str, str],
    *,
    now: datetime,
    bank: str,
    seconds: float,
    previous_refresh: str | None = None,
) -> Tokens:
    """A token request (code exchange or refresh). A grant the bank refuses is
    ``ConsentExpired``: only the user can authorise bankhub again."""
    try:
        response = await http.post(
            token_endpoint,
            data=dict(form),
            headers={"Accept": "application/json"},
            timeout=seconds,
        )
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{bank}'s token endpoint cannot be reached: {exc}") from None
    if response.status_code >= 500:
        raise ProviderUnavailable(f"{bank}'s token endpoint answered HTTP {response.status_code}")
    body = _json_object(response, "token request", bank)
    if response.status_code != 200:
        error = str(body.get("error") or "")
        said = (
            f"{error}: {body.get('error_description')}" if body.get("error_description") else error
        )
        if response.status_code in (400, 401) and (error in GRANT_GONE or not error):
            raise ConsentExpired(f"{bank} no longer accepts bankhub's authorisation ({said})")
        raise ProviderUnavailable(
            f"{bank} refused the token request ({said or response.status_code})"
        )
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderUnavailable(f"{bank} issued no access token")
    if str(body.get("token_type", "")).lower() != "bearer":
        raise ProviderUnavailable(
            f"{bank} issued a {body.get('token_type')!r} token, not a Bearer one"
        )
    lifetime = body.get("expires_in", DEFAULT_TOKEN_SECONDS)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise ProviderUnavailable(f"{bank} sent {lifetime!r} as the token's expires_in")
    refresh = body.get("refresh_token")
    return Tokens(
        access,
        now + timedelta(seconds=float(lifetime)),
        # RFC 6749 §6: without a new refresh token the old one stays good
        refresh if isinstance(refresh, str) and refresh else previous_refresh,
    )
