# authlib's stubs type its hooks for any client, token and payload; the subclasses below narrow
# them to this peer's own records, which is what authlib's documentation asks for:
# mypy: disable-error-code="override, union-attr, no-untyped-call"
"""A UK Open Banking bank on 127.0.0.1: an authorization server built with authlib and a
stateful account information resource server.

Two listeners, as a real bank has them:

* the public one (plain HTTP on loopback): the OpenID Provider metadata, the key set and the
  authorization endpoint the user's browser visits;
* the mutual-TLS one, which refuses any client without a certificate from the test QTSP: the
  token endpoint and the Read/Write API under ``/open-banking/v3.1/aisp``.

The authorization server is authlib's (authorization code and hybrid grants with the OpenID
extensions, PKCE, client credentials, refresh tokens, RFC 9101 request objects,
``private_key_jwt`` client authentication); this module only stores what authlib asks it to
store and adds what Open Banking adds on top: the request object must name an
``AwaitingAuthorisation`` consent as its essential ``openbanking_intent_id`` and carry ``exp``,
the ID tokens carry the consent and ``acr``, access tokens are bound to the client certificate
they were issued over (RFC 8705).

The resource server keeps consents (AwaitingAuthorisation → Authorised → Revoked/expired) and
serves two accounts whose transactions page through ``Links.Next``. Faults (a 429 with
``Retry-After``) can be queued; every request is recorded with its headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oidc.core import OpenIDCode, UserInfo
from authlib.oidc.core.grants import OpenIDHybridGrant
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from tests.connectors.xs2a.eidas_pki import EidasPki
from tests.support.loopback import QuietServer

API = "/open-banking/v3.1/aisp"
CLIENT_ID = "bankhub-test-client"
SIGNING_KID = "bankhub-signing-1"
PSU = "psu-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(der: bytes) -> str:
    """RFC 8705 ``x5t#S256`` of a certificate."""
    return _b64(hashlib.sha256(der).digest())


# --- the authorization server's records ----------------------------------------------------


@dataclass
class Client(ClientMixin):
    client_id: str
    redirect_uris: list[str]
    jwks: dict[str, Any]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "accounts"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # authlib's name for private_key_jwt once the assertion is verified
        return method in ("private_key_jwt", "client_assertion_jwt")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in ("code", "code id_token")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "client_credentials", "refresh_token")


@dataclass
class User:
    id: str
    consent_id: str
    #: the hybrid flow's ``s_hash``, while its ID token is made
    s_hash: str | None = None


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    user: User
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return "urn:openbanking:psd2:sca"

    def get_amr(self) -> None:
        return None


@dataclass
class Token(TokenMixin):
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_at: float
    user: User | None
    #: the client certificate the token was issued over (RFC 8705)
    bound_to: str
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return False  # a refresh token lives as long as its consent

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> Client:
        return Client(self.client_id, [], {})


# --- the resource server's records ---------------------------------------------------------


@dataclass
class Consent:
    id: str
    permissions: list[str]
    expires: datetime | None
    transactions_from: str | None
    status: str = "AwaitingAuthorisation"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Fault:
    path: str
    status: int = 429
    retry_after: str | None = "120"
    times: int = 1


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    body: Any = None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _transactions(account_id: str) -> list[dict[str, Any]]:
    """Five rows over five days: debits, credits, one pending, one rejected."""
    rows: list[dict[str, Any]] = []
    base = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    for n, (amount, indicator, status, text) in enumerate(
        [
            ("12.50", "Debit", "Booked", "Coffee Shop London"),
            ("2500.00", "Credit", "Booked", "Salary November"),
            ("99.99", "Debit", "Booked", "Energy bill"),
            ("7.25", "Debit", "Pending", "Bakery"),
            ("40.00", "Debit", "Rejected", "Declined card payment"),
        ]
    ):
        when = base + timedelta(days=n)
        row: dict[str, Any] = {
            "AccountId": account_id,
            "TransactionId": f"{account_id}-t{n}",
            "CreditDebitIndicator": indicator,
            "Status": status,
            "BookingDateTime": _stamp(when),
            "ValueDateTime": _stamp(when),
            "TransactionInformation": text,
            "Amount": {"Amount": amount, "Currency": "GBP"},
            "ProprietaryBankTransactionCode": {"Code": "POS", "Issuer": "Peer Bank"},
        }
        if indicator == "Debit":
            row["CreditorAccount"] = {
                "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                "Identification": "40400412345678",
                "Name": text,
            }
        else:
            row["DebtorAccount"] = {
                "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                "Identification": "20202087654321",
                "Name": "Employer Ltd",
            }
        rows.append(row)
    return rows


