"""Payments over the API and the connect page, on both databases: the switch and limits,
validation, every sandbox scenario, batches, cancellation, events, and the sweep that asks the
bank about payments bankhub is not sure of."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bankhub.audit.models import AuditEntry
from bankhub.connectors.base import PaymentStatus
from bankhub.payments.models import Payment, PaymentItem, PaymentStatusChange
from bankhub.payments.sending import PaymentAuthorisation
from bankhub.payments.sweep import PaymentSweep
from tests.api.connect_client import (
    CALLBACK,
    Callback,
    ConnectDriver,
    PaymentDriver,
    connect,
    create_customer,
)
from tests.conftest import Harness

SPARBANK = 3  # a sandbox bank in Germany (EUR)
CHOICE = re.compile(r'name="choice" value="([^"]+)"')
CREDITOR_IBAN = "DE89370400440532013000"


def key() -> dict[str, str]:
    return {"Idempotency-Key": secrets.token_hex(16)}


async def switch_on(h: Harness, **limits: Any) -> None:
    response = await h.client.put(
        "/v2/payment/settings",
        json={"enabled": True, "chosen_by": "owner@example.com", **limits},
        headers=h.headers(),
    )
    assert response.status_code == 200, response.text


def single(customer_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "service_id": SPARBANK,
        "callback_url": CALLBACK,
        "creditor_name": "Jürgen Müller",
        "creditor_iban": CREDITOR_IBAN,
        "amount": "12.50",
        "currency": "EUR",
        "remittance_information": "Invoice 2026-114",
        **fields,
    }


async def initiate(h: Harness, customer_id: str, **fields: Any) -> dict[str, Any]:
    response = await h.client.post(
        "/v2/payment", json=single(customer_id, **fields), headers={**h.headers(), **key()}
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def authorise(
    h: Harness, connect_url: str, username: str, code: str | None = None
) -> Callback:
    driver = PaymentDriver(h)
    page = await driver.open(connect_url)
    assert "€12.50" in page or "payments" in page, page
    await driver.agree()
    await driver.login(username)
    if code is not None:
        await driver.answer(code=code)  # the login's code
    if "be paid from?" in driver.page:  # no debtor account named: chosen at the bank
        await choose_account(driver)
    if code is not None:
        assert "To approve" in driver.page, driver.page
        await driver.answer(code=code)  # the payment's
    return await driver.end()


async def choose_account(driver: ConnectDriver) -> str:
    """No debtor account was named: the user picks one at the bank (the first offered)."""
    # back from the bank, the page may still say the payment is being handed over
    await driver.settle()
    assert "be paid from?" in driver.page, driver.page
    offered = CHOICE.findall(driver.page)
    assert len(offered) == 2, offered  # the current and the savings account, not the card
    await driver.answer(choice=offered[0])
    return str(offered[0])


async def payment(h: Harness, payment_id: str) -> dict[str, Any]:
    response = await h.client.get(f"/v2/payment/{payment_id}", headers=h.headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def count(h: Harness, model: Any) -> int:
    async with h.hub.db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def status_events(h: Harness) -> list[dict[str, Any]]:
    response = await h.client.get("/v2/event", headers=h.headers())
    assert response.status_code == 200, response.text
    return [e["payload"] for e in response.json()["data"] if e["type"] == "payment.status"]


def sweep(h: Harness) -> PaymentSweep:
    hub = h.hub
    return PaymentSweep(
        hub.db,
        hub.clock,
        hub.keyring,
        hub.engine,
        hub.catalogue,
        every=1.0,
        grace=timedelta(seconds=30),
        unauthorised_after=timedelta(hours=1),
    )


# --- the switch, the limits, the Idempotency-Key ----------------------------------------------


async def test_payments_are_off_until_an_owner_switches_them_on(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    refused = await h.client.post(
        "/v2/payment", json=single(customer), headers={**h.headers(), **key()}
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "PaymentsNotEnabled"
    # a write key (the app-secret) cannot switch them on: only the owner's master credential
    by_writer = await h.client.put(
        "/v2/payment/settings",
        json={"enabled": True, "chosen_by": "someone"},
        headers=h.headers(mobile=True),
    )
    assert by_writer.status_code == 403
    assert by_writer.json()["error"] == "InsufficientScope"
    await switch_on(h)
    settings = (await h.client.get("/v2/payment/settings", headers=h.headers())).json()["data"]
    assert settings["enabled"] is True
    assert settings["set_by"] == "owner@example.com"
    data = await initiate(h, customer)
    assert data["status"] == "pending_authorisation"
    assert data["connect_url"].startswith("http://testserver.local/v2/connect/term/")
    async with h.hub.db.transaction() as session:
        actions = (
            await session.execute(
                select(AuditEntry.action).where(AuditEntry.action.like("payment%"))
            )
        ).scalars()
        assert set(actions) >= {"payments.settings", "payment.created"}


async def test_an_idempotency_key_is_required_and_a_replay_makes_no_second_payment(
    harness: Harness,
) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    bare = await h.client.post("/v2/payment", json=single(customer), headers=h.headers())
    assert bare.status_code == 400
    assert bare.json()["error"] == "DataInvalid"
    same = {**h.headers(), **key()}
    first = await h.client.post("/v2/payment", json=single(customer), headers=same)
    again = await h.client.post("/v2/payment", json=single(customer), headers=same)
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    assert await count(h, Payment) == 1


async def test_daily_limits_refuse_clearly(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h, daily_count=2, daily_amount="30")
    await initiate(h, customer, amount="10")
    over_amount = await h.client.post(
        "/v2/payment", json=single(customer, amount="25"), headers={**h.headers(), **key()}
    )
    assert over_amount.status_code == 429
    body = over_amount.json()
    assert body["error"] == "PaymentLimitReached"
    assert body["extra"]["limit"] == "daily_amount"
    assert body["extra"]["used"] == "10.00"
    await initiate(h, customer, amount="10")
    over_count = await h.client.post(
        "/v2/payment", json=single(customer, amount="1"), headers={**h.headers(), **key()}
    )
    assert over_count.status_code == 429
    assert over_count.json()["extra"]["limit"] == "daily_count"
    assert "Retry-After" in over_count.headers
    h.clock.advance(days=1)  # a new UTC day
    await initiate(h, customer, amount="1")


# --- validation ---------------------------------------------------------------------------


async def test_bad_input_lists_every_problem_and_stores_nothing(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    response = await h.client.post(
        "/v2/payment",
        json=single(
            customer,
            creditor_name="王小明",
            creditor_iban="DE89370400440532013001",  # one digit off: the check digits fail
            amount="10.005",
            remittance_information="x" * 141,
            execution_date="2026-11-19",
        ),
        headers={**h.headers(), **key()},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "DataInvalid"
    problems = body["extra"]["problems"]
    fields = sorted(p.rsplit("`", 2)[-2] for p in problems)
    assert fields == [
        "$.amount",
        "$.creditor_iban",
        "$.creditor_name",
        "$.execution_date",
        "$.remittance_information",
    ], problems
    assert await count(h, Payment) == 0
    # a TARGET2 closing day is refused for a euro transfer, with the next business day named
    christmas = await h.client.post(
        "/v2/payment",
        json=single(customer, execution_date="2026-12-25"),
        headers={**h.headers(), **key()},
    )
    assert christmas.status_code == 400
    assert "2026-12-28" in christmas.json()["extra"]["problems"][0]
    # names with letters that have one SEPA form are transliterated, not refused
    data = await initiate(h, customer, creditor_name="Zoë Ørsted-Çelik")
    assert data["creditor_name"] == "Zoe Orsted-Celik"


# --- the sandbox's scenarios through the connect page -------------------------------------------


async def test_a_payment_authorised_by_the_login_is_executed(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    callback = await authorise(h, created["connect_url"], "user_good")
    assert callback.payload == {"status": "success", "payment_id": created["id"]}
    seen = await payment(h, created["id"])
    assert seen["status"] == "executed"
    assert [s["status"] for s in seen["history"]] == ["pending_authorisation", "executed"]
    assert seen["connect_url"] is None
    events = await status_events(h)
    assert [e["status"] for e in events] == ["pending_authorisation", "executed"]
    assert all(e["payment_id"] == created["id"] for e in events)
    # the link is used: it cannot authorise (nor send) the payment a second time
    again = await h.client.get(created["connect_url"].removeprefix("http://testserver.local"))
    assert again.status_code == 400


async def test_a_payment_that_needs_a_code(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    driver = PaymentDriver(h)
    await driver.open(created["connect_url"])
    await driver.agree()
    await driver.login("user_otp")
    assert "To approve" not in driver.page  # the login's own code first
    await driver.answer(code="123456")
    await choose_account(driver)
    assert "12.50 EUR to Jurgen Muller" in driver.page, driver.page
    await driver.answer(code="000000")
    assert "did not accept your answer" in driver.page
    await driver.answer(code="123456")
    callback = await driver.end()
    assert callback.payload == {"status": "success", "payment_id": created["id"]}
    assert (await payment(h, created["id"]))["status"] == "executed"


async def test_a_payment_rejected_for_insufficient_funds(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    callback = await authorise(h, created["connect_url"], "user_nofunds")
    assert callback.payload["status"] == "error"
    assert callback.payload["error"] == "payment_rejected"
    assert callback.payload["payment_id"] == created["id"]
    assert "AM04" in callback.payload["message"]
    seen = await payment(h, created["id"])
    assert seen["status"] == "rejected"
    assert seen["reason"] == "AM04 insufficient funds"


async def test_a_decoupled_approval(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    driver = PaymentDriver(h)
    await driver.open(created["connect_url"])
    await driver.agree()
    await driver.login("user_decoupled")
    h.clock.advance(seconds=5)  # the login's approval arrives
    await driver.show()
    await choose_account(driver)
    assert "in your Sandbox Bank app" in driver.page, driver.page
    assert "12.50 EUR" in driver.page, driver.page
    h.clock.advance(seconds=5)  # the payment's approval arrives
    await driver.show()
    callback = await driver.end()
    assert callback.payload == {"status": "success", "payment_id": created["id"]}


async def test_pending_then_executed_later_and_cancelled_by_the_bank(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    later = await initiate(h, customer)
    assert (await authorise(h, later["connect_url"], "user_pending")).payload["status"] == "success"
    dropped = await initiate(h, customer)
    assert (await authorise(h, dropped["connect_url"], "user_bankcancel")).payload[
        "status"
    ] == "success"
    assert (await payment(h, later["id"]))["status"] == "accepted"
    assert await sweep(h).sweep() == 0  # the bank has not moved yet
    h.clock.advance(seconds=120)
    assert await sweep(h).sweep() == 2
    assert (await payment(h, later["id"]))["status"] == "executed"
    cancelled = await payment(h, dropped["id"])
    assert cancelled["status"] == "cancelled"
    assert "DS02" in cancelled["reason"]
    events = await status_events(h)
    assert {(e["payment_id"], e["status"]) for e in events} >= {
        (later["id"], "executed"),
        (dropped["id"], "cancelled"),
    }


async def test_a_batch_is_authorised_once_with_a_status_per_transfer(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    transfers = [
        {
            "creditor_name": f"Supplier {i}",
            "creditor_iban": CREDITOR_IBAN,
            "amount": f"{i}.10",
            "currency": "EUR",
        }
        for i in range(1, 4)
    ]
    response = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": SPARBANK,
            "callback_url": CALLBACK,
            "payments": transfers,
            "total": "6.30",
        },
        headers={**h.headers(), **key()},
    )
    assert response.status_code == 200, response.text
    batch = response.json()["data"]
    assert batch["count"] == 3
    assert batch["total"] == "6.30"
    callback = await authorise(h, batch["connect_url"], "user_otp", code="123456")
    assert callback.payload == {"status": "success", "payment_id": batch["id"]}
    seen = (await h.client.get(f"/v2/payment/batch/{batch['id']}", headers=h.headers())).json()
    assert seen["data"]["status"] == "executed"
    assert [p["status"] for p in seen["data"]["payments"]] == ["executed"] * 3
    # a batch is not a single payment, and the reverse
    assert (
        await h.client.get(f"/v2/payment/{batch['id']}", headers=h.headers())
    ).status_code == 404
    wrong_total = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": SPARBANK,
            "callback_url": CALLBACK,
            "payments": transfers,
            "total": "6.31",
        },
        headers={**h.headers(), **key()},
    )
    assert wrong_total.status_code == 400
    assert "`$.total`" in wrong_total.json()["extra"]["problems"][0]


# --- cancellation ---------------------------------------------------------------------------


async def test_cancel_before_authorisation_and_not_after_execution(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    cancelled = await h.client.delete(f"/v2/payment/{created['id']}", headers=h.headers())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"
    # its link no longer opens a payment
    link = await h.client.get(created["connect_url"].removeprefix("http://testserver.local"))
    assert link.status_code == 400
    executed = await initiate(h, customer)
    await authorise(h, executed["connect_url"], "user_good")
    refused = await h.client.delete(f"/v2/payment/{executed['id']}", headers=h.headers())
    assert refused.status_code == 409
    assert refused.json()["error"] == "PaymentNotCancellable"
    # accepted and not executed yet: the bank cancels it
    pending = await initiate(h, customer)
    await authorise(h, pending["connect_url"], "user_pending")
    at_bank = await h.client.delete(f"/v2/payment/{pending['id']}", headers=h.headers())
    assert at_bank.status_code == 200, at_bank.text
    assert at_bank.json()["data"]["status"] == "cancelled"


async def batch_of(h: Harness, customer: str, count: int = 3) -> dict[str, Any]:
    transfers = [
        {
            "creditor_name": f"Supplier {i}",
            "creditor_iban": CREDITOR_IBAN,
            "amount": f"{i}.10",
            "currency": "EUR",
        }
        for i in range(1, count + 1)
    ]
    response = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": SPARBANK,
            "callback_url": CALLBACK,
            "payments": transfers,
        },
        headers={**h.headers(), **key()},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_cancel_a_batch_here_at_the_bank_and_not_when_final(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    # not sent yet: cancelled here, every transfer with it
    unsent = await batch_of(h, customer)
    cancelled = await h.client.delete(f"/v2/payment/batch/{unsent['id']}", headers=h.headers())
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()["data"]
    assert body["status"] == "cancelled"
    assert [p["status"] for p in body["payments"]] == ["cancelled"] * 3
    # accepted at the bank and not executed yet: the bank cancels the whole batch
    held = await batch_of(h, customer)
    await authorise(h, held["connect_url"], "user_pending")
    assert (await h.client.get(f"/v2/payment/batch/{held['id']}", headers=h.headers())).json()[
        "data"
    ]["status"] == "accepted"
    at_bank = await h.client.delete(f"/v2/payment/batch/{held['id']}", headers=h.headers())
    assert at_bank.status_code == 200, at_bank.text
    body = at_bank.json()["data"]
    assert body["status"] == "cancelled"
    assert body["reason"] == "cancelled at the debtor's request"
    assert [p["status"] for p in body["payments"]] == ["cancelled"] * 3
    assert "cancelled" in [
        e["status"] for e in await status_events(h) if e["payment_id"] == held["id"]
    ]
    # final: refused in the seed's envelope, and nothing moves
    again = await h.client.delete(f"/v2/payment/batch/{held['id']}", headers=h.headers())
    assert again.status_code == 409
    assert again.json()["error"] == "PaymentNotCancellable"
    assert again.json()["extra"] == {"id": held["id"], "status": "cancelled"}
    executed = await batch_of(h, customer)
    await authorise(h, executed["connect_url"], "user_good")
    refused = await h.client.delete(f"/v2/payment/batch/{executed['id']}", headers=h.headers())
    assert refused.status_code == 409
    assert refused.json()["extra"]["status"] == "executed"
    # a batch is not a single payment, and the reverse
    single_payment = await initiate(h, customer)
    wrong_kind = await h.client.delete(
        f"/v2/payment/batch/{single_payment['id']}", headers=h.headers()
    )
    assert wrong_kind.status_code == 404
    assert wrong_kind.json()["error"] == "PaymentNotFound"
    assert (
        await h.client.delete(f"/v2/payment/{executed['id']}", headers=h.headers())
    ).status_code == 404
    async with h.hub.db.transaction() as session:
        audited = (
            await session.execute(
                select(AuditEntry.target_id, AuditEntry.action).where(
                    AuditEntry.action.like("payment.cancel%")
                )
            )
        ).all()
    assert sorted(audited) == sorted(
        [(unsent["id"], "payment.cancelled"), (held["id"], "payment.cancelled")]
    )


# --- exactly once, and the executed payment in the account's transactions -----------------------


async def test_a_payment_sent_and_never_answered_is_reconciled_not_sent_again(
    harness: Harness,
) -> None:
    """The process died after the bank took the order and before the answer was recorded:
    the sweep asks the bank by bankhub's request id and records what it made of it."""
    h = harness
    customer = await create_customer(h)
    login = await connect(h, "user_good", SPARBANK, customer)
    accounts = await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    await switch_on(h)
    created = await initiate(h, customer, account_id=accounts.json()["data"][0]["id"])
    login_state: dict[str, Any] = {}
    service = h.hub.catalogue.get(SPARBANK)
    assert service is not None
    run = h.hub.engine.build(service, login_state)
    await run.connector.authenticate({"username": "user_good", "password": "pass_good"})
    authorisation = PaymentAuthorisation(
        h.hub.db, h.hub.keyring, h.hub.clock, await app_id(h), created["id"]
    )

    async def lost(*_: Any, **__: Any) -> None:
        raise SystemExit("the process died here")

    authorisation.record = lost  # type: ignore[method-assign]
    with contextlib.suppress(SystemExit):
        await authorisation.send(run.connector, run.state)
    async with h.hub.db.transaction() as session:
        row = await session.get(Payment, created["id"])
        assert row is not None
        assert row.sent_at is not None
        assert row.bank_payment_id is None
    assert await sweep(h).sweep() == 0  # within the grace a live call may still answer
    h.clock.advance(seconds=60)
    assert await sweep(h).sweep() == 1
    seen = await payment(h, created["id"])
    assert seen["status"] == "executed"
    async with h.hub.db.transaction() as session:
        row = await session.get(Payment, created["id"])
        assert row is not None
        assert row.bank_payment_id is not None
        assert row.bank_payment_id.startswith("sbx-")
    assert [e["status"] for e in await status_events(h)].count("executed") == 1
    # sending again (a second submit) asks the bank and makes no second payment
    await authorisation_again(h, created["id"], run)


