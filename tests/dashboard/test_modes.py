"""Sandbox and live mode per app: switched in the dashboard (owner and admin, re-authenticated,
audited), enforced by the catalogue the app reads, the routes that pick a service and the
connect page."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from tests.api.connect_client import (
    CALLBACK,
    ConnectDriver,
    connect,
    create_customer,
    create_token,
)
from tests.conftest import Harness
from tests.dashboard.support import Visitor, make_member

Visitors = Callable[..., Visitor]
SANDBOX_BANK = 1
STATEMENT = 11
XS2A_BANK = 12


async def _service_ids(h: Harness) -> set[int]:
    answer = await h.client.get("/v2/service", headers=h.headers())
    assert answer.status_code == 200, answer.text
    return {service["id"] for service in answer.json()["data"]}


async def _token(h: Harness, customer_id: str, service_id: int) -> tuple[int, dict[str, object]]:
    answer = await h.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": service_id, "callback_url": CALLBACK},
        headers=h.headers(),
    )
    body: dict[str, object] = answer.json()
    return answer.status_code, body


async def _switch(v: Visitor, h: Harness, mode: str) -> int:
    path = f"/dashboard/apps/{h.creds['client_id']}"
    await v.get(path)
    answer = await v.post(f"{path}/mode", {"mode": mode})
    return answer.status_code


async def test_live_hides_the_sandbox_banks_and_sandbox_the_real_ones(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    everything = await _service_ids(h)
    assert {SANDBOX_BANK, STATEMENT, XS2A_BANK} <= everything  # "both" until someone chooses
    login = await connect(h, "user_good", SANDBOX_BANK)
    customer = await create_customer(h, "mode-customer")
    early = await create_token(h, customer, SANDBOX_BANK)  # made before the switch

    owner = visitors()
    await owner.sign_in(await make_member(h, Role.OWNER))
    assert await _switch(owner, h, "live") == 303
    page = await owner.get(f"/dashboard/apps/{h.creds['client_id']}?done=mode")
    assert "This app is in <strong>live</strong> mode" in page.text

    live = await _service_ids(h)
    assert SANDBOX_BANK not in live
    assert {STATEMENT, XS2A_BANK} <= live
    status, body = await _token(h, customer, SANDBOX_BANK)
    assert status == 404
    assert body["error"] == "ServiceNotFound"
    assert "live mode" in str(body["message"])
    assert (await _token(h, customer, STATEMENT))[0] == 200
    reconnect = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": CALLBACK},
        headers=h.headers(login_secret=login["secret"]),
    )
    assert reconnect.status_code == 404
    assert reconnect.json()["error"] == "ServiceNotFound"
    # the link made before the switch shows why, and stays unused
    driver = ConnectDriver(h)
    await driver.open(early)
    assert driver.status == 404
    assert "live mode" in driver.page
    # the login that exists keeps working
    assert (
        await h.client.get("/v2/login", headers=h.headers(login_secret=login["secret"]))
    ).status_code == 200

    assert await _switch(owner, h, "sandbox") == 303
    sandbox = await _service_ids(h)
    assert SANDBOX_BANK in sandbox
    assert not sandbox & {STATEMENT, XS2A_BANK}
    assert (await _token(h, customer, XS2A_BANK))[0] == 404
    await driver.open(early)  # unused all along: it opens now
    assert driver.status == 200
    assert "asks to read your bank data" in driver.page

    async with h.hub.db.transaction() as db:
        changes = [
            e.detail
            for e in (
                await db.execute(select(AuditEntry).where(AuditEntry.action == "app.mode_changed"))
            ).scalars()
        ]
    assert changes == [
        {"old_mode": "both", "new_mode": "live"},
        {"old_mode": "live", "new_mode": "sandbox"},
    ]


async def test_only_owner_and_admin_switch_and_only_after_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    developer = visitors()
    await developer.sign_in(await make_member(h, Role.DEVELOPER))
    page = await developer.get(f"/dashboard/apps/{h.creds['client_id']}")
    assert "Save mode" not in page.text
    assert await _switch(developer, h, "live") == 403
    admin = visitors()
    await admin.sign_in(await make_member(h, Role.ADMIN))
    h.clock.advance(minutes=6)
    assert await _switch(admin, h, "live") == 303
    assert admin.last is not None
    assert admin.last.headers["location"].startswith("/dashboard/reauth")
    assert await _switch(admin, h, "nonsense") == 303  # also gated before anything is read
    assert SANDBOX_BANK in await _service_ids(h)  # unchanged