ACCOUNTS: list[dict[str, Any]] = [
    {
        "AccountId": "acc-current",
        "Status": "Enabled",
        "Currency": "GBP",
        "AccountType": "Personal",
        "AccountSubType": "CurrentAccount",
        "Nickname": "Everyday",
        "Account": [
            {
                "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                "Identification": "80200110203345",
                "Name": "Mr Kevin Smith",
            },
            {
                "SchemeName": "UK.OBIE.IBAN",
                "Identification": "GB29NWBK60161331926819",
                "Name": "Mr Kevin Smith",
            },
        ],
    },
    {
        "AccountId": "acc-savings",
        "Status": "Enabled",
        "Currency": "GBP",
        "AccountType": "Personal",
        "AccountSubType": "Savings",
        "Nickname": "Rainy day",
        "Account": [
            {
                "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                "Identification": "80200110203399",
                "Name": "Mr Kevin Smith",
            }
        ],
    },
]
BALANCES = {"acc-current": ("1230.45", "Credit"), "acc-savings": ("15.00", "Debit")}


# --- the bank --------------------------------------------------------------------------------


class ObBank:
    """The authorization server and the resource server, sharing one store."""

    def __init__(
        self,
        tpp_jwks: dict[str, Any],
        *,
        response_types: tuple[str, ...] = ("code id_token", "code"),
        pkce: bool = True,
        page_size: int = 2,
        access_seconds: int = 300,
        check_consents: bool = True,
    ) -> None:
        self.tpp_jwks = tpp_jwks
        self.response_types = response_types
        self.pkce = pkce
        self.page_size = page_size
        self.access_seconds = access_seconds
        #: False when another resource server (Prism) holds the consents
        self.check_consents = check_consents
        self.public_origin = ""
        self.mtls_origin = ""
        self.redirect_uris: list[str] = []
        self.lock = threading.RLock()
        self.consents: dict[str, Consent] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        self.nonces: set[str] = set()
        self.jtis: set[str] = set()
        self.faults: list[Fault] = []
        self.exchanges: list[Exchange] = []
        #: the certificate the current token request came over (set per request)
        self.current_cert = threading.local()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.jwk = RSAKey.import_key(pem, {"kid": "bank-id-token-1", "use": "sig", "alg": "PS256"})
        self.server = self._authorization_server()

    # --- authlib --------------------------------------------------------------------------

    def client(self) -> Client:
        return Client(CLIENT_ID, self.redirect_uris, self.tpp_jwks)

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "issuer": self.public_origin,
            "authorization_endpoint": f"{self.public_origin}/authorize",
            "token_endpoint": f"{self.mtls_origin}/token",
            "jwks_uri": f"{self.public_origin}/jwks",
            "response_types_supported": list(self.response_types),
            "scopes_supported": ["openid", "accounts"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["PS256"],
            "request_object_signing_alg_values_supported": ["PS256"],
            "id_token_signing_alg_values_supported": ["PS256"],
            "request_parameter_supported": True,
            "require_signed_request_object": True,
            "tls_client_certificate_bound_access_tokens": True,
            "claims_parameter_supported": True,
            "acr_values_supported": ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"],
        }
        if self.pkce:
            metadata["code_challenge_methods_supported"] = ["S256"]
        return metadata

    def _authorization_server(self) -> AuthorizationServer:
        bank = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> Client | None:
                return bank.client() if client_id == CLIENT_ID else None

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                with bank.lock:
                    bank.tokens[token["access_token"]] = Token(
                        client_id=request.client.client_id,
                        access_token=token["access_token"],
                        refresh_token=token.get("refresh_token"),
                        scope=token.get("scope", ""),
                        expires_at=time.time() + token["expires_in"],
                        user=request.user,
                        bound_to=getattr(bank.current_cert, "value", ""),
                    )

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request

            def create_json_request(self, request: JsonRequest) -> JsonRequest:
                return request

            def handle_response(
                self, status: int, body: Any, headers: list[tuple[str, str]]
            ) -> tuple[int, Any, list[tuple[str, str]]]:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        server = Server(scopes_supported=["openid", "accounts"])
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda *a, **k: secrets.token_urlsafe(24),
                refresh_token_generator=lambda *a, **k: secrets.token_urlsafe(24),
                expires_generator=lambda *a, **k: bank.access_seconds,
            ),
        )

        class PrivateKeyJwt(JWTBearerClientAssertion):
            def get_audiences(self) -> list[str]:
                return [f"{bank.mtls_origin}/token"]

            def validate_jti(self, claims: Any, jti: str) -> bool:
                with bank.lock:
                    if jti in bank.jtis:
                        return False
                    bank.jtis.add(jti)
                    return True

            def resolve_client_public_key(self, client: Client) -> KeySet:
                return KeySet.import_key_set(cast(Any, client.jwks))

            def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
                # joserfc decodes only its "recommended" algorithms by default; FAPI's are
                # PS256 and ES256
                try:
                    token = jwt.decode(assertion, resolve_key, algorithms=["PS256", "ES256"])
                except JoseError as error:
                    raise InvalidClientError(description=error.description) from error
                self.verify_claims(token.claims)
                return token.claims

        server.register_client_auth_method("private_key_jwt", PrivateKeyJwt())

        def store_code(code: str, request: OAuth2Request) -> None:
            payload = request.payload.data
            with bank.lock:
                bank.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=str(payload.get("redirect_uri")),
                    scope=request.scope,
                    nonce=payload.get("nonce"),
                    user=cast(User, request.user),
                    code_challenge=payload.get("code_challenge"),
                    code_challenge_method=payload.get("code_challenge_method"),
                    auth_time=int(time.time()),
                )

        def claims_of(client: Client) -> dict[str, Any]:
            return {"iss": bank.public_origin, "aud": [client.client_id]}

        def user_info(user: User, scope: str) -> UserInfo:
            info = UserInfo(
                sub=user.consent_id,
                openbanking_intent_id=user.consent_id,
                acr="urn:openbanking:psd2:sca",
            )
            if user.s_hash:
                info["s_hash"] = user.s_hash
            return info

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]  # noqa: RUF012 - authlib's

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                store_code(code, request)

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                with bank.lock:
                    found = bank.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                with bank.lock:
                    bank.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> User:
                return authorization_code.user

        class Hybrid(OpenIDHybridGrant):
            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                store_code(code, request)

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                with bank.lock:
                    return nonce in bank.nonces

            def generate_user_info(self, user: User, scope: str) -> UserInfo:
                return user_info(user, scope)

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return bank.jwk

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return claims_of(client)

            def get_client_algorithm(self, client: Client) -> str:
                return "PS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "PS256", "kid": "bank-id-token-1"}

            def process_implicit_token(
                self, token: dict[str, Any], code: str | None = None
            ) -> dict[str, Any]:
                # FAPI 1 Advanced 5.2.2.1: the hybrid flow's ID token carries s_hash too
                state = self.request.payload.state
                if state:
                    self.request.user.s_hash = _b64(hashlib.sha256(state.encode()).digest()[:16])
                try:
                    result: dict[str, Any] = super().process_implicit_token(token, code)
                finally:
                    self.request.user.s_hash = None
                return result

        class OpenId(OpenIDCode):
            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                with bank.lock:
                    return nonce in bank.nonces

            def generate_user_info(self, user: User, scope: str) -> UserInfo:
                return user_info(user, scope)

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return bank.jwk

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return claims_of(client)

            def get_client_algorithm(self, client: Client) -> str:
                return "PS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "PS256", "kid": "bank-id-token-1"}

        class ClientCredentials(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]  # noqa: RUF012 - authlib's

        class Refresh(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]  # noqa: RUF012 - authlib's
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                with bank.lock:
                    for token in bank.tokens.values():
                        if token.refresh_token == refresh_token and not token.revoked:
                            consent = bank.consents.get(token.user.consent_id if token.user else "")
                            if bank.check_consents and (
                                consent is None or consent.status != "Authorised"
                            ):
                                return None  # the consent ended: invalid_grant
                            return token
                return None

            def authenticate_user(self, refresh_token: Token) -> User | None:
                return refresh_token.user

            def revoke_old_credential(self, refresh_token: Token) -> None:
                refresh_token.revoked = True

        class Jar(JWTAuthenticationRequest):
            def resolve_client_public_key(self, client: Client) -> KeySet:
                return KeySet.import_key_set(cast(Any, client.jwks))

            def get_server_metadata(self) -> dict[str, Any]:
                return bank.metadata()

            def get_client_require_signed_request_object(self, client: Client) -> bool:
                return True

        server.register_grant(CodeGrant, [CodeChallenge(required=self.pkce), OpenId()])
        server.register_grant(Hybrid)
        server.register_grant(ClientCredentials)
        server.register_grant(Refresh)
        server.register_extension(Jar(support_request=True, support_request_uri=False))
        return server

    # --- the authorization endpoint ---------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The user's visit: authlib validates the request (object); a ``decision`` of approve
        or deny answers it, without one the page offers both."""
        decision = query.pop("decision", None)
        request = PeerRequest("GET", f"{self.public_origin}/authorize?{urlencode(query)}", query)
        try:
            grant = self.server.get_consent_grant(request)
        except OAuth2Error as error:
            body = json.dumps({"error": error.error, "error_description": error.description})
            return 400, {"Content-Type": "application/json"}, body.encode()
        claims = cast(dict[str, Any], request.payload.data)
        problem = self._open_banking_checks(claims)
        if problem is not None:
            return 400, {"Content-Type": "application/json"}, json.dumps(problem).encode()
        consent_id = claims["claims"]["id_token"]["openbanking_intent_id"]["value"]
        if decision is None:
            approve, deny = (
                f"/authorize?{urlencode({**query, 'decision': d})}" for d in ("approve", "deny")
            )
            page = (
                "<!doctype html><html lang=en><title>Peer Bank UK</title>"
                "<link rel=icon href=data:,>"
                f"<h1>Peer Bank UK</h1><p>Allow bankhub to read your accounts ({consent_id})?"
                f'<p><a href="{approve}">Approve</a> <a href="{deny}">Deny</a>'
            )
            return 200, {"Content-Type": "text/html"}, page.encode()
        user: User | None = None
        if decision == "approve":
            user = User(PSU, consent_id)
            with self.lock:
                if consent_id in self.consents:
                    self.consents[consent_id].status = "Authorised"
        elif consent_id in self.consents:
            with self.lock:
                self.consents[consent_id].status = "Rejected"
        status, _, headers = cast(
            tuple[int, Any, list[tuple[str, str]]],
            self.server.create_authorization_response(request, user, grant),
        )
        with self.lock:
            self.nonces.add(claims.get("nonce", ""))  # a second use is a replay
        return status, dict(headers), b""

    def _open_banking_checks(self, claims: dict[str, Any]) -> dict[str, str] | None:
        """What Open Banking asks of a request object beyond RFC 9101."""
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return {"error": "invalid_request_object", "error_description": "exp missing/past"}
        if claims["exp"] - claims.get("nbf", claims["exp"]) > 3600:
            return {"error": "invalid_request_object", "error_description": "lives > 60 min"}
        if claims.get("aud") != self.public_origin:
            return {"error": "invalid_request_object", "error_description": "aud"}
        if not claims.get("nonce") or not claims.get("state"):
            return {"error": "invalid_request_object", "error_description": "nonce/state"}
        wanted = (claims.get("claims") or {}).get("id_token") or {}
        intent = wanted.get("openbanking_intent_id") or {}
        if not intent.get("essential") or not (wanted.get("acr") or {}).get("essential"):
            return {"error": "invalid_request_object", "error_description": "essential claims"}
        if self.check_consents:
            consent = self.consents.get(str(intent.get("value")))
            if consent is None or consent.status != "AwaitingAuthorisation":
                return {"error": "invalid_request", "error_description": "unknown intent"}
        return None

    # --- faults -----------------------------------------------------------------------------

    def fail(self, path: str, status: int = 429, retry_after: str | None = "120") -> None:
        with self.lock:
            self.faults.append(Fault(path, status, retry_after))

    def requests_to(self, suffix: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith(suffix)]


class PeerRequest(OAuth2Request):
    """One request as authlib reads it: the query and the form, merged."""

    def __init__(
        self, method: str, uri: str, query: dict[str, str], form: dict[str, str] | None = None
    ) -> None:
        super().__init__(method, uri, headers={})
        self._args = query
        self._form = form or {}
        self.payload = BasicOAuth2Payload({**query, **self._form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# --- HTTP ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    bank: ObBank
    mtls: bool = False

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        if self.mtls:  # the handshake in the handler's thread: a refused client stalls nobody
            self.request.do_handshake()
        super().setup()

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = (
            b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        )
        self.send_response(status)
        extra = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            extra.setdefault("Content-Type", "application/json")
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self) -> None:
        bank = self.bank
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        cert = ""
        if self.mtls:
            der = self.connection.getpeercert(binary_form=True)
            assert der is not None  # CERT_REQUIRED
            cert = thumbprint(der)
        status, body, extra = self._route(parts.path, query, raw, headers, cert)
        with bank.lock:
            bank.exchanges.append(Exchange(self.command, parts.path, query, headers, status, body))
        self._reply(status, body, extra)

    do_GET = do_POST = do_DELETE = _serve

    def _route(
        self, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str], cert: str
    ) -> tuple[int, Any, dict[str, str]]:
        bank = self.bank
        if not self.mtls:
            if path == "/.well-known/openid-configuration":
                return 200, bank.metadata(), {}
            if path == "/jwks":
                return 200, {"keys": [bank.jwk.as_dict(private=False)]}, {}
            if path == "/authorize":
                status, extra, page = bank.authorize(query)
                return status, page or None, extra
            return 404, {"error": "not here"}, {}
        if path == "/token" and self.command == "POST":
            form = dict(parse_qsl(raw.decode()))
            request = PeerRequest("POST", f"{bank.mtls_origin}/token", {}, form)
            bank.current_cert.value = cert
            answered = cast(
                tuple[int, Any, list[tuple[str, str]]], bank.server.create_token_response(request)
            )
            return answered[0], answered[1], dict(answered[2])
        if path.startswith(API):
            return Resource(
                bank, self.command, path[len(API) :], query, raw, headers, cert
            ).answer()
        return 404, {"error": "not here"}, {}


@dataclass
class Resource:
    """One call to the Read/Write API."""

    bank: ObBank
    method: str
    path: str
    query: dict[str, str]
    raw: bytes
    headers: dict[str, str]
    cert: str

    def error(self, status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
        body = {
            "Code": str(status),
            "Message": message,
            "Errors": [{"ErrorCode": code, "Message": message}],
        }
        return (
            status,
            body,
            {"x-fapi-interaction-id": self.headers.get("x-fapi-interaction-id", "")},
        )

    def token(self) -> Token | None:
        bearer = self.headers.get("authorization", "")
        if not bearer.startswith("Bearer "):
            return None
        with self.bank.lock:
            token = self.bank.tokens.get(bearer[7:])
        if token is None or token.revoked or token.expires_at < time.time():
            return None
        if token.bound_to != self.cert:
            return None  # RFC 8705: presented over another certificate
        return token

    def answer(self) -> tuple[int, Any, dict[str, str]]:
        bank = self.bank
        with bank.lock:
            for fault in bank.faults:
                if self.path.endswith(fault.path) and fault.times > 0:
                    fault.times -= 1
                    status, body, extra = self.error(
                        fault.status, "UK.OBIE.Rules.ResourceLimit", "slow down"
                    )
                    if fault.retry_after:
                        extra["Retry-After"] = fault.retry_after
                    return status, body, extra
        token = self.token()
        if token is None:
            return self.error(401, "UK.OBIE.Header.Invalid", "access token invalid or expired")
        if self.path.startswith("/account-access-consents"):
            if token.user is not None:
                return self.error(
                    403, "UK.OBIE.Resource.InvalidConsentStatus", "needs a client token"
                )
            return self.consents()
        if token.user is None:
            return self.error(403, "UK.OBIE.Resource.InvalidConsentStatus", "needs a user token")
        consent = bank.consents.get(token.user.consent_id)
        if consent is None or consent.status != "Authorised":
            return self.error(
                403, "UK.OBIE.Resource.InvalidConsentStatus", "consent not authorised"
            )
        if consent.expires is not None and consent.expires < datetime.now(UTC):
            return self.error(403, "UK.OBIE.Resource.InvalidConsentStatus", "consent expired")
        return self.reads()

    def consents(self) -> tuple[int, Any, dict[str, str]]:
        bank = self.bank
        if self.method == "POST" and self.path == "/account-access-consents":
            data = json.loads(self.raw or b"{}").get("Data") or {}
            permissions = data.get("Permissions")
            if not isinstance(permissions, list) or not permissions:
                return self.error(400, "UK.OBIE.Field.Missing", "Permissions")
            expires = data.get("ExpirationDateTime")
            consent = Consent(
                id=f"aac-{uuid.uuid4()}",
                permissions=permissions,
                expires=datetime.fromisoformat(expires) if expires else None,
                transactions_from=data.get("TransactionFromDateTime"),
            )
            with bank.lock:
                bank.consents[consent.id] = consent
            return 201, self.consent_body(consent), {}
        consent_id = self.path.rsplit("/", 1)[-1]
        found = bank.consents.get(consent_id)
        if found is None:
            return self.error(400, "UK.OBIE.Resource.NotFound", "no such consent")
        consent = found
        if self.method == "DELETE":
            with bank.lock:
                consent.status = "Revoked"
            return 204, None, {}
        return 200, self.consent_body(consent), {}

    def consent_body(self, consent: Consent) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ConsentId": consent.id,
            "Status": consent.status,
            "CreationDateTime": _stamp(consent.created),
            "StatusUpdateDateTime": _stamp(consent.created),
            "Permissions": consent.permissions,
        }
        if consent.expires is not None:
            data["ExpirationDateTime"] = _stamp(consent.expires)
        if consent.transactions_from:
            data["TransactionFromDateTime"] = consent.transactions_from
        return {
            "Data": data,
            "Risk": {},
            "Links": {"Self": f"{self.bank.mtls_origin}{API}/account-access-consents/{consent.id}"},
            "Meta": {"TotalPages": 1},
        }

    def page(self, key: str, rows: list[dict[str, Any]], base: str) -> dict[str, Any]:
        size = self.bank.page_size
        number = int(self.query.get("page", "1"))
        chunk = rows[(number - 1) * size : number * size]
        pages = max(1, -(-len(rows) // size))
        links = {"Self": f"{base}?{urlencode({**self.query, 'page': number})}"}
        if number < pages:
            links["Next"] = f"{base}?{urlencode({**self.query, 'page': number + 1})}"
        return {"Data": {key: chunk}, "Links": links, "Meta": {"TotalPages": pages}}

    def reads(self) -> tuple[int, Any, dict[str, str]]:
        base = f"{self.bank.mtls_origin}{API}{self.path}"
        if self.path == "/accounts":
            return 200, self.page("Account", ACCOUNTS, base), {}
        if self.path == "/balances" or self.path.endswith("/balances"):
            wanted = self.path.split("/")[2] if self.path.startswith("/accounts/") else None
            rows = [
                {
                    "AccountId": account_id,
                    "CreditDebitIndicator": indicator,
                    "Type": kind,
                    "DateTime": "2026-11-19T23:00:00+00:00",
                    "Amount": {"Amount": amount, "Currency": "GBP"},
                }
                for account_id, (amount, indicator) in BALANCES.items()
                if wanted in (None, account_id)
                for kind in ("InterimBooked", "InterimAvailable")
            ]
            return 200, self.page("Balance", rows, base), {}
        if self.path.startswith("/accounts/") and self.path.endswith("/transactions"):
            account_id = self.path.split("/")[2]
            if account_id not in BALANCES:
                return self.error(400, "UK.OBIE.Resource.NotFound", "no such account")
            since = self.query.get("fromBookingDateTime", "")[:19]
            until = self.query.get("toBookingDateTime", "9999")[:19]
            listed = [
                r
                for r in _transactions(account_id)
                if since <= str(r["BookingDateTime"])[:19] <= until
            ]
            return 200, self.page("Transaction", listed, base), {}
        return self.error(404, "UK.OBIE.NotFound", "no such resource")


def server_context(pki: EidasPki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(pki.tpp_ca))
    return context


def tpp_jwks(certificate: x509.Certificate) -> dict[str, Any]:
    """The key set the Open Banking directory publishes for bankhub's signing certificate."""
    pem = certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = RSAKey.import_key(pem, {"kid": SIGNING_KID, "use": "sig"})
    return {"keys": [key.as_dict()]}


@contextmanager
def running(
    bank: ObBank, pki: EidasPki, lifetime: float = 300.0, *, public_tls: bool = False
) -> Iterator[ObBank]:
    """Serve ``bank`` on two free 127.0.0.1 ports until the block ends; ``public_tls`` serves
    the public listener over TLS too (without asking for a client certificate)."""
    servers: list[QuietServer] = []
    threads: list[threading.Thread] = []
    for mtls in (False, True):
        handler = type("Handler", (_Handler,), {"bank": bank, "mtls": mtls})
        server = QuietServer(("127.0.0.1", 0), handler)
        if mtls:
            server.socket = server_context(pki).wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        elif public_tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        servers.append(server)
        threads.append(thread)
        scheme = "https" if mtls or public_tls else "http"
        origin = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        if mtls:
            bank.mtls_origin = origin
        else:
            bank.public_origin = origin

    def stop() -> None:
        for server in servers:
            server.shutdown()

    watchdog = threading.Timer(lifetime, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield bank
    finally:
        watchdog.cancel()
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
