"""S1, S2, S15: scoped API keys, rotation with overlap, revocation at once, deny by default."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers import HTTPRouteHandler

from bankhub.api.principal import AuthDep, HubDep
from bankhub.app import create_app
from bankhub.hub import Hub
from bankhub.security.scopes import DECLARATIONS
from tests.conftest import Harness
from tests.support.asgi import asgi_transport

#: every route that changes data, with a body that would otherwise be valid
WRITES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/v2/customer", {"identifier": "scope-check"}, "write"),
    ("POST", "/v2/keys", {"scope": "read"}, "master"),
    ("PUT", "/v2/app/retention", {"hours": 48, "chosen_by": "test"}, "master"),
]


def _key_headers(h: Harness, secret: str) -> dict[str, str]:
    return {
        "client-id": h.creds["client_id"],
        "service-secret": secret,
        "content-type": "application/json",
    }


async def _new_key(h: Harness, scope: str) -> dict[str, Any]:
    answer = await h.client.post("/v2/keys", headers=h.headers(), json={"scope": scope})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def test_every_route_declares_its_scope(tmp_path: Any) -> None:
    """S15: a route that declares no scope fails this test (deny by default)."""
    from tests.conftest import make_settings

    app = create_app_for_inspection(make_settings(tmp_path, "sqlite+aiosqlite://"))
    undeclared = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            handler.resolve_opts()  # merges the router's declarations into the handler's
            scope = (handler.opt or {}).get("scope")
            if route.path.startswith(("/docs", "/schema")):
                continue
            if set(handler.http_methods) <= {"OPTIONS", "HEAD"}:
                continue  # the framework's own CORS preflight and HEAD answers
            if scope not in DECLARATIONS:
                undeclared.append((route.path, sorted(handler.http_methods)))
    assert undeclared == []


def create_app_for_inspection(settings: Any) -> Litestar:

    return create_app(Hub.build(settings))


async def test_a_route_without_a_scope_refuses_every_credential(harness: Harness) -> None:
    """S15: the hub refuses a credential on a route that declared nothing."""

    @get("/v2/undeclared")
    async def undeclared(hub: HubDep, auth: AuthDep) -> dict[str, str]:
        async with hub.db.transaction() as session:
            await auth.app(session)
        return {"ok": "yes"}

    app = create_app(harness.hub)
    app.register(undeclared)
    async with httpx.AsyncClient(
        transport=asgi_transport(app), base_url="http://testserver.local"
    ) as client:
        answer = await client.get("/v2/undeclared", headers=harness.headers())
    assert answer.status_code == 403
    assert answer.json()["error"] == "InsufficientScope"


@pytest.mark.parametrize(("method", "path", "body", "needed"), WRITES)
async def test_read_key_cannot_write(
    harness: Harness, method: str, path: str, body: dict[str, Any] | None, needed: str
) -> None:
    """S2: a read key reads (200) but every write answers 403 InsufficientScope."""
    read = await _new_key(harness, "read")
    headers = _key_headers(harness, read["secret"])
    assert (await harness.client.get("/v2/service", headers=headers)).status_code == 200
    answer = await harness.client.request(method, path, headers=headers, json=body)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "InsufficientScope"
    assert answer.json()["extra"] == {"required": needed, "granted": "read"}


async def test_write_key_cannot_manage_keys(harness: Harness) -> None:
    write = await _new_key(harness, "write")
    headers = _key_headers(harness, write["secret"])
    created = await harness.client.post("/v2/customer", headers=headers, json={"identifier": "w"})
    assert created.status_code == 200
    answer = await harness.client.get("/v2/keys", headers=headers)
    assert answer.status_code == 403


async def test_roll_overlap_then_revoke_is_refused_at_once(harness: Harness) -> None:
    """S2: create new → both valid for the overlap → revoke old → 401 at once."""
    old = await _new_key(harness, "write")
    rolled = await harness.client.post(
        f"/v2/keys/{old['key_id']}/roll", headers=harness.headers(), json={"overlap_seconds": 3600}
    )
    assert rolled.status_code == 200, rolled.text
    new = rolled.json()["data"]
    assert new["replaces"] == old["key_id"]
    assert new["secret"] != old["secret"]
    for secret in (old["secret"], new["secret"]):
        answer = await harness.client.get("/v2/service", headers=_key_headers(harness, secret))
        assert answer.status_code == 200
    revoked = await harness.client.delete(f"/v2/keys/{old['key_id']}", headers=harness.headers())
    assert revoked.status_code == 200
    refused = await harness.client.get("/v2/service", headers=_key_headers(harness, old["secret"]))
    assert refused.status_code == 401
    assert refused.json()["error"] == "KeyRevoked"
    assert (
        await harness.client.get("/v2/service", headers=_key_headers(harness, new["secret"]))
    ).status_code == 200


async def test_rolled_key_ends_with_its_overlap(harness: Harness) -> None:
    old = await _new_key(harness, "read")
    await harness.client.post(
        f"/v2/keys/{old['key_id']}/roll", headers=harness.headers(), json={"overlap_seconds": 60}
    )
    harness.clock.advance(seconds=61)
    answer = await harness.client.get("/v2/service", headers=_key_headers(harness, old["secret"]))
    assert answer.status_code == 401


async def test_keys_are_shown_once_and_stored_hashed(harness: Harness) -> None:
    """S1: the secret is in the creation answer only, never in a listing or the database."""
    key = await _new_key(harness, "read")
    assert len(key["secret"]) >= 43  # 256 bits, base64url
    listing = await harness.client.get("/v2/keys", headers=harness.headers())
    assert key["secret"] not in listing.text
    from sqlalchemy import text

    async with harness.hub.db.transaction() as session:
        rows = (await session.execute(text("SELECT secret_hash FROM api_keys"))).all()
    assert all(key["secret"] not in str(row) for row in rows)


async def test_secrets_in_the_url_are_not_accepted(harness: Harness) -> None:
    """S1: a secret given as a query parameter does not authenticate."""
    answer = await harness.client.get(
        "/v2/service",
        params={
            "client-id": harness.creds["client_id"],
            "service-secret": harness.creds["service_secret"],
        },
    )
    assert answer.status_code in (400, 404)
    assert answer.json()["error"] in ("ClientNotFound", "CredentialInvalid")


async def test_another_apps_key_answers_like_a_missing_one(harness: Harness) -> None:
    other = await harness.new_app("other")
    mine = await _new_key(harness, "read")
    headers = {"client-id": other["client_id"], "service-secret": other["service_secret"]}
    theirs = await harness.client.delete(f"/v2/keys/{mine['key_id']}", headers=headers)
    missing = await harness.client.delete("/v2/keys/key_0000000000000000", headers=headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"] == missing.json()["error"]


async def test_the_last_master_key_cannot_revoke_itself(harness: Harness) -> None:
    listing = (await harness.client.get("/v2/keys", headers=harness.headers())).json()["data"]
    master = next(k for k in listing if k["scope"] == "master")
    answer = await harness.client.delete(f"/v2/keys/{master['key_id']}", headers=harness.headers())
    assert answer.status_code == 400
    assert (await harness.client.get("/v2/keys", headers=harness.headers())).status_code == 200


async def test_every_secret_presented_must_be_right(harness: Harness) -> None:
    """S1, S5: a wrong service-secret beside a valid app-secret (or the other way round) is
    refused with CredentialInvalid, never ignored; with both right the service key is used."""
    h = harness
    service, mobile = h.creds["service_secret"], h.creds["app_secret"]
    client_id = h.creds["client_id"]
    for headers in (
        {"service-secret": "not-the-secret", "app-secret": mobile},
        {"service-secret": service, "app-secret": "not-the-secret"},
        {"service-secret": "", "app-secret": mobile},
        {"service-secret": mobile, "app-secret": service},  # each in the other's header
    ):
        answer = await h.client.get("/v2/keys", headers={"client-id": client_id, **headers})
        assert answer.status_code == 400, (headers, answer.text)
        assert answer.json()["error"] == "CredentialInvalid"
    both = {"client-id": client_id, "service-secret": service, "app-secret": mobile}
    listed = await h.client.get("/v2/keys", headers=both)  # master scope: the service key's
    assert listed.status_code == 200, listed.text


async def test_the_api_key_401_carries_a_challenge(harness: Harness) -> None:
    """RFC 9110 §15.5.2: a revoked or expired key's 401 KeyRevoked carries WWW-Authenticate,
    naming the headers the credential goes in."""
    old = await _new_key(harness, "read")
    await harness.client.post(
        f"/v2/keys/{old['key_id']}/roll", headers=harness.headers(), json={"overlap_seconds": 0}
    )
    refused = await harness.client.get("/v2/service", headers=_key_headers(harness, old["secret"]))
    assert refused.status_code == 401
    assert refused.json()["error"] == "KeyRevoked"
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("ApiKey ")
    assert 'realm="bankhub"' in challenge
    assert "service-secret" in challenge


async def test_an_app_key_cannot_hold_master_scope(harness: Harness) -> None:
    """S2: an app key (meant for mobile and browser apps, where anyone can read it) is at most
    write: asking for a master one is DataInvalid and creates nothing; write and read work."""
    before = (await harness.client.get("/v2/keys", headers=harness.headers())).json()["data"]
    refused = await harness.client.post(
        "/v2/keys", headers=harness.headers(), json={"scope": "master", "kind": "app"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "DataInvalid"
    assert refused.json()["extra"]["problems"] == ["scope"]
    assert "write" in refused.json()["message"]
    after = (await harness.client.get("/v2/keys", headers=harness.headers())).json()["data"]
    assert len(after) == len(before)
    for scope in ("write", "read"):
        made = await harness.client.post(
            "/v2/keys", headers=harness.headers(), json={"scope": scope, "kind": "app"}
        )
        assert made.status_code == 200, made.text
    master = await harness.client.post(
        "/v2/keys", headers=harness.headers(), json={"scope": "master", "kind": "service"}
    )
    assert master.status_code == 200, master.text
