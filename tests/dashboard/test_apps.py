"""Apps in the dashboard: secrets shown once on a page of their own (a reload creates and shows
nothing), keys rolled and revoked after a confirmation (refused by the API at once; never the
last master key), apps renamed, archived (their keys refused) and restored, network settings and
retention, forms that keep their input and show errors at the field, every change audited with
the member's name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.customers import services as customers
from bankhub.customers.models import Customer
from bankhub.dashboard.models import PendingItem
from bankhub.dashboard.roles import Role
from bankhub.partners.models import ApiKey, App
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member, member_row

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


async def _shown(v: Visitor, made: httpx.Response) -> list[str]:
    """Follow a post's redirect to the page that shows its secrets once; the secrets."""
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    assert location.startswith("/dashboard/shown/"), location
    page = await v.get(location)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    return SECRET.findall(page.text)


async def _count(h: Harness, model: Any) -> int:
    async with h.hub.db.transaction() as db:
        return len(list((await db.execute(select(model))).scalars()))


async def test_create_an_app_its_secrets_are_shown_once_and_work(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors)
    await v.get("/dashboard/apps")
    made = await v.post("/dashboard/apps", {"name": "Budget app"})
    client_id, service_secret, app_secret = await _shown(v, made)
    assert service_secret not in made.headers["location"]
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
    asked = await v.post(f"/dashboard/apps/{client_id}/keys/{service_key}/roll", {"overlap": "0"})
    assert asked.status_code == 200, asked.text  # no overlap: confirmed first
    assert "stops at once" in asked.text
    assert await _api_status(harness, client_id, old_secret) == (200, "")
    rolled = await v.post(
        f"/dashboard/apps/{client_id}/keys/{service_key}/roll", {"overlap": "0", "confirm": "yes"}
    )
    (new_secret,) = await _shown(v, rolled)
    assert await _api_status(harness, client_id, new_secret) == (200, "")
    assert await _api_status(harness, client_id, old_secret) == (401, "KeyRevoked")
    # an app key is at most write: a master one is refused, nothing is created
    page = await v.get(f"/dashboard/apps/{client_id}")
    keys_before = _key_ids(page.text)
    refused = await v.post(f"/dashboard/apps/{client_id}/keys", {"scope": "master", "kind": "app"})
    assert refused.status_code == 200
    assert "at most" in refused.text
    assert 'id="key-scope" name="scope" aria-invalid="true"' in refused.text
    assert SECRET.findall(refused.text) == []
    assert _key_ids((await v.get(f"/dashboard/apps/{client_id}")).text) == keys_before
    # create a read key, then revoke it
    page = await v.get(f"/dashboard/apps/{client_id}")
    created = await v.post(
        f"/dashboard/apps/{client_id}/keys", {"scope": "read", "kind": "service", "name": "ci"}
    )
    (read_secret,) = await _shown(v, created)
    assert await _api_status(harness, client_id, read_secret) == (200, "")
    page = await v.get(f"/dashboard/apps/{client_id}")
    read_key = _key_ids(page.text)[-1]
    asked = await v.get(f"/dashboard/apps/{client_id}/keys/{read_key}/revoke")
    assert asked.status_code == 200
    assert "cannot be undone" in asked.text
    unconfirmed = await v.post(f"/dashboard/apps/{client_id}/keys/{read_key}/revoke")
    assert unconfirmed.status_code == 200  # the confirmation again, nothing revoked
    assert await _api_status(harness, client_id, read_secret) == (200, "")
    revoked = await v.post(
        f"/dashboard/apps/{client_id}/keys/{read_key}/revoke", {"confirm": "yes"}
    )
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


# --- one-time secrets, the last master key, archiving, field errors -----------------------------


