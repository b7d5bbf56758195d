"""S8–S12: OAuth2 tokens, obtained with an independent client library and verified from the
JWKS with a JWT library other than the one bankhub signs with; the negative JWT suite."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.conftest import BASE_URL, Harness

TOKEN_URL = f"{BASE_URL}/oauth/token"


def _oauth_client(h: Harness, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=h.creds["client_id"],
        client_secret=h.creds["service_secret"],
        transport=h.client._transport,
        base_url=BASE_URL,
        **kwargs,
    )


async def _token(h: Harness, scope: str | None = None) -> dict[str, Any]:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    answer = await h.client.post(
        "/oauth/token", data=data, auth=(h.creds["client_id"], h.creds["service_secret"])
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


async def test_independent_client_obtains_and_uses_a_token(harness: Harness) -> None:
    """authlib fetches a token (client_credentials) and calls /v2 with it."""
    async with _oauth_client(harness) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert 0 < token["expires_in"] <= 3600
        listed = await client.get("/v2/service")
        assert listed.status_code == 200
        created = await client.post("/v2/customer", json={"identifier": "oauth-client"})
        assert created.status_code == 200, created.text


async def test_token_response_is_not_stored(harness: Harness) -> None:
    """S8: no-store on the token response, expires_in at most an hour."""
    answer = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(harness.creds["client_id"], harness.creds["service_secret"]),
    )
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["expires_in"] <= 3600


async def test_only_two_grants(harness: Harness) -> None:
    """S8: password and authorization_code grants are refused."""
    for grant in ("password", "authorization_code", "implicit"):
        answer = await harness.client.post(
            "/oauth/token",
            data={"grant_type": grant},
            auth=(harness.creds["client_id"], harness.creds["service_secret"]),
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "unsupported_grant_type"


async def test_access_token_verifies_with_joserfc_from_the_jwks(harness: Harness) -> None:
    """S9: ES256 with kid, checked by a second library against the published keys."""
    token = (await _token(harness))["access_token"]
    jwks = (await harness.client.get("/.well-known/jwks.json")).json()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256"
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    claims = decoded.claims
    assert claims["client_id"] == harness.creds["client_id"]
    assert claims["exp"] - claims["iat"] <= 3600
    assert claims["aud"].endswith("/v2")
    assert claims["iss"]


def _forge(claims: dict[str, Any], header: dict[str, Any], key: Any, alg: str) -> str:
    return pyjwt.encode(claims, key, algorithm=alg, headers=header)


async def _refused(h: Harness, token: str) -> None:
    answer = await h.client.get("/v2/service", headers=_bearer(token))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "InvalidToken"
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_negative_jwt_suite_is_refused(harness: Harness) -> None:
    """S9: alg none, HS/ES confusion, wrong audience, expired, tampered, unknown kid."""
    good = (await _token(harness))["access_token"]
    head_b64, body_b64, _ = good.split(".")
    header = json.loads(base64.urlsafe_b64decode(head_b64 + "=="))
    claims = json.loads(base64.urlsafe_b64decode(body_b64 + "=="))
    jwks = (await harness.client.get("/.well-known/jwks.json")).json()

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    # alg none
    await _refused(harness, f"{b64({**header, 'alg': 'none'})}.{body_b64}.")
    # algorithm confusion: HMAC keyed with the public key's JSON
    public = json.dumps(jwks["keys"][0]).encode()
    confused = f"{b64({**header, 'alg': 'HS256'})}.{body_b64}"
    import hashlib
    import hmac

    mac = hmac.new(public, confused.encode(), hashlib.sha256).digest()
    await _refused(harness, confused + "." + base64.urlsafe_b64encode(mac).decode().rstrip("="))
    # tampered payload: scope raised, signature kept
    await _refused(
        harness, f"{head_b64}.{b64({**claims, 'scope': 'master', 'sub': 'x'})}.{good.split('.')[2]}"
    )
    # unknown kid
    await _refused(harness, f"{b64({**header, 'kid': 'nope'})}.{body_b64}.{good.split('.')[2]}")
    # wrong audience and wrong issuer, signed with a key of our own (not bankhub's)
    from cryptography.hazmat.primitives.asymmetric import ec

    stranger = ec.generate_private_key(ec.SECP256R1())
    await _refused(harness, _forge({**claims, "aud": "other"}, header, stranger, "ES256"))
    # expired: the clock moves past exp
    harness.clock.advance(seconds=3601)
    await _refused(harness, good)


async def test_wrong_audience_with_bankhubs_own_key_is_refused(harness: Harness) -> None:
    """S9: aud is checked, not only the signature (a token bankhub signed for another audience)."""
    tokens = harness.hub.tokens
    original = tokens.audience
    tokens.audience = "https://elsewhere.example/v2"
    try:
        foreign = (await _token(harness))["access_token"]
    finally:
        tokens.audience = original
    await _refused(harness, foreign)


async def test_read_token_cannot_write(harness: Harness) -> None:
    """S10: missing scope → 403 insufficient_scope."""
    token = (await _token(harness, "read"))["access_token"]
    assert (await harness.client.get("/v2/service", headers=_bearer(token))).status_code == 200
    answer = await harness.client.post(
        "/v2/customer", headers=_bearer(token), json={"identifier": "nope"}
    )
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_refresh_rotates_and_reuse_revokes_the_family(harness: Harness) -> None:
    """S11: every refresh rotates; presenting a rotated token ends the family (audited)."""
    first = await _token(harness)
    auth = (harness.creds["client_id"], harness.creds["service_secret"])
    second = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert (
        await harness.client.get("/v2/service", headers=_bearer(rotated["access_token"]))
    ).status_code == 200
    reuse = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    await _refused(harness, rotated["access_token"])
    again = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
        auth=auth,
    )
    assert again.status_code == 400
    from sqlalchemy import select

    from bankhub.audit.models import AuditEntry

    async with harness.hub.db.transaction() as session:
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert "security.refresh_token_reuse" in actions


async def test_revoking_the_refresh_token_kills_its_access_tokens(harness: Harness) -> None:
    """S12: revocation always answers 200 and ends the family's access tokens."""
    grant = await _token(harness)
    auth = (harness.creds["client_id"], harness.creds["service_secret"])
    answer = await harness.client.post(
        "/oauth/revoke", data={"token": grant["refresh_token"]}, auth=auth
    )
    assert answer.status_code == 200
    await _refused(harness, grant["access_token"])
    unknown = await harness.client.post("/oauth/revoke", data={"token": "nonsense"}, auth=auth)
    assert unknown.status_code == 200


