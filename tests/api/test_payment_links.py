"""A payment's connect link that can no longer be used says what happened to the payment
(handed out as a file, sent, final) instead of "expired", and nothing more than its status;
an account connect's link still says it expired."""

from __future__ import annotations

from tests.api.connect_client import ConnectDriver, create_customer, create_token, way_back
from tests.api.test_payment_export import linked_account
from tests.api.test_payments import authorise, initiate, switch_on
from tests.conftest import Harness


async def opened(h: Harness, connect_url: str) -> str:
    driver = ConnectDriver(h)
    page = await driver.open(connect_url)
    # the link cannot be used: TokenExpire's status, whatever the page says
    assert driver.status == 400, page[:2000]
    assert "has expired" not in page, page[:3000]
    # the status only: never the creditor, the amount or the bank's words
    assert "Jürgen" not in page
    assert "12.50" not in page
    assert "AM04" not in page
    return page


async def test_a_payment_handed_out_as_a_file_says_so(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h)
    account = await linked_account(h, customer)
    await switch_on(h)
    created = await initiate(h, customer, account_id=account["id"])
    exported = await h.client.post(f"/v2/payment/{created['id']}/pain.001", headers=h.headers())
    assert exported.status_code == 200, exported.text
    page = await opened(h, created["connect_url"])
    assert "This payment was handed to your bank as a file" in page, page[:3000]
    assert way_back(page).payload == {
        "status": "error",
        "error": "payment_exported",
        "message": "The payment was handed out as a file for the bank",
        "payment_id": created["id"],
    }


async def test_a_final_or_sent_payment_says_where_it_stands(harness: Harness) -> None:
    h = harness
    await switch_on(h)
    customer = await create_customer(h)
    cancelled = await initiate(h, customer)
    deleted = await h.client.delete(f"/v2/payment/{cancelled['id']}", headers=h.headers())
    assert deleted.status_code == 200, deleted.text
    page = await opened(h, cancelled["connect_url"])
    assert "This payment is already cancelled" in page, page[:3000]
    assert way_back(page).payload == {"status": "cancelled", "payment_id": cancelled["id"]}

    rejected = await initiate(h, customer)
    callback = await authorise(h, rejected["connect_url"], "user_nofunds")
    assert callback.payload["error"] == "payment_rejected"
    page = await opened(h, rejected["connect_url"])
    assert "This payment is already rejected" in page, page[:3000]
    assert way_back(page).payload == {
        "status": "error",
        "error": "payment_rejected",
        "message": "The payment is rejected",
        "payment_id": rejected["id"],
    }

    accepted = await initiate(h, customer)
    callback = await authorise(h, accepted["connect_url"], "user_pending")
    assert callback.payload["status"] == "success"
    page = await opened(h, accepted["connect_url"])
    assert "This payment was sent to your bank already" in page, page[:3000]
    assert way_back(page).payload == {"status": "success", "payment_id": accepted["id"]}

    # an account connect's used link is what it always was
    link = await create_token(h, customer)
    driver = ConnectDriver(h)
    await driver.open(link)
    await driver.agree()
    await driver.login("user_good")
    await driver.finish()
    page = await ConnectDriver(h).open(link)
    assert "This connect link was used already" in page, page[:3000]
