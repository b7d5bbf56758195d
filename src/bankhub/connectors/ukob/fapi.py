"""The FAPI 1.0 Advanced pieces of the Open Banking security profile, as JSON Web Tokens.

- the client assertion of ``private_key_jwt`` client authentication (RFC 7523, OIDC Core 9),
- the signed request object of the authorization request (JAR, RFC 9101; FAPI 1 Advanced 5.2.2),
  carrying the consent as the essential ``openbanking_intent_id`` claim and asking for an
  essential ``acr``,
- the checks of the ID token the bank returns (OIDC Core 3.3.2.12: issuer, audience, expiry,
  ``nonce``, ``c_hash`` and ``s_hash`` of the hybrid flow, and the consent it was issued for).

Signing and verifying are PyJWT's (a runtime dependency already, maintained); only the claim
sets are written here. RSA signing keys sign PS256 (the Open Banking profile's algorithm), EC
keys ES256 (FAPI's other one).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bankhub.connectors.base import InteractionRejected, ProviderUnavailable

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: the algorithms FAPI 1 Advanced allows (8.6); the bank's ID tokens must use one of them
FAPI_ALGORITHMS = ("PS256", "ES256")
#: how long a client assertion lives; the token endpoint sees it within seconds
ASSERTION_SECONDS = 60
#: how long a request object lives: FAPI 1 Advanced 5.2.2 allows at most 60 minutes
REQUEST_OBJECT_SECONDS = 600
#: the Open Banking values of ``acr``: strong customer authentication, or none needed
ACR_VALUES = ("urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca")
#: clock difference with the bank tolerated when checking its ID tokens
LEEWAY_SECONDS = 60


def algorithm_for(key: SigningKey) -> str:
    return "PS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"


def _sign(claims: Mapping[str, Any], key: SigningKey, kid: str, typ: str | None = None) -> str:
    headers: dict[str, Any] = {"kid": kid}
    if typ:
        headers["typ"] = typ
    return jwt.encode(dict(claims), key, algorithm=algorithm_for(key), headers=headers)


def client_assertion(
    key: SigningKey, kid: str, client_id: str, token_endpoint: str, now: datetime
) -> str:
    """A fresh ``private_key_jwt`` assertion for one call to ``token_endpoint``."""
    issued = int(now.timestamp())
    return _sign(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": issued,
            "exp": issued + ASSERTION_SECONDS,
        },
        key,
        kid,
    )


def intent_claims(consent_id: str) -> dict[str, Any]:
    """The ``claims`` request: the consent to authorise, and an essential ``acr``."""
    wanted = {
        "openbanking_intent_id": {"value": consent_id, "essential": True},
        "acr": {"essential": True, "values": list(ACR_VALUES)},
    }
    return {
        "id_token": wanted,
        "userinfo": {"openbanking_intent_id": wanted["openbanking_intent_id"]},
    }


def request_object(
    key: SigningKey,
    kid: str,
    *,
    client_id: str,
    issuer: str,
    redirect_uri: str,
    response_type: str,
    scope: str,
    state: str,
    nonce: str,
    consent_id: str,
    now: datetime,
    code_challenge: str | None = None,
    ui_locales: str | None = None,
) -> str:
    """The signed authorization request (every parameter inside it, FAPI 1 Advanced 5.2.2);
    ``ui_locales`` (OpenID Connect Core 3.1.2.1) asks the bank's pages for the user's language."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": client_id,
        "aud": issuer,
        "client_id": client_id,
        "response_type": response_type,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "iat": issued,
        "nbf": issued,
        "exp": issued + REQUEST_OBJECT_SECONDS,
        "jti": secrets.token_urlsafe(24),
        "claims": intent_claims(consent_id),
    }
    if code_challenge is not None:
        claims["code_challenge"] = code_challenge
        claims["code_challenge_method"] = "S256"
    if ui_locales:
        claims["ui_locales"] = ui_locales
    return _sign(claims, key, kid, typ="oauth-authz-req+jwt")


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def half_hash(value: str) -> str:
    """``c_hash`` / ``s_hash``: the left half of the SHA-256 of the value, base64url (PS256 and
    ES256 both hash with SHA-256)."""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def verify_id_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    consent_id: str,
    now: datetime,
    bank: str,
    code: str | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """The ID token's claims, once its signature (a key of the bank's JWKS, a FAPI algorithm)
    and claims hold; any fault refuses the login (a forged or replayed answer)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InteractionRejected(f"{bank} sent an ID token that cannot be read") from None
    algorithm = header.get("alg")
    if algorithm not in FAPI_ALGORITHMS:
        raise InteractionRejected(f"{bank} signed its ID token with {algorithm!r}, not PS256/ES256")
    try:
        keys = jwt.PyJWKSet.from_dict(dict(jwks)).keys
    except jwt.PyJWTError as exc:
        raise ProviderUnavailable(
            f"{bank} publishes a key set bankhub cannot read ({exc})"
        ) from None
    candidates = [k for k in keys if header.get("kid") in (None, k.key_id)]
    if not candidates:
        raise InteractionRejected(f"{bank} signed its ID token with a key it does not publish")
    claims: dict[str, Any] | None = None
    for candidate in candidates:
        try:
            claims = jwt.decode(
                token,
                candidate.key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=issuer,
                leeway=timedelta(seconds=LEEWAY_SECONDS),
                options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_iat": False},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise InteractionRejected(
                f"{bank} sent an ID token that does not hold ({exc})"
            ) from None
    if claims is None:
        raise InteractionRejected(f"The signature of {bank}'s ID token does not verify")
    # PyJWT checks exp against its own clock; bankhub's injected clock decides as well
    if float(claims["exp"]) + LEEWAY_SECONDS < now.timestamp():
        raise InteractionRejected(f"{bank} sent an ID token that has expired")
    if claims.get("nonce") != nonce:
        raise InteractionRejected(f"{bank}'s ID token does not carry this login's nonce")
    # an essential claim of the request (Open Banking): a bank that leaves it out has not said
    # which consent the user approved
    if claims.get("openbanking_intent_id") != consent_id:
        raise InteractionRejected(f"{bank}'s ID token was issued for another consent")
    if code is not None and claims.get("c_hash") != half_hash(code):
        raise InteractionRejected(f"{bank}'s ID token does not match the authorization code")
    # FAPI 1 Advanced 5.2.2.1: a hybrid-flow ID token carries s_hash
    if state is not None and claims.get("s_hash") != half_hash(state):
        raise InteractionRejected(f"{bank}'s ID token does not match the state")
    return claims
