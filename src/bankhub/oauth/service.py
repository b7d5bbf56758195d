"""Issuing, refreshing, revoking, introspecting and verifying tokens (S8–S12).

Access tokens are ES256 JWTs (RFC 9068 shape) of at most an hour, with ``kid``; verification
accepts ES256 only and checks ``exp``, ``nbf``, ``iss`` and ``aud``, then that the token's
family and the API key it was granted with are still live — so revoking either ends the
token at once. Refresh tokens are opaque, stored as keyed hashes, bound to the client and
scope, with an idle and an absolute expiry, and rotated on every use: presenting a rotated one
again revokes the whole family and is audited as a security event.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.clock import Clock, as_utc
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode
from bankhub.oauth.models import RefreshToken, SigningKey, TokenFamily
from bankhub.partners import keys as api_keys
from bankhub.partners.models import ApiKey, App
from bankhub.partners.principal import Principal, app_view
from bankhub.security.authcache import AuthCache, BearerView, KeyView, Ticket
from bankhub.security.crypto import associated_data
from bankhub.security.scopes import Scope
from bankhub.security.secrets import SecretHasher
from bankhub.usage import counters as usage

if TYPE_CHECKING:
    from bankhub.audit.writer import AuditWriter
    from bankhub.security.keyring import Keyring

ALGORITHM = "ES256"
ACCESS_TTL = timedelta(hours=1)
REFRESH_IDLE = timedelta(days=14)
FAMILY_LIFETIME = timedelta(days=90)
#: how long a signing key signs before a new one takes over; it stays published one token life
SIGNING_KEY_LIFETIME = timedelta(days=30)
REFRESH_PURPOSE = "oauth-refresh-token"
#: audit actions (S42)
GRANTED = "oauth.token_granted"
REFRESHED = "oauth.refreshed"
REVOKED = "oauth.revoked"
_CACHE_SECONDS = 30.0


class OAuthError(Exception):
    """An RFC 6749 error answer: ``{"error": code, "error_description": text}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",  # nosec B105
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }


