"""The account holder authorises, on the connect page, a cancellation an XS2A bank asks them
to authorise: for each SCA approach against the peer bank (spec-checked), the link's expiry,
and the sweep finishing a cancellation the user left half-done."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.events.models import Event
from tests.api.connect_client import (
    CALLBACK,
    Callback,
    ConnectDriver,
    PaymentDriver,
    create_customer,
    create_token,
    way_back,
)
from tests.conftest import BASE_URL, FakeClock, Harness
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID
from tests.connectors.xs2a.peer import PeerBank
from tests.connectors.xs2a.test_hub import SERVICE_ID
from tests.connectors.xs2a.test_hub_payments import (
    approach_bank as approach_bank,  # the fixture
)
from tests.connectors.xs2a.test_hub_payments import create, read, sweep, transfer

BANK_PAGE = re.compile(r'href="(http://127\.0\.0\.1:\d+/bank/[^"]+)"')
CHOICE = re.compile(r'name="choice" value="([^"]+)"')


#: how long the peer bank takes for a stalled call: longer than the connect page waits for
#: the bank before it shows the progress page (``connect_step_wait_seconds``)
STALL = 1.0


async def logged_in(driver: ConnectDriver) -> str:
    """The user logs in; the page right after, without waiting past any progress page."""
    form = {"csrf": driver.csrf(), **driver.form_step(), "psu_id": PSU_ID, "password": PASSWORD}
    sent = await driver.h.client.post("/v2/connect/credentials", data=form)
    assert sent.status_code == 303, sent.text
    return await driver.show()


async def through_the_bank(
    driver: ConnectDriver,
    bank: PeerBank,
    asked: list[str],
    *,
    leave_at_app: bool = False,
    page: str | None = None,
) -> Callback | None:
    """The user logs in (unless ``page``, the page after the login, is given) and answers
    whatever the bank asks (its own page too), to the end of the flow; ``asked`` gathers what
    was asked. ``leave_at_app``: the user closes the page once the bank asks for an approval
    in its app (``None`` then)."""
    if page is None:
        page = await driver.post(
            "/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD}
        )
    for _ in range(400):
        if driver.status == 303 and driver.location.startswith(CALLBACK):
            return await driver.end()
        bank_page = BANK_PAGE.search(page)
        if "How do you want to confirm" in page:
            asked.append("method")
            page = await driver.answer(choice=CHOICE.findall(page)[-1])
        elif 'name="code"' in page:
            asked.append("code")
            page = await driver.answer(code=bank.code)
        elif bank_page:
            asked.append("bank page")
            async with httpx.AsyncClient() as browser:
                decided = await browser.get(bank_page.group(1), params={"decision": "approve"})
            assert decided.status_code == 302, decided.text
            back = decided.headers["location"].removeprefix(BASE_URL)
            assert back.startswith("/v2/connect/return?"), back
            returned = await driver.h.client.get(back, follow_redirects=False)
            assert returned.status_code == 303, returned.text
            page = await driver.show()
        else:  # progress, or the bank's app: the page checks by itself
            if "banking app" in page:
                if "app" not in asked[-1:]:
                    asked.append("app")
                if leave_at_app:
                    return None
            else:
                assert driver.in_progress() or "is taking a moment" in page, page[:3000]
            await asyncio.sleep(0.02)
            page = await driver.show()
    raise AssertionError("the flow never ended")


async def paid_at_the_bank(
    h: Harness, bank: PeerBank, progress: list[str] | None = None
) -> dict[str, Any]:
    """Payments on, an account connected at the peer bank, and a payment the user authorised
    there, which the bank accepted (and does not execute in the test). ``progress``: the bank
    is slow to take the payment, and the page the user sees meanwhile goes there."""
    switched = await h.client.put(
        "/v2/payment/settings",
        json={"enabled": True, "chosen_by": "owner@example.com"},
        headers=h.headers(),
    )
    assert switched.status_code == 200, switched.text
    customer = await create_customer(h, "xs2a-canceller")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, SERVICE_ID))
    await driver.agree()
    login = await through_the_bank(driver, bank, [])
    assert login is not None
    assert login.payload["status"] == "success", login
    accounts = await h.client.get(
        "/v2/account", headers=h.headers(login_secret=login.payload["secret"])
    )
    account = accounts.json()["data"][0]["id"]
    bank.payment_statuses = ("ACTC", "ACSP")  # accepted, never executed here
    created = await create(
        h,
        "/v2/payment",
        {
            "customer_id": customer,
            "service_id": SERVICE_ID,
            "account_id": account,
            "callback_url": CALLBACK,
            **transfer(),
        },
    )
    driver = PaymentDriver(h)
    await driver.open(created["connect_url"])
    await driver.agree()
    page = None
    if progress is not None:
        bank.fail("/v1/payments/sepa-credit-transfers", stall=STALL)
        page = await logged_in(driver)
        progress.append(page)
    callback = await through_the_bank(driver, bank, [], page=page)
    assert callback is not None
    assert callback.payload == {"status": "success", "payment_id": created["id"]}
    return created


async def ask_to_cancel(h: Harness, payment_id: str) -> dict[str, Any]:
    asked = await h.client.delete(f"/v2/payment/{payment_id}", headers=h.headers())
    assert asked.status_code == 202, asked.text
    data: dict[str, Any] = asked.json()["data"]
    assert data["connect_url"].startswith(f"{BASE_URL}/v2/connect/term/"), data
    return data


async def audited(h: Harness, payment_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    async with h.hub.db.transaction() as session:
        rows = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail)
                .where(AuditEntry.target_id == payment_id, AuditEntry.action.like("payment.%"))
                .order_by(AuditEntry.id)
            )
        ).all()
    return [(a, b, dict(c or {})) for a, b, c in rows]


async def status_events(h: Harness, payment_id: str) -> list[str]:
    async with h.hub.db.transaction() as session:
        payloads = (
            await session.execute(
                select(Event.payload).where(Event.type == "payment.status").order_by(Event.id)
            )
        ).scalars()
        return [p["status"] for p in payloads if p["payment_id"] == payment_id]


@pytest.mark.parametrize("approach_bank", ["REDIRECT", "DECOUPLED", "EMBEDDED"], indirect=True)
async def test_the_account_holder_authorises_the_cancellation_on_the_connect_page(
    approach_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = approach_bank
    created = await paid_at_the_bank(h, bank)
    (held,) = bank.payments.values()
    bank.cancel_needs_authorisation = True
    waiting = await ask_to_cancel(h, created["id"])
    assert waiting["status"] in ("authorised", "accepted")
    assert held.status != "CANC"
    assert not held.cancellations
    # the payment's GET carries the link while the user has yet to open it
    assert (await read(h, f"/v2/payment/{created['id']}"))["connect_url"] == waiting["connect_url"]

    driver = PaymentDriver(h)
    page = await driver.open(waiting["connect_url"])
    # which payment is being cancelled: who is paid, how much
    assert "asks you to cancel a payment" in page, page[:3000]
    assert "Supplier 1" in page
    assert "€1.25" in page
    await driver.agree()
    asked: list[str] = []
    callback = await through_the_bank(driver, bank, asked)
    assert callback is not None
    assert callback.payload == {"status": "success", "payment_id": created["id"]}
    assert (
        asked
        == {
            "REDIRECT": ["bank page"],
            "DECOUPLED": ["app"],
            "EMBEDDED": ["method", "code"],
        }[bank.approaches[0]]
    )
    (authorisation,) = held.cancellations
    assert held.status == "CANC"

    seen = await read(h, f"/v2/payment/{created['id']}")
    assert seen["status"] == "cancelled"
    assert seen["history"][-1]["status"] == "cancelled"
    assert seen["connect_url"] is None
    assert (await status_events(h, created["id"]))[-1] == "cancelled"
    actions = await audited(h, created["id"])
    assert [a for a, _, _ in actions] == [
        "payment.created",
        "payment.cancel_requested",
        "payment.cancelled",
    ]
    _, actor, detail = actions[-1]
    assert actor.startswith("customer:")
    assert detail["authorised_by"] == "account_holder"
    assert detail["cancellation_authorisation_id"] == authorisation
    # the link again: the page says what happened, not "expired"
    again = ConnectDriver(h)
    page = await again.open(waiting["connect_url"])
    assert "This payment is already cancelled" in page, page[:3000]
    assert way_back(page).payload == {"status": "success", "payment_id": created["id"]}
    assert bank.spec_problems_seen == []


@pytest.mark.parametrize("approach_bank", ["EMBEDDED"], indirect=True)
async def test_a_cancellation_link_expires_like_every_connect_link(
    approach_bank: tuple[Harness, PeerBank], clock: FakeClock
) -> None:
    h, bank = approach_bank
    created = await paid_at_the_bank(h, bank)
    bank.cancel_needs_authorisation = True
    first = await ask_to_cancel(h, created["id"])
    # asking again makes a new link; the first one no longer opens
    second = await ask_to_cancel(h, created["id"])
    page = await ConnectDriver(h).open(first["connect_url"])
    assert "This link can no longer be used" in page, page[:3000]
    seen = await read(h, f"/v2/payment/{created['id']}")
    assert seen["connect_url"] == second["connect_url"]
    clock.advance(seconds=h.hub.settings.token_ttl_seconds + 1)
    assert (await read(h, f"/v2/payment/{created['id']}"))["connect_url"] is None
    page = await ConnectDriver(h).open(second["connect_url"])
    assert "This link can no longer be used" in page, page[:3000]
    assert "has expired" in page
    assert (await read(h, f"/v2/payment/{created['id']}"))["status"] != "cancelled"
    assert bank.spec_problems_seen == []


@pytest.mark.parametrize("approach_bank", ["DECOUPLED"], indirect=True)
async def test_the_sweep_finishes_a_cancellation_approved_after_the_page_was_left(
    approach_bank: tuple[Harness, PeerBank], clock: FakeClock
) -> None:
    h, bank = approach_bank
    created = await paid_at_the_bank(h, bank)
    bank.cancel_needs_authorisation = True
    bank.decoupled_polls = 3  # the user approves in the app a while later
    waiting = await ask_to_cancel(h, created["id"])
    driver = PaymentDriver(h)
    await driver.open(waiting["connect_url"])
    await driver.agree()
    assert await through_the_bank(driver, bank, [], leave_at_app=True) is None
    (held,) = bank.payments.values()
    assert held.status != "CANC"
    for _ in range(2):
        clock.advance(minutes=1)
        await sweep(h).sweep()
        # not approved yet: the payment stands as it was (never back to waiting for its own
        # authorisation because its cancellation's is not done)
        now = (await read(h, f"/v2/payment/{created['id']}"))["status"]
        assert now in ("authorised", "accepted"), now
    clock.advance(minutes=1)
    await sweep(h).sweep()
    assert held.status == "CANC"
    assert (await read(h, f"/v2/payment/{created['id']}"))["status"] == "cancelled"
    assert (await status_events(h, created["id"]))[-1] == "cancelled"
    action, actor, detail = (await audited(h, created["id"]))[-1]
    assert (action, actor) == ("payment.cancelled", "system:payments-sweep")
    assert detail["cancellation_authorisation_id"] == next(iter(held.cancellations))
    assert bank.spec_problems_seen == []


@pytest.mark.parametrize("approach_bank", ["EMBEDDED"], indirect=True)
async def test_the_progress_page_says_the_payment_or_its_cancellation_is_on_its_way(
    approach_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = approach_bank
    seen: list[str] = []
    created = await paid_at_the_bank(h, bank, progress=seen)
    assert "Sending your payment to Peer Bank…" in seen[0], seen[0][:3000]
    assert "Fetching your accounts" not in seen[0]
    bank.cancel_needs_authorisation = True
    waiting = await ask_to_cancel(h, created["id"])
    driver = PaymentDriver(h)
    await driver.open(waiting["connect_url"])
    await driver.agree()
    bank.fail("/cancellation-authorisations", stall=STALL)
    page = await logged_in(driver)
    assert "Asking Peer Bank to cancel your payment…" in page, page[:3000]
    assert "Fetching your accounts" not in page
    assert "Sending your payment" not in page
    callback = await through_the_bank(driver, bank, [], page=page)
    assert callback is not None
    assert callback.payload == {"status": "success", "payment_id": created["id"]}


@pytest.mark.parametrize("approach_bank", ["EMBEDDED"], indirect=True)
async def test_giving_up_the_cancellation_on_the_page_leaves_the_payment_as_it_was(
    approach_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = approach_bank
    created = await paid_at_the_bank(h, bank)
    bank.cancel_needs_authorisation = True
    waiting = await ask_to_cancel(h, created["id"])
    driver = PaymentDriver(h)
    await driver.open(waiting["connect_url"])
    await driver.agree()
    callback = await driver.cancel()
    assert callback.payload == {"status": "cancelled", "payment_id": created["id"]}
    seen = await read(h, f"/v2/payment/{created['id']}")
    assert seen["status"] in ("authorised", "accepted")
    (held,) = bank.payments.values()
    assert held.status != "CANC"
    assert not held.cancellations
    assert "payment.cancelled" not in [a for a, _, _ in await audited(h, created["id"])]