async def test_a_reload_of_the_secrets_page_creates_and_shows_nothing(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors)
    await v.get("/dashboard/apps")
    apps_before, keys_before = await _count(harness, App), await _count(harness, ApiKey)
    made = await v.post("/dashboard/apps", {"name": "Reloaded app"})
    location = made.headers["location"]
    client_id, service_secret, _ = await _shown(v, made)
    # kept encrypted until shown, and nothing of it once shown
    async with harness.hub.db.transaction() as db:
        kept = list((await db.execute(select(PendingItem))).scalars())
    assert [(p.kind, p.payload_enc) for p in kept] == [("secret", None)]
    # the reload (or the back button): no secret, nothing new
    again = await v.get(location)
    assert again.status_code == 410
    assert "already shown" in again.text
    assert SECRET.findall(again.text) == []
    assert service_secret not in again.text
    assert again.headers["cache-control"] == "no-store"
    assert (await _count(harness, App), await _count(harness, ApiKey)) == (
        apps_before + 1,
        keys_before + 2,
    )
    # another session, even the same member's, finds nothing under that address
    other = visitors()
    await other.sign_in(await make_member(harness, Role.ADMIN))
    stranger = await other.get(location)
    assert stranger.status_code == 404
    assert SECRET.findall(stranger.text) == []
    # a key's secret takes the same way; it is never in the URL
    await v.get(f"/dashboard/apps/{client_id}")
    created = await v.post(f"/dashboard/apps/{client_id}/keys", {"scope": "read", "kind": "app"})
    (secret,) = await _shown(v, created)
    assert secret not in created.headers["location"]
    assert (await v.get(created.headers["location"])).status_code == 410
    assert await _count(harness, ApiKey) == keys_before + 3


async def test_the_last_live_master_key_cannot_be_revoked(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors)
    client_id = harness.creds["client_id"]
    page = await v.get(f"/dashboard/apps/{client_id}")
    master = _key_ids(page.text)[0]  # the seed's service-secret, the only master key
    asked = await v.get(f"/dashboard/apps/{client_id}/keys/{master}/revoke")
    assert asked.status_code == 409
    assert "last live master key" in asked.text
    forced = await v.post(f"/dashboard/apps/{client_id}/keys/{master}/revoke", {"confirm": "yes"})
    assert forced.status_code == 409
    assert await _api_status(harness, client_id, harness.creds["service_secret"]) == (200, "")
    # with a second master key, the first can go
    await v.get(f"/dashboard/apps/{client_id}")
    created = await v.post(
        f"/dashboard/apps/{client_id}/keys", {"scope": "master", "kind": "service"}
    )
    await _shown(v, created)
    await v.get(f"/dashboard/apps/{client_id}")
    revoked = await v.post(f"/dashboard/apps/{client_id}/keys/{master}/revoke", {"confirm": "yes"})
    assert revoked.status_code == 303
    assert await _api_status(harness, client_id, harness.creds["service_secret"]) == (
        401,
        "KeyRevoked",
    )


async def test_archive_refuses_the_apps_keys_and_restore_brings_them_back(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors, Role.ADMIN)
    client_id = harness.creds["client_id"]
    secret = harness.creds["service_secret"]
    base = f"/dashboard/apps/{client_id}"
    access = (
        await harness.client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
    ).json()["access_token"]
    asked = await v.get(f"{base}/archive")
    assert asked.status_code == 200
    assert "AppArchived" in asked.text
    unconfirmed = await v.post(f"{base}/archive")
    assert unconfirmed.status_code == 200
    assert await _api_status(harness, client_id, secret) == (200, "")
    archived = await v.post(f"{base}/archive", {"confirm": "yes"})
    assert archived.status_code == 303
    refused = await harness.client.get(
        "/v2/app", headers={"client-id": client_id, "service-secret": secret}
    )
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "AppArchived"
    assert set(body) >= {"error", "message", "extra"}
    assert "archived" in body["message"]
    # OAuth: no token for an archived app's key
    token = await harness.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert token.status_code == 401
    bearer = await harness.client.get("/v2/app", headers={"authorization": f"Bearer {access}"})
    assert (bearer.status_code, bearer.json()["error"]) == (403, "AppArchived")
    # hidden from the list unless asked for
    listed = await v.get("/dashboard/apps")
    assert f'data-app="{client_id}"' not in listed.text
    assert "Archived (1)" in listed.text
    assert f'data-app="{client_id}"' in (await v.get("/dashboard/apps?show=archived")).text
    assert f'data-app="{client_id}"' in (await v.get("/dashboard/apps?show=all")).text
    page = await v.get(base)
    assert "This app is archived" in page.text
    restored = await v.post(f"{base}/restore")
    assert restored.status_code == 303
    assert await _api_status(harness, client_id, secret) == (200, "")
    actions = [(e.action, e.actor) for e in await _audit(harness) if e.target_type == "app"]
    assert ("app.archived", "member:admin@example.com") in actions
    assert ("app.restored", "member:admin@example.com") in actions
    # a developer may not archive (owner and admin only)
    dev = await _signed_in(harness, visitors, Role.DEVELOPER)
    await dev.get(base)
    assert "Archive app" not in (await dev.get(base)).text
    assert (await dev.post(f"{base}/archive", {"confirm": "yes"})).status_code == 403
    assert (await dev.get(f"{base}/archive")).status_code == 403