def _b64(value: int) -> str:
    raw = value.to_bytes(32, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _public_jwk(kid: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x),
        "y": _b64(numbers.y),
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


class TokenService:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        hasher: SecretHasher,
        clock: Clock,
        issuer: str,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.hasher = hasher
        self.clock = clock
        self.issuer = issuer.rstrip("/")
        self.audience = f"{self.issuer}/v2"
        self._public: dict[str, ec.EllipticCurvePublicKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self._signer: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._loaded_at = 0.0
        #: where introspection calls are counted (set by the hub)
        self.audit: AuditWriter | None = None

    # --- signing keys ----------------------------------------------------------------------------

    def _aad(self, kid: str) -> bytes:
        return associated_data("-", "signing_keys", "private_key", kid)

    async def _load(self, session: AsyncSession, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < _CACHE_SECONDS and self._signer:
            return
        rows = list(
            (
                await session.execute(
                    select(SigningKey)
                    .where(SigningKey.retired_at.is_(None))
                    .order_by(SigningKey.activated_at)
                )
            ).scalars()
        )
        now = self.clock()
        if not rows or as_utc(rows[-1].activated_at) + SIGNING_KEY_LIFETIME <= now:
            rows.append(await self._new_signing_key(session, now))
        public: dict[str, ec.EllipticCurvePublicKey] = {}
        for row in rows:
            jwk = jwt.PyJWK(row.public_jwk, algorithm=ALGORITHM)
            key = jwk.key
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TypeError(f"signing key {row.kid} is not an ES256 key")
            public[row.kid] = key
        newest = rows[-1]
        pem = self.keyring.decrypt(newest.private_key_enc, self._aad(newest.kid))
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise TypeError(f"signing key {newest.kid} is not an ES256 key")
        self._public = public
        self._jwks = [row.public_jwk for row in rows]
        self._signer = (newest.kid, private)
        self._loaded_at = time.monotonic()

    async def _new_signing_key(self, session: AsyncSession, now: datetime) -> SigningKey:
        kid = f"sig-{now:%Y%m%d}-{secrets.token_hex(4)}"
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        row = SigningKey(
            kid=kid,
            private_key_enc=self.keyring.encrypt(pem, self._aad(kid)),
            public_jwk=_public_jwk(kid, private),
            created_at=now,
            activated_at=now,
        )
        session.add(row)
        await session.flush()
        return row

    async def rotate_signing_key(self, session: AsyncSession) -> str:
        """A new signing key takes over now; older ones stay published for one token life,
        then are retired."""
        now = self.clock()
        row = await self._new_signing_key(session, now)
        await session.execute(
            update(SigningKey)
            .where(
                SigningKey.kid != row.kid,
                SigningKey.retired_at.is_(None),
                SigningKey.activated_at < now - SIGNING_KEY_LIFETIME - ACCESS_TTL,
            )
            .values(retired_at=now)
        )
        self._loaded_at = 0.0
        return row.kid

    async def jwks(self) -> dict[str, Any]:
        async with self.db.transaction() as session:
            await self._load(session)
        return {"keys": list(self._jwks)}

    # --- client authentication -----------------------------------------------------------------

    async def client(
        self, session: AsyncSession, client_id: str | None, client_secret: str | None
    ) -> tuple[App, ApiKey]:
        """The app and API key a client authenticates with (a ``service`` key's secret). The
        endpoints call it first, through :meth:`bankhub.hub.Hub.oauth_client`, which adds the
        app's allow-list and rate limits."""
        if not client_id or not client_secret:
            raise OAuthError("invalid_client", "Client authentication is required", 401)
        found = await api_keys.find(
            session, self.hasher, client_id, client_secret, api_keys.KeyKind.SERVICE
        )
        if found is None or not api_keys.is_live(found[1], self.clock()):
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        if found[0].archived_at is not None:
            raise OAuthError("invalid_client", "This app is archived", 401)
        await tenancy.enter(session, found[0].id)  # S14: the grant tables of this app only
        usage.attribute(found[0].id)
        return found

    # --- grants ----------------------------------------------------------------------------------

    def _requested_scope(self, requested: str | None, allowed: Scope) -> Scope:
        if not requested:
            return allowed
        wanted = [Scope.parse(part) for part in requested.split()]
        if not wanted or any(w is None for w in wanted):
            raise OAuthError("invalid_scope", "scope must be one of read, write, master")
        chosen = max((w for w in wanted if w is not None), key=lambda s: s.rank)
        if not allowed.allows(chosen):
            raise OAuthError("invalid_scope", f"this client may ask for {allowed.value} at most")
        return chosen

    async def client_credentials(
        self, session: AsyncSession, app: App, key: ApiKey, requested_scope: str | None
    ) -> TokenGrant:
        """A new grant for the client ``key`` (see :meth:`client`) of ``app``."""
        scope = self._requested_scope(requested_scope, Scope(key.scope))
        now = self.clock()
        family = TokenFamily(
            id="fam_" + secrets.token_hex(12),
            app_id=app.id,
            key_id=key.key_id,
            scope=scope.value,
            created_at=now,
            expires_at=now + FAMILY_LIFETIME,
        )
        session.add(family)
        await session.flush()
        return await self._grant(session, app, family, now, "client_credentials")

    async def _grant(
        self, session: AsyncSession, app: App, family: TokenFamily, now: datetime, grant_type: str
    ) -> TokenGrant:
        refresh = secrets.token_urlsafe(32)
        session.add(
            RefreshToken(
                family_id=family.id,
                token_hash=self.hasher.hash(refresh, purpose=REFRESH_PURPOSE),
                created_at=now,
                expires_at=min(now + REFRESH_IDLE, as_utc(family.expires_at)),
            )
        )
        await self._load(session)
        if self._signer is None:
            raise RuntimeError("no signing key is loaded")
        kid, private = self._signer
        expires = now + ACCESS_TTL
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": app.client_id,
            "client_id": app.client_id,
            "scope": family.scope,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(16),
            "fam": family.id,
        }
        token = jwt.encode(
            claims, private, algorithm=ALGORITHM, headers={"kid": kid, "typ": "at+jwt"}
        )
        audit.record(
            session,
            now=now,
            actor=audit.app_actor(app),
            action=GRANTED if grant_type == "client_credentials" else REFRESHED,
            target_type="oauth_token_family",
            target_id=family.id,
            app_id=app.id,
            detail={
                "grant_type": grant_type,
                "key_id": family.key_id,
                "scope": family.scope,
                "token_id": claims["jti"],
            },
        )
        await session.flush()
        return TokenGrant(token, int(ACCESS_TTL.total_seconds()), refresh, family.scope)

    async def refresh(
        self,
        session: AsyncSession,
        app: App,
        refresh_token: str | None,
        requested_scope: str | None,
    ) -> TokenGrant:
        """New tokens for one of the authenticated client's grants (see :meth:`client`)."""
        if not refresh_token or len(refresh_token) > 200:
            raise OAuthError("invalid_request", "refresh_token is required")
        row = await self._refresh_row(session, refresh_token)
        if row is None or row[1].app_id != app.id:
            raise OAuthError("invalid_grant", "The refresh token is not valid")
        token, family = row
        now = self.clock()
        if token.used_at is not None:
            # A rotated token came back: someone holds a copy. End the whole family, in a unit
            # of work of its own so that the refusal below does not roll the revocation back.
            await self._end_family_on_reuse(family.id, app, now)
            raise OAuthError("invalid_grant", "The refresh token was already used")
        if (
            family.revoked_at is not None
            or as_utc(token.expires_at) <= now
            or as_utc(family.expires_at) <= now
        ):
            raise OAuthError("invalid_grant", "The refresh token has expired or was revoked")
        key = (
            await session.execute(select(ApiKey).where(ApiKey.key_id == family.key_id))
        ).scalar_one_or_none()
        if key is None or not api_keys.is_live(key, now):
            raise OAuthError("invalid_grant", "The key this grant was made with is revoked")
        if requested_scope:
            self._requested_scope(requested_scope, Scope(family.scope))  # never wider
        claimed = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        if getattr(claimed, "rowcount", 1) != 1:
            raise OAuthError("invalid_grant", "The refresh token was already used")
        return await self._grant(session, app, family, now, "refresh_token")

    async def _end_family_on_reuse(self, family_id: str, app: App, now: datetime) -> None:
        async with self.db.transaction() as session:
            family = await session.get(TokenFamily, family_id)
            if family is None or family.revoked_at is not None:
                return
            family.revoked_at = now
            family.revoked_reason = "refresh_token_reuse"
            audit.record(
                session,
                now=now,
                actor=f"app:{app.client_id}",
                action="security.refresh_token_reuse",
                target_type="oauth_token_family",
                target_id=family.id,
                app_id=app.id,
                detail={"key_id": family.key_id},
            )

    # --- revocation and introspection ------------------------------------------------------------

    async def _family_of(self, session: AsyncSession, app: App, token: str) -> TokenFamily | None:
        family: TokenFamily | None = None
        if token.count(".") == 2:
            claims = await self._verified_claims(session, token)
            if claims is not None:
                family = await session.get(TokenFamily, str(claims.get("fam")))
        elif (row := await self._refresh_row(session, token)) is not None:
            family = row[1]
        return family if family is not None and family.app_id == app.id else None

    async def revoke(self, session: AsyncSession, app: App, key: ApiKey, token: str) -> None:
        """RFC 7009: always succeeds for an authenticated client (see :meth:`client`);
        revoking either kind of token ends its family (the refresh token and every access
        token from it)."""
        family = None
        if token and len(token) <= 4096:
            family = await self._family_of(session, app, token)
        ended = family is not None and family.revoked_at is None
        if family is not None and ended:
            family.revoked_at = self.clock()
            family.revoked_reason = "revoked"
        audit.record(
            session,
            now=self.clock(),
            actor=audit.app_actor(app),
            action=REVOKED,
            target_type="oauth_token_family",
            target_id=family.id if family is not None else None,
            app_id=app.id,
            detail={"key_id": key.key_id, "ended": ended},
        )
        await session.flush()

    async def introspect(
        self, session: AsyncSession, app: App, key: ApiKey, token: str
    ) -> dict[str, Any]:
        """RFC 7662, for an authenticated client (see :meth:`client`): anything not active, or
        another app's token, is ``{"active": false}``. Each caller's calls are counted in the
        audit log, one entry per key a minute."""
        answer = await self._introspect(session, app, token)
        if self.audit is not None:
            audit.introspection(self.audit, app, key.key_id, bool(answer["active"]))
        return answer

    async def _introspect(self, session: AsyncSession, app: App, token: str) -> dict[str, Any]:
        inactive: dict[str, Any] = {"active": False}
        if not token or len(token) > 4096:
            return inactive
        now = self.clock()
        if token.count(".") == 2:
            claims = await self._verified_claims(session, token)
            if claims is None or claims.get("client_id") != app.client_id:
                return inactive
            grant = await self._live_grant(session, claims, now)
            if grant is None or grant[0].id != app.id:
                return inactive
            return {
                "active": True,
                "token_type": "Bearer",  # nosec B105
                "scope": claims["scope"],
                "client_id": claims["client_id"],
                "sub": claims["sub"],
                "iss": claims["iss"],
                "aud": claims["aud"],
                "exp": claims["exp"],
                "iat": claims["iat"],
                "nbf": claims["nbf"],
                "jti": claims["jti"],
            }
        row = await self._refresh_row(session, token)
        if row is None:
            return inactive
        refresh, family = row
        if (
            family.app_id != app.id
            or family.revoked_at is not None
            or refresh.used_at is not None
            or as_utc(refresh.expires_at) <= now
            or as_utc(family.expires_at) <= now
        ):
            return inactive
        return {
            "active": True,
            "token_type": "refresh_token",  # nosec B105
            "scope": family.scope,
            "client_id": app.client_id,
            "exp": int(as_utc(refresh.expires_at).timestamp()),
        }

    async def _refresh_row(
        self, session: AsyncSession, token: str
    ) -> tuple[RefreshToken, TokenFamily] | None:
        digest = self.hasher.hash(token, purpose=REFRESH_PURPOSE)
        row = (
            await session.execute(
                select(RefreshToken, TokenFamily)
                .join(TokenFamily, TokenFamily.id == RefreshToken.family_id)
                .where(RefreshToken.token_hash == digest)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def _live_grant(
        self, session: AsyncSession, claims: dict[str, Any], now: datetime
    ) -> tuple[App, TokenFamily, ApiKey] | None:
        """The app, grant and key an access token's claims name, if all are still live."""
        row = (
            await session.execute(
                select(App, TokenFamily, ApiKey)
                .join(TokenFamily, TokenFamily.app_id == App.id)
                .join(ApiKey, ApiKey.key_id == TokenFamily.key_id)
                .where(TokenFamily.id == str(claims.get("fam")))
            )
        ).one_or_none()
        if row is None:
            return None
        app, family, key = row
        if (
            app.client_id != claims.get("client_id")
            or family.revoked_at is not None
            or not api_keys.is_live(key, now)
        ):
            return None
        return app, family, key

    # --- verification ----------------------------------------------------------------------------

    async def _verified_claims(self, session: AsyncSession, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            return None
        await self._load(session)
        key = self._public.get(kid)
        if key is None:
            await self._load(session, force=True)  # another process may have rotated
            key = self._public.get(kid)
            if key is None:
                return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # The times are checked below against bankhub's clock (injectable in tests).
                options={
                    "require": ["exp", "nbf", "iat", "iss", "aud", "jti"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return None
        now = int(self.clock().timestamp())
        if not (int(claims["nbf"]) <= now < int(claims["exp"])):
            return None
        return claims

    async def verify_bearer(
        self,
        session: AsyncSession,
        authorization: str,
        now: datetime,
        *,
        cache: AuthCache | None = None,
        ticket: Ticket | None = None,
    ) -> Principal:
        """The caller an access token names, checked in full, or answered from ``cache`` when
        it holds the token: its signature and grant were verified by an earlier request and
        nothing the check read changed since (``security.authcache``); its times and its key's
        end are checked again every time."""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _invalid_token("Authorization must be 'Bearer <access token>'")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if cache is not None:
            held = cache.bearer(ticket, digest)
            if held is not None:
                if not held.live(now):
                    raise _invalid_token()
                return Principal(held.app, Scope(held.scope), held.key.key_id, held.token_id)
        claims = await self._verified_claims(session, token)
        if claims is None:
            raise _invalid_token()
        grant = await self._live_grant(session, claims, now)
        if grant is None:
            raise _invalid_token("The access token was revoked")
        app, _, key = grant
        if app.archived_at is not None:
            raise DomainError(ErrorCode.APP_ARCHIVED, extra={"clientId": app.client_id})
        scope = Scope.parse(str(claims.get("scope")))
        if scope is None:
            raise _invalid_token()
        principal = Principal(app_view(app), scope, key.key_id, str(claims["jti"]))
        if cache is not None:
            referers = key.allowed_referers
            cache.keep_bearer(
                ticket,
                digest,
                BearerView(
                    principal.app,
                    KeyView(
                        key.key_id,
                        key.scope,
                        None if referers is None else tuple(referers),
                        key.expires_at,
                        key.revoked_at,
                    ),
                    scope.value,
                    str(claims["jti"]),
                    int(claims["nbf"]),
                    int(claims["exp"]),
                ),
            )
        return principal


def _invalid_token(message: str | None = None) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_TOKEN,
        message,
        challenge='Bearer error="invalid_token"',
    )


# --- the dashboard's view of an app's grants ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantRow:
    family: TokenFamily
    #: when its newest refresh token was issued (the last token endpoint use)
    last_used_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.family.revoked_at is None and as_utc(self.family.expires_at) > now


async def grants_of(session: AsyncSession, app_id: int, *, limit: int = 100) -> list[GrantRow]:
    """The app's token families, newest first, each with the time it last got tokens."""
    newest = (
        select(RefreshToken.family_id, func.max(RefreshToken.created_at).label("last"))
        .group_by(RefreshToken.family_id)
        .subquery()
    )
    rows = await session.execute(
        select(TokenFamily, newest.c.last)
        .outerjoin(newest, newest.c.family_id == TokenFamily.id)
        .where(TokenFamily.app_id == app_id)
        .order_by(TokenFamily.created_at.desc(), TokenFamily.id)
        .limit(limit)
    )
    return [GrantRow(family, as_utc(last) if last else None) for family, last in rows.all()]


async def revoke_family(
    session: AsyncSession, app_id: int, family_id: str, now: datetime, reason: str
) -> TokenFamily | None:
    """End one grant of the app: its refresh token and every access token from it, at once
    (access tokens are checked against their family on every call). None when no such grant."""
    family = await session.get(TokenFamily, family_id[:40])
    if family is None or family.app_id != app_id:
        return None
    if family.revoked_at is None:
        family.revoked_at = now
        family.revoked_reason = reason[:40]
        await session.flush()
    return family
