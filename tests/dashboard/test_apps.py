"""Apps in the dashboard: secrets shown once, keys rolled and revoked (refused by the API at
once), network settings and retention, every change audited with the member's name."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from bankhub.partners.models import ApiKey, App
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
SECRET = re.compile(r'<code class="secret">([^<]+)</code>')


async def _signed_in(h: Harness, visitors: Visitors, role: Role = Role.DEVELOPER) -> Visitor:
    v = visitors()
    await v.sign_in(await make_member(h, role))
    return v


def _key_ids(text: str) -> list[str]:
    return re.findall(r'<tr data-key="([^"]+)"', text)


async def _api_status(h: Harness, client_id: str, secret: str) -> tuple[int, str]:
    answer = await h.client.get(
        "/v2/app", headers={"client-id": client_id, "service-secret": secret}
    )
    code = str(answer.json()["error"]) if answer.status_code >= 400 else ""
    return answer.status_code, code


async def _audit(h: Harness) -> list[AuditEntry]:
    async with h.hub.db.transaction() as db:
        return list((await db.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_create_an_app_its_secrets_are_shown_once_and_work(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors)
    await v.get("/dashboard/apps")
    made = await v.post("/dashboard/apps", {"name": "Budget app"})
    assert made.status_code == 200
    client_id, service_secret, app_secret = SECRET.findall(made.text)
    assert await _api_status(harness, client_id, service_secret) == (200, "")
    page = await v.get(f"/dashboard/apps/{client_id}")
    assert client_id in page.text
    assert service_secret not in page.text
    assert app_secret not in page.text
    entries = await _audit(harness)
    assert any(
        e.action == "app.created" and e.actor == "member:developer@example.com" for e in entries
    )


async def test_roll_then_revoke_the_old_key_is_refused_by_the_api(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors)
    client_id = harness.creds["client_id"]
    old_secret = harness.creds["service_secret"]
    page = await v.get(f"/dashboard/apps/{client_id}")
    service_key = _key_ids(page.text)[0]
    # roll with no overlap: the new secret works, the old one is refused at once
    rolled = await v.post(f"/dashboard/apps/{client_id}/keys/{service_key}/roll", {"overlap": "0"})
    assert rolled.status_code == 200, rolled.text
    (new_secret,) = SECRET.findall(rolled.text)
    assert await _api_status(harness, client_id, new_secret) == (200, "")
    assert await _api_status(harness, client_id, old_secret) == (401, "KeyRevoked")
    # an app key is at most write: a master one is refused, nothing is created
    page = await v.get(f"/dashboard/apps/{client_id}")
    keys_before = _key_ids(page.text)
    refused = await v.post(f"/dashboard/apps/{client_id}/keys", {"scope": "master", "kind": "app"})
    assert "at most" in refused.text
    assert SECRET.findall(refused.text) == []
    assert _key_ids((await v.get(f"/dashboard/apps/{client_id}")).text) == keys_before
    # create a read key, then revoke it
    page = await v.get(f"/dashboard/apps/{client_id}")
    created = await v.post(
        f"/dashboard/apps/{client_id}/keys", {"scope": "read", "kind": "service", "name": "ci"}
    )
    (read_secret,) = SECRET.findall(created.text)
    assert await _api_status(harness, client_id, read_secret) == (200, "")
    page = await v.get(f"/dashboard/apps/{client_id}")
    read_key = _key_ids(page.text)[-1]
    revoked = await v.post(f"/dashboard/apps/{client_id}/keys/{read_key}/revoke")
    assert revoked.status_code == 303
    assert await _api_status(harness, client_id, read_secret) == (401, "KeyRevoked")
    after = await v.open(revoked.headers["location"])
    assert "revoked" in after.text
    # a revoked key offers no buttons and cannot be rolled
    again = await v.post(f"/dashboard/apps/{client_id}/keys/{read_key}/roll", {"overlap": "0"})
    assert "Only a live key can be rolled" in again.text
    actions = [
        (e.action, e.actor, e.target_id)
        for e in await _audit(harness)
        if e.target_type == "api_key"
    ]
    who = "member:developer@example.com"
    assert ("key.rolled", who, service_key) in actions
    assert ("key.revoked", who, read_key) in actions
    assert any(a == "key.created" and w == who for a, w, _ in actions)
    # stored only as hashes
    async with harness.hub.db.transaction() as db:
        hashes = list((await db.execute(select(ApiKey.secret_hash))).scalars())
    assert new_secret not in hashes
    assert read_secret not in hashes


async def test_ip_allowlist_frame_origins_retention_and_referers(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors, Role.ADMIN)
    client_id = harness.creds["client_id"]
    base = f"/dashboard/apps/{client_id}"
    await v.get(base)
    bad = await v.post(f"{base}/ip-allowlist", {"cidrs": "10.0.0.0/8\nnot-a-network"})
    assert bad.status_code == 200
    assert "not-a-network" in bad.text
    saved = await v.post(f"{base}/ip-allowlist", {"cidrs": "10.0.0.0/8, 192.0.2.7"})
    assert saved.status_code == 303
    status, code = await _api_status(harness, client_id, harness.creds["service_secret"])
    assert status == 403
    assert code == "AddressNotAllowed"
    await v.get(base)
    cleared = await v.post(f"{base}/ip-allowlist", {"cidrs": ""})
    assert cleared.status_code == 303
    assert (await _api_status(harness, client_id, harness.creds["service_secret"]))[0] == 200

    await v.get(base)
    framed = await v.post(f"{base}/frame-origins", {"origins": "https://shop.example.com"})
    assert framed.status_code == 303
    refused = await v.post(f"{base}/frame-origins", {"origins": "https://x.example; script-src *"})
    assert "Not an origin" in refused.text
    kept = await v.post(f"{base}/retention", {"hours": "48"})
    assert kept.status_code == 303
    await v.get(base)
    out_of_range = await v.post(f"{base}/retention", {"hours": "99999"})
    assert "hours must be" in out_of_range.text

    page = await v.get(base)
    app_key = _key_ids(page.text)[1]  # the seed's app-secret key
    referers = await v.post(
        f"{base}/keys/{app_key}/referers", {"referers": "https://app.example.com"}
    )
    assert referers.status_code == 303
    async with harness.hub.db.transaction() as db:
        app = (await db.execute(select(App).where(App.client_id == client_id))).scalar_one()
        key = (await db.execute(select(ApiKey).where(ApiKey.key_id == app_key))).scalar_one()
    assert app.ip_allowlist is None
    assert app.frame_origins == ["https://shop.example.com"]
    assert app.retention_hours == 48
    assert app.retention_set_by == "admin@example.com"
    assert key.allowed_referers == ["https://app.example.com"]
    actions = {(e.action, e.actor) for e in await _audit(harness)}
    who = "member:admin@example.com"
    for action in (
        "app.ip_allowlist_changed",
        "app.frame_origins_changed",
        "app.retention_changed",
        "key.referers_changed",
    ):
        assert (action, who) in actions


async def test_a_viewer_sees_no_key_buttons_and_a_forged_roll_is_refused(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors, Role.VIEWER)
    client_id = harness.creds["client_id"]
    page = await v.get(f"/dashboard/apps/{client_id}")
    assert page.status_code == 200
    assert "/roll" not in page.text
    assert "/revoke" not in page.text
    assert "Create key" not in page.text
    key_id = _key_ids(page.text)[0]
    forged = await v.post(f"/dashboard/apps/{client_id}/keys/{key_id}/roll", {"overlap": "0"})
    assert forged.status_code == 403
    assert await _api_status(harness, client_id, harness.creds["service_secret"]) == (200, "")
    assert (await v.get("/dashboard/apps/no-such-app")).status_code == 404


async def test_the_apps_category_rules_from_the_dashboard(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors, Role.ADMIN)
    client_id = harness.creds["client_id"]
    base = f"/dashboard/apps/{client_id}"
    await v.get(base)
    bad = await v.post(f"{base}/category-rules", {"rules": "home: rewe\nrewe is groceries"})
    assert bad.status_code == 200
    assert "Line 2: write a rule as" in bad.text
    await v.get(base)
    unknown = await v.post(f"{base}/category-rules", {"rules": "groceries: rewe"})
    assert "&#39;groceries&#39; is not a category" in unknown.text
    await v.get(base)
    saved = await v.post(
        f"{base}/category-rules", {"rules": "home: rewe (debit)\n\nkids: taschengeld*\n"}
    )
    assert saved.status_code == 303
    async with harness.hub.db.transaction() as db:
        app = (await db.execute(select(App).where(App.client_id == client_id))).scalar_one()
    assert app.category_rules == [
        {"category": "home", "keyword": "rewe", "sign": "debit"},
        {"category": "kids", "keyword": "taschengeld*", "sign": "any"},
    ]
    page = await v.get(base)
    assert "home: rewe (debit)\nkids: taschengeld*\n" in page.text
    changes = [e for e in await _audit(harness) if e.action == "app.category_rules_changed"]
    assert [e.actor for e in changes] == ["member:admin@example.com"]
