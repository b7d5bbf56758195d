"""The dashboard's Payments page: the list and its filters and pages, a payment's detail with
its history and transfers (masked for viewers), the test payment on sandbox apps (the API's own
checks, limits and idempotency; refused and audited for viewers), and the payment switch
(owner only, re-authenticated, audited, the same setting as the API's)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from bankhub.partners import modes
from bankhub.partners.models import App
from bankhub.payments.models import Payment
from tests.api.connect_client import (
    WAITING,
    PaymentDriver,
    create_customer,
    parse_callback,
)
from tests.api.test_payments import CREDITOR_IBAN, initiate, key, switch_on
from tests.conftest import BASE_URL, Harness
from tests.dashboard.support import Person, Visitor, make_member

Visitors = Callable[..., Visitor]
FORM_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
ROW = re.compile(r'<tr data-payment="([0-9a-f-]{36})">')


def _payments(h: Harness) -> str:
    return f"/dashboard/apps/{h.creds['client_id']}/payments"


async def _signed_in(h: Harness, visitors: Visitors, role: Role) -> tuple[Visitor, Person]:
    person = await make_member(h, role)
    v = visitors()
    await v.sign_in(person)
    return v, person


async def _sandbox(h: Harness) -> None:
    async with h.hub.db.transaction() as db:
        app = (
            await db.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        await modes.set_mode(db, app, "sandbox", actor="test", now=h.clock())


async def _count(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        return int((await db.execute(select(func.count()).select_from(Payment))).scalar_one())


async def _audit(h: Harness, action: str) -> list[AuditEntry]:
    async with h.hub.db.transaction() as db:
        return list(
            (
                await db.execute(
                    select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
                )
            ).scalars()
        )


def _rows(text: str) -> list[str]:
    return ROW.findall(text)


async def test_the_list_filters_by_status_kind_dates_and_amounts_and_pages(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await switch_on(h, daily_count=1000, daily_amount="1000000")
    customer = await create_customer(h, "payer")
    made: list[dict[str, Any]] = []
    for n in range(54):
        made.append(await initiate(h, customer, amount=f"{n + 1}.00"))
        h.clock.advance(seconds=1)
    batch = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": 3,
            "callback_url": "http://localhost:2000/v2",
            "payments": [
                {"creditor_name": name, "creditor_iban": CREDITOR_IBAN, "amount": amount}
                | {"currency": "EUR"}
                for name, amount in (("A", "5"), ("B", "7"))
            ],
        },
        headers={**h.headers(), **key()},
    )
    assert batch.status_code == 200, batch.text
    batch_id = batch.json()["data"]["id"]
    cancelled = made[3]["id"]
    gone = await h.client.delete(f"/v2/payment/{cancelled}", headers=h.headers())
    assert gone.status_code == 200, gone.text

    v, _ = await _signed_in(h, visitors, Role.VIEWER)
    first = await v.get(_payments(h))
    assert first.status_code == 200, first.text
    assert first.headers["content-security-policy"].startswith("default-src 'self'")
    rows = _rows(first.text)
    assert len(rows) == 50
    assert rows[0] == batch_id  # newest first
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = await v.get(older.group(1).replace("&amp;", "&"))
    rest = _rows(second.text)
    assert len(rest) == 5
    assert not set(rows) & set(rest)
    assert 'rel="next"' not in second.text
    assert set(rows) | set(rest) == {p["id"] for p in made} | {batch_id}

    by_status = _rows((await v.get(_payments(h), params={"status": "cancelled"})).text)
    assert by_status == [cancelled]
    by_kind = _rows((await v.get(_payments(h), params={"kind": "batch"})).text)
    assert by_kind == [batch_id]
    # totals 10.00 to 12.00 (the batch's is 12.00)
    by_amount = _rows((await v.get(_payments(h), params={"min": "10", "max": "12"})).text)
    assert set(by_amount) == {made[9]["id"], made[10]["id"], made[11]["id"], batch_id}
    today = h.clock().date().isoformat()
    assert len(_rows((await v.get(_payments(h), params={"from": today, "to": today})).text)) == 50
    assert _rows((await v.get(_payments(h), params={"to": "2000-01-01"})).text) == []
    bad = await v.get(_payments(h), params={"min": "lots", "status": "paid", "from": "soon"})
    assert bad.status_code == 200
    assert "Minimum amount must be an amount" in bad.text
    assert "Unknown status" in bad.text
    assert "From must be a date" in bad.text
    # a viewer sees the list, never the test payment's form
    assert 'id="test-payment"' not in first.text
    listed = [
        e.detail
        for e in await _audit(h, "account_data.read")
        if e.detail.get("resource") == "dashboard_payment_list"
    ]
    assert listed[0] == {
        "resource": "dashboard_payment_list",
        "route": f"GET {_payments(h)}",
        "rows": 50,
        "opened": 50,
    }


async def test_an_amount_filter_pages_through_what_it_opened(
    harness: Harness, visitors: Visitors
) -> None:
    """Amounts are sealed: a page opens a bounded number of rows and goes on from there."""
    from bankhub.dashboard import payment_routes

    h = harness
    await switch_on(h, daily_count=1000, daily_amount="1000000")
    customer = await create_customer(h, "payer")
    big = []
    for n in range(12):
        made = await initiate(h, customer, amount="900.00" if n % 4 == 0 else "1.00")
        if n % 4 == 0:
            big.append(made["id"])
        h.clock.advance(seconds=1)
    v, _ = await _signed_in(h, visitors, Role.DEVELOPER)
    limit, page_size = payment_routes.SCAN_LIMIT, payment_routes.PAGE_SIZE
    payment_routes.SCAN_LIMIT, payment_routes.PAGE_SIZE = 5, 2
    try:
        seen: list[str] = []
        path = f"{_payments(h)}?min=500"
        for _ in range(10):
            answer = await v.get(path)
            seen += _rows(answer.text)
            older = re.search(r'<a rel="next" href="([^"]+)"', answer.text)
            if older is None:
                break
            assert "payments looked at for this page" in answer.text
            path = older.group(1).replace("&amp;", "&")
        else:
            raise AssertionError("the pages never ended")
        assert seen == list(reversed(big))
        # a page that holds the last match offers no next page, however many rows follow it
        payment_routes.SCAN_LIMIT, payment_routes.PAGE_SIZE = 100, 3
        whole = await v.get(f"{_payments(h)}?min=500")
        assert _rows(whole.text) == list(reversed(big))
        assert 'rel="next"' not in whole.text
    finally:
        payment_routes.SCAN_LIMIT, payment_routes.PAGE_SIZE = limit, page_size


async def test_a_payments_detail_shows_history_and_transfers_masked_for_viewers(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await switch_on(h)
    customer = await create_customer(h, "payer")
    made = await initiate(h, customer)
    h.clock.advance(seconds=5)
    gone = await h.client.delete(f"/v2/payment/{made['id']}", headers=h.headers())
    assert gone.status_code == 200
    path = f"{_payments(h)}/{made['id']}"

    developer, dev = await _signed_in(h, visitors, Role.DEVELOPER)
    full = (await developer.get(path)).text
    assert '<dd id="payment-status">cancelled</dd>' in full
    assert "Cancelled by the partner before it was authorised" in full
    history = full.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert history.index("pending_authorisation") < history.index("cancelled")
    assert CREDITOR_IBAN in full
    assert "Invoice 2026-114" in full
    assert "Jurgen Muller" in full
    assert "12.50 EUR" in full

    viewer, view = await _signed_in(h, visitors, Role.VIEWER)
    masked = (await viewer.get(path)).text
    assert "12.50 EUR" in masked
    assert CREDITOR_IBAN not in masked
    assert "DE•••• 3000" in masked
    assert "Invoice 2026-114" not in masked
    reads = [e for e in await _audit(h, "account_data.read") if e.target_id == made["id"]]
    assert [(e.actor, e.detail["details"]) for e in reads if e.actor.startswith("member:")] == [
        (f"member:{dev.email}", "full"),
        (f"member:{view.email}", "masked"),
    ]
    missing = await viewer.get(f"{_payments(h)}/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


async def _test_form(v: Visitor, h: Harness) -> dict[str, str]:
    page = await v.get(_payments(h))
    assert page.status_code == 200
    found = FORM_KEY.search(page.text)
    assert found, page.text[-3000:]
    return {
        "idempotency_key": found.group(1),
        "service_id": "3",
        "kind": "single",
        "count": "3",
        "creditor_name": "Test Creditor",
        "creditor_iban": CREDITOR_IBAN,
        "amount": "4.20",
        "currency": "EUR",
        "remittance": "Dashboard test",
    }


async def _walk(h: Harness, connect_url: str, username: str) -> str:
    """The member on the connect page as the scenario's user, back to the dashboard."""
    driver = PaymentDriver(h)
    await driver.open(connect_url)
    await driver.agree()
    await driver.login(username)
    if "be paid from?" in driver.page:
        offered = re.findall(r'name="choice" value="([^"]+)"', driver.page)
        await driver.answer(choice=offered[0])
    for _ in range(400):
        if driver.status == 303 and "/payments/returned/" in driver.location:
            return str(driver.location)
        if not driver.in_progress() and WAITING not in driver.page:
            # a payment that failed: the page's way back to the dashboard
            found = re.search(r'id="return" href="([^"]+)"', driver.page)
            assert found, driver.page
            return found.group(1).replace("&amp;", "&")
        await asyncio.sleep(0.02)
        await driver.show()
    raise AssertionError("the payment did not end")