async def test_rename_and_create_keep_the_input_and_show_the_error_at_the_field(
    harness: Harness, visitors: Visitors
) -> None:
    v = await _signed_in(harness, visitors, Role.ADMIN)
    client_id = harness.creds["client_id"]
    base = f"/dashboard/apps/{client_id}"
    await v.get(base)
    bad = await v.post(f"{base}/rename", {"name": "x" * 201})
    assert bad.status_code == 200
    assert (
        f'value="{"x" * 201}" aria-invalid="true" aria-describedby="app-rename-error"' in bad.text
    )
    assert '<p class="field-error" id="app-rename-error">Name the app' in bad.text
    await v.get(base)
    cidrs = await v.post(f"{base}/ip-allowlist", {"cidrs": "10.0.0.0/8\nnot-a-network"})
    assert (
        'name="cidrs" rows="3" maxlength="2000" aria-invalid="true" '
        'aria-describedby="cidrs-error">10.0.0.0/8\nnot-a-network</textarea>' in cidrs.text
    )
    hours = await v.post(f"{base}/retention", {"hours": "99999"})
    assert 'value="99999" aria-invalid="true" aria-describedby="hours-error"' in hours.text
    renamed = await v.post(f"{base}/rename", {"name": "  Budget & Co  "})
    assert renamed.status_code == 303
    async with harness.hub.db.transaction() as db:
        app = (await db.execute(select(App).where(App.client_id == client_id))).scalar_one()
    assert app.name == "Budget & Co"
    assert ("app.renamed", "member:admin@example.com") in [
        (e.action, e.actor) for e in await _audit(harness)
    ]
    await v.get("/dashboard/apps")
    blank = await v.post("/dashboard/apps", {"name": "   "})
    assert 'aria-describedby="app-name-error"' in blank.text
    await v.get("/dashboard/apps")
    apps_before = await _count(harness, App)
    unprintable = await v.post("/dashboard/apps", {"name": "tab\there"})
    assert 'value="tab\there" aria-invalid="true"' in unprintable.text
    assert await _count(harness, App) == apps_before


# --- a change that waits for re-authentication ---------------------------------------------------