async def test_revoking_the_api_key_ends_its_tokens(harness: Harness) -> None:
    """S2 with S10: a bearer token dies with the key it was granted with."""
    key = (
        await harness.client.post("/v2/keys", headers=harness.headers(), json={"scope": "write"})
    ).json()["data"]
    answer = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(harness.creds["client_id"], key["secret"]),
    )
    token = answer.json()["access_token"]
    assert (await harness.client.get("/v2/service", headers=_bearer(token))).status_code == 200
    await harness.client.delete(f"/v2/keys/{key['key_id']}", headers=harness.headers())
    await _refused(harness, token)


async def test_introspection_shows_nothing_of_other_apps(harness: Harness) -> None:
    """S12: another app's token, or an inactive one, is {"active": false} and nothing else."""
    mine = await _token(harness)
    auth = (harness.creds["client_id"], harness.creds["service_secret"])
    active = (
        await harness.client.post(
            "/oauth/introspect", data={"token": mine["access_token"]}, auth=auth
        )
    ).json()
    assert active["active"] is True
    assert active["client_id"] == harness.creds["client_id"]
    other = await harness.new_app("other")
    seen = await harness.client.post(
        "/oauth/introspect",
        data={"token": mine["access_token"]},
        auth=(other["client_id"], other["service_secret"]),
    )
    assert seen.json() == {"active": False}
    anonymous = await harness.client.post("/oauth/introspect", data={"token": mine["access_token"]})
    assert anonymous.status_code == 401
    await harness.client.post("/oauth/revoke", data={"token": mine["refresh_token"]}, auth=auth)
    gone = await harness.client.post(
        "/oauth/introspect", data={"token": mine["access_token"]}, auth=auth
    )
    assert gone.json() == {"active": False}


async def test_bearer_only_in_the_authorization_header(harness: Harness) -> None:
    """S10: a token in the query string is not a credential."""
    token = (await _token(harness))["access_token"]
    answer = await harness.client.get("/v2/service", params={"access_token": token})
    assert answer.status_code in (400, 404)


async def test_signing_key_rotation_keeps_old_tokens_valid(harness: Harness) -> None:
    """S9: after rotation new tokens use the new kid; old tokens verify until they expire."""
    old = (await _token(harness))["access_token"]
    async with harness.hub.db.transaction() as session:
        kid = await harness.hub.tokens.rotate_signing_key(session)
    new = (await _token(harness))["access_token"]
    assert pyjwt.get_unverified_header(new)["kid"] == kid != pyjwt.get_unverified_header(old)["kid"]
    keys = {k["kid"] for k in (await harness.client.get("/.well-known/jwks.json")).json()["keys"]}
    assert {kid, pyjwt.get_unverified_header(old)["kid"]} <= keys
    for token in (old, new):
        assert (await harness.client.get("/v2/service", headers=_bearer(token))).status_code == 200


async def test_wrong_client_secret_is_invalid_client(harness: Harness) -> None:
    answer = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(harness.creds["client_id"], "wrong"),
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")
