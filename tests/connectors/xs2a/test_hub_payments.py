"""XS2A payments through the hub, on SQLite and PostgreSQL: the API, the connect page (plain
HTTP) with the bank's embedded authorisation on bankhub's page, the sweep polling the bank to a
final status, and cancellation of a payment and of a batch at the bank (also when the bank
wants the account holder to authorise the cancellation)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.payments.sweep import PaymentSweep
from tests.api.connect_client import (
    CALLBACK,
    Callback,
    ConnectDriver,
    PaymentDriver,
    create_customer,
    create_token,
)
from tests.conftest import BASE_URL, FakeClock, Harness, make_settings, run_harness
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID
from tests.connectors.xs2a.peer import PeerBank, running
from tests.connectors.xs2a.test_hub import SERVICE_ID, peer_service
from tests.connectors.xs2a.test_hub import hub_bank as hub_bank  # the fixture

CREDITOR_IBAN = "FR1420041010050500013M02606"
CHOICE = re.compile(r'name="choice" value="([^"]+)"')


def key() -> dict[str, str]:
    return {"Idempotency-Key": secrets.token_hex(16)}


async def ready(h: Harness, bank: PeerBank) -> tuple[str, str]:
    """Payments on, and a customer with an account at the peer bank: (customer, account)."""
    switched = await h.client.put(
        "/v2/payment/settings",
        json={"enabled": True, "chosen_by": "owner@example.com"},
        headers=h.headers(),
    )
    assert switched.status_code == 200, switched.text
    customer = await create_customer(h, "xs2a-payer")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, SERVICE_ID))
    await driver.agree()
    await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    await driver.answer(code=bank.code)
    login = (await driver.finish()).payload
    accounts = await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    assert accounts.status_code == 200, accounts.text
    account = accounts.json()["data"][0]
    return customer, str(account["id"])


async def create(h: Harness, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await h.client.post(path, json=body, headers={**h.headers(), **key()})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def transfer(n: int = 1) -> dict[str, Any]:
    return {
        "creditor_name": f"Supplier {n}",
        "creditor_iban": CREDITOR_IBAN,
        "amount": f"{n}.25",
        "currency": "EUR",
        "remittance_information": f"Invoice {n}",
    }


async def authorise_embedded(h: Harness, bank: PeerBank, connect_url: str) -> dict[str, Any]:
    """The user on the connect page: the payment, the bank's user ID and password, the code."""
    driver = PaymentDriver(h)
    page = await driver.open(connect_url)
    assert "asks you to approve a" in page, page[:2000]
    await driver.agree()
    page = await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    for _ in range(400):  # the progress page while the payment reaches the bank
        if not driver.in_progress():
            break
        await asyncio.sleep(0.02)
        page = await driver.show()
    assert "confirm the payment" in page, page[:3000]
    await driver.answer(code=bank.code)
    callback = await driver.end()
    return dict(callback.payload)


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