async def test_a_change_posted_after_the_window_is_carried_out_once_after_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    """Erasing a customer and removing a member need the password and code again; the post that
    met a stale session is kept (for this session only) and made once they are given."""
    async with harness.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == harness.creds["client_id"]))
        ).scalar_one()
        customer = await customers.create_customer(db, harness.clock, app, "erase-me")
    admin = await make_member(harness, Role.ADMIN)
    target = await make_member(harness, Role.VIEWER, "leaving@example.com")
    v = visitors()
    await v.sign_in(admin)
    base = f"/dashboard/apps/{harness.creds['client_id']}"
    asked = await v.get(f"{base}/customers/{customer.id}/erase")
    assert asked.status_code == 200
    assert "erase-me" in asked.text
    harness.clock.advance(minutes=6)  # past the re-authentication window
    gated = await v.post(f"{base}/customers/{customer.id}/erase", {"confirm": "yes"})
    assert gated.status_code == 303
    location = gated.headers["location"]
    assert location.startswith("/dashboard/reauth?pending=")
    assert await _customer_exists(harness, customer.id)
    form = await v.get(location)
    assert "the erasure you confirmed" in form.text
    handle = location.split("=", 1)[1]
    # another session of the same member cannot use it
    other = visitors()
    await other.sign_in(admin, steps=1)
    harness.clock.advance(seconds=60)  # each code is accepted once: the next step
    await other.get(location)
    stolen = await other.post(
        "/dashboard/reauth",
        {"password": admin.password, "code": admin.code(harness), "pending": handle},
    )
    assert stolen.status_code == 303
    assert stolen.headers["location"] == "/dashboard?done=reauth"
    assert await _customer_exists(harness, customer.id)
    # a wrong code keeps it waiting
    wrong = await v.post(
        "/dashboard/reauth", {"password": admin.password, "code": "000000", "pending": handle}
    )
    assert wrong.status_code == 200
    assert f'name="pending" value="{handle}"' in wrong.text
    assert await _customer_exists(harness, customer.id)
    harness.clock.advance(seconds=90)
    done = await v.post(
        "/dashboard/reauth",
        {"password": admin.password, "code": admin.code(harness), "pending": handle},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{base}/customers?done=customer-erased"
    assert not await _customer_exists(harness, customer.id)
    # carried out once: the same form again replays nothing
    await v.get("/dashboard")
    again = await v.post(
        "/dashboard/reauth",
        {"password": admin.password, "code": admin.code(harness, steps=1), "pending": handle},
    )
    assert again.headers["location"] == "/dashboard?done=reauth"
    erased = [e for e in await _audit(harness) if e.action == "customer.erased"]
    assert [e.actor for e in erased] == ["member:admin@example.com"]

    # removing a member: confirmed, then (window over again) re-authenticated, then done
    target_row = await member_row(harness, target.email)
    assert target_row is not None
    harness.clock.advance(minutes=6)
    await v.get("/dashboard/team")
    asked = await v.get(f"/dashboard/team/{target_row.id}/remove")
    assert "leaving@example.com" in asked.text
    gated = await v.post(f"/dashboard/team/{target_row.id}/remove", {"confirm": "yes"})
    assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
    assert await member_row(harness, target.email) is not None
    await v.get(gated.headers["location"])
    harness.clock.advance(seconds=30)
    done = await v.post(
        "/dashboard/reauth",
        {
            "password": admin.password,
            "code": admin.code(harness),
            "pending": gated.headers["location"].split("=", 1)[1],
        },
    )
    assert done.headers["location"] == "/dashboard/team?done=removed"
    assert await member_row(harness, target.email) is None


async def _customer_exists(h: Harness, customer_id: str) -> bool:
    async with h.hub.db.transaction() as db:
        return await db.get(Customer, customer_id) is not None


async def test_sign_up_and_invitation_forms_show_the_error_at_the_field(
    harness: Harness, visitors: Visitors
) -> None:
    v = visitors()
    await v.get("/dashboard/sign-up")
    differ = await v.post(
        "/dashboard/sign-up",
        {
            "email": "boss@example.com",
            "password": "lighthouse keepers count",
            "password2": "lighthouse keepers count waves",
        },
    )
    assert 'value="boss@example.com">' in differ.text  # kept, and not the field in error
    assert 'aria-invalid="true" aria-describedby="password2-error"' in differ.text
    assert '<p class="field-error" id="password2-error">The passwords differ.</p>' in differ.text
    common = await v.post(
        "/dashboard/sign-up",
        {"email": "boss@example.com", "password": "password1234", "password2": "password1234"},
    )
    assert 'aria-describedby="password-error"' in common.text
    assert "too common" in common.text
    address = await v.post(
        "/dashboard/sign-up",
        {"email": "not an address", "password": "x", "password2": "x"},
    )
    assert 'value="not an address" aria-invalid="true" aria-describedby="email-error"' in (
        address.text
    )
    assert await member_row(harness, "boss@example.com") is None

    owner = await make_member(harness, Role.OWNER)
    o = visitors()
    await o.sign_in(owner)
    await o.get("/dashboard/team")
    taken = await o.post("/dashboard/team/invite", {"email": owner.email, "role": "admin"})
    assert (
        f'value="{owner.email}" aria-invalid="true" aria-describedby="invite-email-error"'
        in taken.text
    )
    assert '<option value="admin" selected>' in taken.text
    no_role = await o.post("/dashboard/team/invite", {"email": "new@example.com", "role": "boss"})
    assert 'aria-describedby="invite-role-error"' in no_role.text
    assert 'value="new@example.com"' in no_role.text