async def test_a_test_payment_goes_through_the_connect_page_once_however_often_it_is_sent(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await _sandbox(h)
    await switch_on(h)
    v, dev = await _signed_in(h, visitors, Role.DEVELOPER)
    form = await _test_form(v, h)
    first = await v.post(f"{_payments(h)}/test", form)
    again = await v.post(f"{_payments(h)}/test", form)  # a double submit
    assert first.status_code == again.status_code == 303, first.text
    assert first.headers["location"] == again.headers["location"]
    assert first.headers["location"].startswith(f"{BASE_URL}/v2/connect/term/")
    assert await _count(h) == 1
    changed = await v.post(f"{_payments(h)}/test", {**form, "amount": "5.00"})
    assert changed.status_code == 409  # the form's key with another payment: refused
    assert "This form made a test payment already" in changed.text
    assert await _count(h) == 1
    created = await _audit(h, "payment.created")
    assert [e.actor for e in created] == [f"member:{dev.email}"]

    back = await _walk(h, first.headers["location"], "user_good")
    payload = parse_callback(back)
    assert payload["status"] == "success"
    landed = await v.get(back.removeprefix(BASE_URL))
    assert landed.status_code == 303
    detail = await v.get(landed.headers["location"])
    assert "The bank took the test payment." in detail.text
    assert '<dd id="payment-status">executed</dd>' in detail.text
    seen = await h.client.get(f"/v2/payment/{payload['payment_id']}", headers=h.headers())
    assert seen.json()["data"]["status"] == "executed"

    batch = {**(await _test_form(v, h)), "kind": "batch", "count": "3"}
    made = await v.post(f"{_payments(h)}/test", batch)
    assert made.status_code == 303
    back = await _walk(h, made.headers["location"], "user_nofunds")
    payload = parse_callback(back)
    assert payload["status"] == "error"
    seen = await h.client.get(f"/v2/payment/batch/{payload['payment_id']}", headers=h.headers())
    data = seen.json()["data"]
    assert data["status"] == "rejected"
    assert [p["remittance_information"] for p in data["payments"]] == [
        "Dashboard test 1/3",
        "Dashboard test 2/3",
        "Dashboard test 3/3",
    ]


async def test_a_test_payment_is_checked_and_limited_as_the_apis(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await _sandbox(h)
    v, _ = await _signed_in(h, visitors, Role.ADMIN)
    off = await v.post(f"{_payments(h)}/test", await _test_form(v, h))
    assert off.status_code == 400
    assert "Payment initiation is off for this app" in off.text
    await switch_on(h, daily_count=2)
    bad = {**(await _test_form(v, h)), "creditor_iban": "DE00123", "amount": "1.234"}
    refused = await v.post(f"{_payments(h)}/test", bad)
    assert refused.status_code == 400
    assert "$.creditor_iban" in refused.text
    assert "$.amount" in refused.text
    assert 'value="1.234"' in refused.text  # the form keeps what was typed
    assert await _count(h) == 0
    batch = {**(await _test_form(v, h)), "kind": "batch", "count": "3"}
    limited = await v.post(f"{_payments(h)}/test", batch)
    assert limited.status_code == 400
    assert "may initiate 2 transfers a day" in limited.text
    assert await _count(h) == 0


async def test_a_viewer_never_gets_the_form_and_a_forged_post_is_refused_and_audited(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    await switch_on(h)
    builder, _ = await _signed_in(h, visitors, Role.DEVELOPER)
    both = await builder.get(_payments(h))
    assert 'id="test-payment-off"' in both.text  # the app is in "both" mode
    form = {**(await _test_form_values()), "idempotency_key": "k" * 24}
    assert (await builder.post(f"{_payments(h)}/test", form)).status_code == 403
    await _sandbox(h)
    viewer, person = await _signed_in(h, visitors, Role.VIEWER)
    page = await viewer.get(_payments(h))
    assert 'id="test-payment"' not in page.text
    assert 'id="test-payment-role"' in page.text
    forged = await viewer.post(f"{_payments(h)}/test", form)
    assert forged.status_code == 403
    assert await _count(h) == 0
    refused = await _audit(h, "member.refused")
    assert [(e.actor, e.target_id, e.detail["action"]) for e in refused] == [
        (f"member:{person.email}", f"POST {_payments(h)}/test", "payments.test")
    ]


async def _test_form_values() -> dict[str, str]:
    return {
        "service_id": "3",
        "kind": "single",
        "creditor_name": "Test Creditor",
        "creditor_iban": CREDITOR_IBAN,
        "amount": "1.00",
        "currency": "EUR",
    }


async def test_only_an_owner_switches_payments_and_only_after_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    app_page = f"/dashboard/apps/{h.creds['client_id']}"
    settings = f"{app_page}/payments/settings"
    wanted = {"enabled": "on", "daily_count": "25", "daily_amount": "500"}
    admin, _ = await _signed_in(h, visitors, Role.ADMIN)
    assert "Save payment settings" not in (await admin.get(app_page)).text
    assert (await admin.post(settings, wanted)).status_code == 403

    owner, person = await _signed_in(h, visitors, Role.OWNER)
    assert "Save payment settings" in (await owner.get(app_page)).text
    h.clock.advance(minutes=6)  # past the re-authentication window
    gated = await owner.post(settings, wanted, headers={"referer": f"{BASE_URL}{app_page}"})
    assert gated.status_code == 303
    assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
    api = await h.client.get("/v2/payment/settings", headers=h.headers())
    assert api.json()["data"]["enabled"] is False
    await owner.get(gated.headers["location"])
    ok = await owner.post(
        "/dashboard/reauth",
        {"password": person.password, "code": person.code(h), "next": app_page},
    )
    assert ok.status_code == 303
    await owner.get(ok.headers["location"])
    bad = await owner.post(settings, {**wanted, "daily_amount": "-5"})
    assert bad.status_code == 400
    assert "The daily amount is a positive amount" in bad.text
    saved = await owner.post(settings, wanted)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{app_page}?done=payments"
    api = await h.client.get("/v2/payment/settings", headers=h.headers())
    assert api.json()["data"] == {
        "enabled": True,
        "daily_count": 25,
        "daily_amount": "500",
        "set_by": person.email,
        "set_at": api.json()["data"]["set_at"],
    }
    shown = (await owner.get(f"{app_page}?done=payments")).text
    assert "Payment initiation is <strong>on</strong>" in shown
    off = await owner.post(settings, {"daily_count": "25", "daily_amount": "500"})
    assert off.status_code == 303
    entries = await _audit(h, "payments.settings")
    assert [(e.actor, e.detail["enabled"]) for e in entries] == [
        (f"member:{person.email}", True),
        (f"member:{person.email}", False),
    ]