async def authorisation_again(h: Harness, payment_id: str, run: Any) -> None:
    """Sending a payment that was sent before asks the bank; it never initiates again."""
    initiated: list[Any] = []
    initiate = run.connector.initiate_payment

    async def counted(order: Any) -> Any:
        initiated.append(order)
        return await initiate(order)

    run.connector.initiate_payment = counted
    async with h.hub.db.transaction() as session:
        row = await session.get(Payment, payment_id)
        assert row is not None
        row.status = PaymentStatus.PENDING_AUTHORISATION  # as if the answer were not in yet
    again = PaymentAuthorisation(h.hub.db, h.hub.keyring, h.hub.clock, await app_id(h), payment_id)
    await again.send(run.connector, run.state)
    assert initiated == []
    assert again.bank_payment_id is not None


async def app_id(h: Harness) -> int:
    from bankhub.partners.models import App

    async with h.hub.db.transaction() as session:
        return int(
            (
                await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
            ).scalar_one()
        )


async def test_unauthorised_payments_expire(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    h.clock.advance(hours=2)
    assert await sweep(h).sweep() == 1
    assert (await payment(h, created["id"]))["status"] == "expired"


async def test_the_executed_payment_appears_in_the_account_linked(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    login = await connect(h, "user_good", SPARBANK, customer)
    accounts = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    ).json()["data"]
    current = accounts[0]["id"]
    await switch_on(h)
    created = await initiate(h, customer, account_id=current)
    await authorise(h, created["connect_url"], "user_good")
    h.clock.advance(minutes=10)
    refreshed = await h.client.put(
        "/v2/login/refresh", json={}, headers=h.headers(login_secret=login["secret"])
    )
    assert refreshed.status_code == 200, refreshed.text
    rows = (
        await h.client.get(
            "/v2/transaction",
            params={"account_id": current},
            headers=h.headers(login_secret=login["secret"]),
        )
    ).json()["data"]
    paid = [r for r in rows if r.get("payment_id") == created["id"]]
    assert len(paid) == 1, rows[:3]
    assert paid[0]["amount"] == "-12.50"
    assert paid[0]["meta"]["end_to_end_id"] == created["end_to_end_id"]


async def test_items_and_history_are_sealed_at_rest(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    await initiate(h, customer)
    async with h.hub.db.transaction() as session:
        item = (await session.execute(select(PaymentItem))).scalar_one()
        payment_row = (await session.execute(select(Payment))).scalar_one()
        assert CREDITOR_IBAN not in item.details_enc
        assert "Invoice" not in item.details_enc
        assert "12.50" not in payment_row.details_enc
        assert await session.scalar(select(func.count()).select_from(PaymentStatusChange)) == 1


async def test_payment_reads_are_audited_as_account_data(harness: Harness) -> None:
    from tests.security.test_audit import PAYMENT_READS

    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    created = await initiate(h, customer)
    batch = await h.client.post(
        "/v2/payment/batch",
        json={
            "customer_id": customer,
            "service_id": SPARBANK,
            "callback_url": CALLBACK,
            "payments": [
                {
                    "creditor_name": "A",
                    "creditor_iban": CREDITOR_IBAN,
                    "amount": "1",
                    "currency": "EUR",
                }
            ],
        },
        headers={**h.headers(), **key()},
    )
    assert batch.status_code == 200, batch.text
    reads = {
        ("GET", "/v2/payment"): ("/v2/payment", "payment_list"),
        ("GET", "/v2/payment/{payment_id:str}"): (f"/v2/payment/{created['id']}", "payment"),
        ("GET", "/v2/payment/batch/{batch_id:str}"): (
            f"/v2/payment/batch/{batch.json()['data']['id']}",
            "payment_batch",
        ),
    }
    assert set(reads) == PAYMENT_READS
    for path, resource in reads.values():
        response = await h.client.get(
            path,
            params={"customer_id": customer} if path == "/v2/payment" else None,
            headers=h.headers(),
        )
        assert response.status_code == 200, response.text
        async with h.hub.db.transaction() as session:
            [entry] = (
                await session.execute(
                    select(AuditEntry).where(
                        AuditEntry.request_id == response.headers["x-request-id"]
                    )
                )
            ).scalars()
        assert entry.detail["resource"] == resource
        assert entry.detail["customer_id"] == customer


async def test_a_payment_approved_and_one_declined_on_the_banks_own_page(
    harness: Harness,
) -> None:
    from tests.api.test_connect_flow import _through_the_bank

    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    for decision, status in (("approve", "executed"), ("deny", "rejected")):
        created = await initiate(h, customer)
        driver = PaymentDriver(h)
        await driver.open(created["connect_url"])
        await driver.agree()
        await driver.login("user_redirect")
        await _through_the_bank(h, driver, "approve")  # the login's consent
        await choose_account(driver)
        assert "Approve the payment of 12.50 EUR" in driver.page, driver.page
        await _through_the_bank(h, driver, decision)  # the payment's
        callback = await driver.end()
        assert callback.payload["payment_id"] == created["id"]
        assert (await payment(h, created["id"]))["status"] == status


async def test_erasing_the_customer_erases_their_payments_and_payment_events(
    harness: Harness,
) -> None:
    h = harness
    customer = await create_customer(h)
    other = await create_customer(h, "another-payer")
    await switch_on(h)
    await initiate(h, customer)
    kept = await initiate(h, other)
    erased = await h.client.request(
        "DELETE", "/v2/customer", json={"customer_id": customer}, headers=h.headers()
    )
    assert erased.status_code == 200, erased.text
    assert await count(h, Payment) == 1
    assert await count(h, PaymentItem) == 1
    assert [e["payment_id"] for e in await status_events(h)] == [kept["id"]]


async def test_a_payment_left_at_the_banks_authorisation_step_expires(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h)
    left = await initiate(h, customer)
    driver = PaymentDriver(h)
    await driver.open(left["connect_url"])
    await driver.agree()
    await driver.login("user_good")
    # the user walks away at the bank's account choice
    assert await sweep(h).sweep() == 0
    assert (await payment(h, left["id"]))["status"] == "pending_authorisation"
    h.clock.advance(hours=2)
    assert await sweep(h).sweep() >= 1
    seen = await payment(h, left["id"])
    assert seen["status"] == "expired"
    assert seen["reason"] == "The payment was not authorised at the bank in time"


async def test_concurrent_payments_never_pass_the_daily_limit_together(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    await switch_on(h, daily_count=1)

    async def attempt() -> int:
        response = await h.client.post(
            "/v2/payment", json=single(customer), headers={**h.headers(), **key()}
        )
        return response.status_code

    codes = await asyncio.gather(*(attempt() for _ in range(4)))
    assert sorted(codes) == [200, 429, 429, 429], codes
    assert await count(h, Payment) == 1
