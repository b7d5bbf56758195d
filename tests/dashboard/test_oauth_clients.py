"""The OAuth clients page: endpoints, the app's grants, and ending one (S7, S10).

Revoking a grant from the dashboard ends its access token and its refresh token at once (the
API refuses both), needs a recent re-authentication, is refused to a viewer, and is audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
GRANT = re.compile(r'<tr data-grant="([^"]+)"')


async def _grant(h: Harness) -> dict[str, Any]:
    answer = await h.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _bearer_status(h: Harness, token: str) -> int:
    answer = await h.client.get("/v2/app", headers={"authorization": f"Bearer {token}"})
    return answer.status_code


async def test_the_page_shows_endpoints_and_grants_and_revokes_one(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    first = await _grant(h)
    h.clock.advance(seconds=1)
    second = await _grant(h)
    v = visitors()
    await v.sign_in(await make_member(h, Role.DEVELOPER))
    path = f"/dashboard/apps/{h.creds['client_id']}/oauth"
    page = await v.get(path)
    assert page.status_code == 200
    for shown in ("/oauth/token", "/.well-known/jwks.json", h.hub.tokens.issuer):
        assert shown in page.text
    grants = GRANT.findall(page.text)
    assert len(grants) == 2
    assert await _bearer_status(h, first["access_token"]) == 200

    # S7: past the re-authentication window the revoke waits for password and code
    h.clock.advance(minutes=6)
    await v.get(path)
    gated = await v.post(f"{path}/{grants[0]}/revoke", {"confirm": "yes"})
    assert gated.status_code == 303
    assert gated.headers["location"].startswith("/dashboard/reauth")
    assert await _bearer_status(h, second["access_token"]) == 200

    v2 = visitors()
    await v2.sign_in(await make_member(h, Role.ADMIN))
    await v2.get(path)
    asked = await v2.post(f"{path}/{grants[0]}/revoke")  # confirmed first
    assert asked.status_code == 200
    assert "InvalidToken" in asked.text
    assert await _bearer_status(h, second["access_token"]) == 200
    done = await v2.post(f"{path}/{grants[0]}/revoke", {"confirm": "yes"})  # the newest
    assert done.status_code == 303
    after = await v2.get(done.headers["location"])
    assert "The grant was revoked" in after.text
    assert GRANT.findall(after.text) == [grants[1]]
    assert "revoked_by_member" in after.text
    assert await _bearer_status(h, second["access_token"]) == 401
    assert await _bearer_status(h, first["access_token"]) == 200
    refreshed = await h.client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    missing = await v2.post(f"{path}/fam_nothing/revoke", {"confirm": "yes"})
    assert missing.status_code == 404

    async with h.hub.db.transaction() as db:
        entry = (
            await db.execute(select(AuditEntry).where(AuditEntry.action == "oauth.grant_revoked"))
        ).scalar_one()
    assert (entry.actor, entry.target_id) == ("member:admin@example.com", grants[0])


async def test_a_viewer_sees_grants_but_cannot_revoke(harness: Harness, visitors: Visitors) -> None:
    h = harness
    grant = await _grant(h)
    v = visitors()
    await v.sign_in(await make_member(h, Role.VIEWER))
    path = f"/dashboard/apps/{h.creds['client_id']}/oauth"
    page = await v.get(path)
    (family,) = GRANT.findall(page.text)
    assert "Revoke grant" not in page.text
    refused = await v.post(f"{path}/{family}/revoke", {"confirm": "yes"})
    assert refused.status_code == 403
    assert await _bearer_status(h, grant["access_token"]) == 200
