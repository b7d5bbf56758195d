"""The peer bank's OAuth2 authorization server, built on authlib's RFC 6749 / RFC 7636 server.

authlib does every protocol check (client, redirect URI compared exactly, response type, PKCE
S256 required of the public client, the code bound to client and redirect URI and used once,
refresh tokens rotated); this module only keeps the records and adapts the peer's plain HTTP
handler to authlib's request objects. Time comes from ``now`` so that tests move it without
sleeping.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge

CODE_SECONDS = 600


@dataclass
class PeerClient(ClientMixin):
    client_id: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> Any:
        return None  # a redirect URI must be named in every request

    def get_allowed_scope(self, scope: Any) -> str:
        asked = scope.split() if isinstance(scope, str) else list(scope or ())
        allowed = [s for s in asked if s in ("AIS", "PIS") or s.startswith(("AIS:", "PIS:"))]
        return " ".join(allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # a public client: PKCE (and, at a real bank, the QWAC) stands for it

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class PeerCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class PeerToken(TokenMixin):
    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str | None
    expires_in: int
    issued_at: float
    now: Callable[[], float]
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.now() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict[str, str], data: dict[str, str]):
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def args(self) -> dict[str, str | None]:
        return dict(self._data) if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self._data if self.method == "POST" else {}


@dataclass
class OAuthRecords:
    """What the authorization server issued; tests read and steer it."""

    now: Callable[[], float]
    token_seconds: int = 3600
    codes: dict[str, PeerCode] = field(default_factory=dict)
    tokens: dict[str, PeerToken] = field(default_factory=dict)
    #: every grant_type the token endpoint was asked for, in order
    token_requests: list[str] = field(default_factory=list)
    #: refresh tokens the bank no longer honours (the PSU withdrew the access at the bank)
    withdrawn: set[str] = field(default_factory=set)

    def by_refresh(self, refresh_token: str) -> PeerToken | None:
        for token in self.tokens.values():
            if token.refresh_token == refresh_token:
                return token
        return None

    def valid(self, access_token: str) -> PeerToken | None:
        token = self.tokens.get(access_token)
        if token is None or token.is_revoked() or token.is_expired():
            return None
        return token


class PeerAuthorizationServer(AuthorizationServer):
    """authlib's authorization server over the peer's records."""

    def __init__(self, records: OAuthRecords, clients: dict[str, PeerClient]) -> None:
        super().__init__()
        self.records = records
        self.clients = clients
        records_ = records

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib's declaration

            def save_authorization_code(self, code: str, request: Any) -> None:
                data = request.payload.data
                records_.codes[code] = PeerCode(
                    code=code,
                    client_id=request.client.get_client_id(),
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=request.scope or "",
                    user=str(request.user),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    issued_at=records_.now(),
                )

            def query_authorization_code(self, code: str, client: ClientMixin) -> PeerCode | None:
                found = records_.codes.get(code)
                if found is None or found.client_id != client.get_client_id():
                    return None
                if records_.now() > found.issued_at + CODE_SECONDS:
                    return None
                return found

            def delete_authorization_code(self, authorization_code: PeerCode) -> None:
                records_.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: PeerCode) -> str:
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib's declaration
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Any:
                if refresh_token in records_.withdrawn:
                    return None
                token = records_.by_refresh(refresh_token)
                return None if token is None or token.revoked else token

            def authenticate_user(self, refresh_token: PeerToken) -> str:
                return refresh_token.user

            def revoke_old_credential(self, refresh_token: Any) -> None:
                refresh_token.revoked = True

        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda *_args, **_kw: secrets.token_urlsafe(24),
                refresh_token_generator=lambda *_args, **_kw: secrets.token_urlsafe(24),
                expires_generator=lambda *_args, **_kw: records.token_seconds,
            ),
        )

    def query_client(self, client_id: str) -> Any:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        self.records.tokens[token["access_token"]] = PeerToken(
            client_id=request.client.get_client_id(),
            user=str(request.user),
            scope=str(token.get("scope") or ""),
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_in=int(token["expires_in"]),
            issued_at=self.records.now(),
            now=self.records.now,
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuth2Request)
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Any:
        return status, dict(headers), body or None

    # --- the peer's HTTP handler calls these ------------------------------------------------

    def authorize(
        self, uri: str, query: dict[str, str], user: str, approve: bool
    ) -> tuple[int, dict[str, str], Any, str]:
        """The PSU at the authorization page: (status, headers, body, scope granted)."""
        request = _Request("GET", uri, {}, query)
        try:
            grant = self.get_consent_grant(request)  # type: ignore[no-untyped-call]
        except OAuth2Error as error:
            # never redirect with an unchecked redirect URI: the error is the page
            return error.status_code, {}, {"error": error.error}, ""
        answer: Any = self.create_authorization_response(
            request, grant_user=user if approve else None, grant=grant
        )
        return (*answer, request.scope or "")

    def token(
        self, uri: str, form_body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        form = dict(parse_qsl(form_body.decode()))
        self.records.token_requests.append(form.get("grant_type", ""))
        request = _Request("POST", uri, headers, form)
        result: Any = self.create_token_response(request)
        return tuple(result)
