"""Consent Control: customers and logins with status and consent expiry; revoke a login, erase
a customer (owner and admin only), audited with the member's name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.customers import services as customers
from bankhub.customers.models import Customer
from bankhub.dashboard.roles import Role
from bankhub.logins.models import Login
from bankhub.partners.models import App
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]


async def _customer_with_logins(h: Harness, identifier: str, count: int) -> tuple[str, list[int]]:
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        customer = await customers.create_customer(db, h.clock, app, identifier)
        ids = []
        for n in range(count):
            login = Login(
                app_id=app.id,
                customer_id=customer.id,
                service_id=1,
                secret_hash=f"{identifier}-{n}".ljust(64, "0")[:64],
                status="success",
                active=True,
                connector_state={},
                consent_expires_at=h.clock() + timedelta(days=90 - 100 * n),
                created_at=h.clock(),
                updated_at=h.clock(),
            )
            db.add(login)
            await db.flush()
            ids.append(login.id)
        return customer.id, ids


async def test_list_revoke_a_login_and_erase_a_customer(
    harness: Harness, visitors: Visitors
) -> None:
    alice, (first, second) = await _customer_with_logins(harness, "alice-<b>", 2)
    bob, _ = await _customer_with_logins(harness, "bob", 1)
    v = visitors()
    await v.sign_in(await make_member(harness, Role.ADMIN))
    base = f"/dashboard/apps/{harness.creds['client_id']}/customers"
    page = await v.get(base)
    assert page.status_code == 200
    assert "alice-&lt;b&gt;" in page.text
    assert f'data-login="{first}"' in page.text
    assert "2027-02-18" in page.text  # the first login's consent expiry
    assert "expired" in page.text  # the second one's is past
    assert 'data-customer="' + bob + '"' in (await v.get(base, params={"q": "bo"})).text
    assert alice not in (await v.get(base, params={"q": "bo"})).text

    await v.get(base)
    revoke = f"/dashboard/apps/{harness.creds['client_id']}/logins/{first}/revoke"
    asked = await v.get(revoke)
    assert asked.status_code == 200
    assert "erased" in asked.text  # what will happen, before anything does
    unconfirmed = await v.post(revoke)
    assert unconfirmed.status_code == 200
    revoked = await v.post(revoke, {"confirm": "yes"})
    assert revoked.status_code == 303
    await v.get(base)
    erased = await v.post(f"{base}/{alice}/erase", {"confirm": "yes"})
    assert erased.status_code == 303
    async with harness.hub.db.transaction() as db:
        left = list((await db.execute(select(Login.id))).scalars())
        people = list((await db.execute(select(Customer.id))).scalars())
        entries = {(e.action, e.actor) for e in (await db.execute(select(AuditEntry))).scalars()}
    assert first not in left
    assert second not in left
    assert alice not in people
    assert bob in people
    assert ("login.erased", "member:admin@example.com") in entries
    assert ("customer.erased", "member:admin@example.com") in entries


async def test_developers_see_but_cannot_revoke(harness: Harness, visitors: Visitors) -> None:
    _, (login_id,) = await _customer_with_logins(harness, "carol", 1)
    v = visitors()
    await v.sign_in(await make_member(harness, Role.DEVELOPER))
    base = f"/dashboard/apps/{harness.creds['client_id']}"
    page = await v.get(f"{base}/customers")
    assert f'data-login="{login_id}"' in page.text
    assert "Revoke login" not in page.text
    forged = await v.post(f"{base}/logins/{login_id}/revoke", {"confirm": "yes"})
    assert forged.status_code == 403
    assert (await v.get(f"{base}/logins/{login_id}/revoke")).status_code == 403
    other = await harness.new_app()
    foreign = await v.get(f"/dashboard/apps/{other['client_id']}/customers")
    assert f'data-login="{login_id}"' not in foreign.text