async def read(h: Harness, path: str) -> dict[str, Any]:
    response = await h.client.get(path, headers=h.headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_a_payment_authorised_on_bankhubs_page_and_polled_to_executed(
    hub_bank: tuple[Harness, PeerBank], clock: FakeClock
) -> None:
    h, bank = hub_bank
    customer, account = await ready(h, bank)
    consents = len(bank.consents)
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
    callback = await authorise_embedded(h, bank, created["connect_url"])
    assert callback == {"status": "success", "payment_id": created["id"]}
    assert len(bank.consents) == consents  # no account consent for a payment
    (held,) = bank.payments.values()
    assert held.request_id == created["id"]
    assert held.body["creditorAccount"] == {"iban": CREDITOR_IBAN}
    assert held.body["instructedAmount"] == {"currency": "EUR", "amount": "1.25"}
    seen = await read(h, f"/v2/payment/{created['id']}")
    assert seen["status"] == "authorised"
    # the sweep asks the bank (no user: no PSU-IP-Address) until the status is final
    before = len(bank.requests)
    for _ in range(3):
        clock.advance(minutes=1)
        await sweep(h).sweep()
    seen = await read(h, f"/v2/payment/{created['id']}")
    assert [s["status"] for s in seen["history"]] == [
        "pending_authorisation",
        "authorised",
        "accepted",
        "executed",
    ]
    status_reads = bank.requests[before:]
    assert [t.rsplit("/", 1)[-1] for _, t, _ in status_reads] == ["status"] * 2
    assert all("psu-ip-address" not in headers for _, _, headers in status_reads)
    assert bank.spec_problems_seen == []


async def test_a_batch_cancelled_at_the_bank_and_one_the_bank_wants_authorised(
    hub_bank: tuple[Harness, PeerBank], clock: FakeClock
) -> None:
    h, bank = hub_bank
    bank.payment_statuses = ("ACTC", "ACSP")  # accepted, never executed in this test
    customer, account = await ready(h, bank)
    body = {
        "customer_id": customer,
        "service_id": SERVICE_ID,
        "account_id": account,
        "callback_url": CALLBACK,
        "payments": [transfer(n) for n in range(1, 4)],
    }
    batch = await create(h, "/v2/payment/batch", body)
    callback = await authorise_embedded(h, bank, batch["connect_url"])
    assert callback == {"status": "success", "payment_id": batch["id"]}
    (held,) = bank.payments.values()
    assert held.service == "bulk-payments"
    assert len(held.body["payments"]) == 3
    cancelled = await h.client.delete(f"/v2/payment/batch/{batch['id']}", headers=h.headers())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"
    assert [p["status"] for p in cancelled.json()["data"]["payments"]] == ["cancelled"] * 3
    assert held.status == "CANC"

    bank.cancel_needs_authorisation = True
    second = await create(h, "/v2/payment/batch", body)
    await authorise_embedded(h, bank, second["connect_url"])
    asked = await h.client.delete(f"/v2/payment/batch/{second['id']}", headers=h.headers())
    assert asked.status_code == 202, asked.text
    waiting = asked.json()["data"]
    assert waiting["status"] == "authorised"
    assert waiting["connect_url"].startswith(f"{BASE_URL}/v2/connect/term/")
    assert [p["status"] for p in waiting["payments"]] == ["authorised"] * 3
    # the account holder authorises it on the connect page: the whole batch is cancelled
    driver = PaymentDriver(h)
    page = await driver.open(waiting["connect_url"])
    assert "asks you to cancel a batch of payments" in page, page[:3000]
    await driver.agree()
    page = await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    assert "to confirm the cancellation of the payment" in page, page[:3000]
    await driver.answer(code=bank.code)
    ended = await driver.end()
    assert ended.payload == {"status": "success", "payment_id": second["id"]}
    done = await read(h, f"/v2/payment/batch/{second['id']}")
    assert done["status"] == "cancelled"
    assert [p["status"] for p in done["payments"]] == ["cancelled"] * 3
    async with h.hub.db.transaction() as session:
        audited = (
            await session.execute(
                select(AuditEntry.target_id, AuditEntry.action, AuditEntry.detail).where(
                    AuditEntry.action.like("payment.cancel%")
                )
            )
        ).all()
    assert [(t, a) for t, a, _ in audited] == [
        (batch["id"], "payment.cancelled"),
        (second["id"], "payment.cancel_requested"),
        (second["id"], "payment.cancelled"),
    ]
    assert audited[1][2]["bank_needs_authorisation"] is True
    assert bank.spec_problems_seen == []


@pytest.fixture
async def approach_bank(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[Harness, PeerBank]]:
    """The hub with a peer bank offering only the approach the test names, two SCA methods."""
    approach: str = request.param
    clock.now = datetime(2026, 11, 20, 0, 10, tzinfo=UTC)
    with running(PeerBank(approaches=(approach,), methods=("sms", "push"))) as bank:
        shipped = json.loads(files("bankhub.catalogue").joinpath("services.json").read_text())
        catalogue = tmp_path / "catalogue.json"
        entry = peer_service(bank, sca_approaches=[approach], decoupled_poll_seconds=0)
        catalogue.write_text(json.dumps([*shipped, entry]))
        settings = make_settings(tmp_path, migrated_database_url, catalogue_file=catalogue)
        async for h in run_harness(settings, clock, migrated=True):
            yield h, bank


async def through_the_bank(
    driver: ConnectDriver, bank: PeerBank, asked: list[str] | None = None
) -> Callback:
    """The user answers whatever the bank asks on bankhub's page, to the end of the flow;
    ``asked`` gathers what the pages asked."""
    asked = [] if asked is None else asked
    page = await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    for _ in range(400):
        if driver.status == 303 and driver.location.startswith(CALLBACK):
            return await driver.end()
        if "How do you want to confirm" in page:
            asked.append("method")
            assert CHOICE.findall(page) == ["sms", "push"], page[:3000]
            page = await driver.answer(choice="push")
        elif 'name="code"' in page:
            asked.append("code")
            assert "PUSH_OTP" in page, page[:3000]
            page = await driver.answer(code=bank.code)
        else:  # the progress page, or the bank's app: the page checks by itself
            if "banking app" in page and "app" not in asked[-1:]:
                asked.append("app")
            assert driver.in_progress() or "banking app" in page, page[:3000]
            await asyncio.sleep(0.02)
            page = await driver.show()
    raise AssertionError("the flow never ended")


@pytest.mark.parametrize("approach_bank", ["DECOUPLED", "EMBEDDED"], indirect=True)
async def test_decoupled_polls_and_embedded_asks_the_method_and_the_code(
    approach_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = approach_bank
    assert (
        await h.client.put(
            "/v2/payment/settings",
            json={"enabled": True, "chosen_by": "owner@example.com"},
            headers=h.headers(),
        )
    ).status_code == 200
    customer = await create_customer(h, "xs2a-payer")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, SERVICE_ID))
    await driver.agree()
    login = (await through_the_bank(driver, bank)).payload
    assert login["status"] == "success", login
    accounts = await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    account = accounts.json()["data"][0]["id"]
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
    asked: list[str] = []
    callback = await through_the_bank(driver, bank, asked)
    assert callback.payload == {"status": "success", "payment_id": created["id"]}
    assert asked == (["app"] if bank.approaches == ("DECOUPLED",) else ["method", "code"])
    (held,) = bank.payments.values()
    assert held.approach == bank.approaches[0]
    assert (await read(h, f"/v2/payment/{created['id']}"))["status"] == "authorised"
    assert bank.spec_problems_seen == []


async def test_a_payment_without_its_debtor_account_is_refused_and_not_stored(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    """An XS2A bank cannot let the user choose the account: the partner hears it at once."""
    h, bank = hub_bank
    customer, _ = await ready(h, bank)
    response = await h.client.post(
        "/v2/payment",
        json={
            "customer_id": customer,
            "service_id": SERVICE_ID,
            "callback_url": CALLBACK,
            **transfer(),
            "amount": "-1",
        },
        headers={**h.headers(), **key()},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "DataInvalid"
    problems = body["extra"]["problems"]
    assert len(problems) == 2  # every problem at once: the amount and the account
    assert (
        "Peer Bank needs the account the payment leaves from; name one of the customer's "
        "accounts there - at `$.account_id`"
    ) in problems
    listed = await h.client.get("/v2/payment", headers=h.headers())
    assert listed.json()["data"] == []
    assert not bank.payments
