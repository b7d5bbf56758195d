"""Payments on the hosted connect page in headless Chromium, against one real ``bankhub serve``
shared by the module: a single payment authorised with a code, and a batch authorised once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import page_errors
from tests.support.live_server import LiveServer
from tests.support.loopback import PartnerSite, partner_site

SPARBANK, BANK_NAME = 3, "Sandbox Sparbank DE"
APP_NAME = "Demo app"
IBAN = "DE89370400440532013000"


@pytest.fixture(scope="module")
def site() -> Iterator[PartnerSite]:
    with partner_site(lifetime=3600) as partner:
        yield partner


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LiveServer.start(data_dir=tmp_path_factory.mktemp("payments") / "data")
    try:
        creds = server.demo_credentials()
        headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
            on = client.put("/v2/payment/settings", json={"enabled": True, "chosen_by": "e2e"})
            assert on.status_code == 200, on.text
            yield client
    finally:
        server.stop()


def _customer(api: httpx.Client) -> str:
    made = api.post("/v2/customer", json={"identifier": f"payer-{uuid.uuid4()}"})
    assert made.status_code == 200, made.text
    customer_id: str = made.json()["data"]["customer_id"]
    return customer_id


def _callback(page: Page, site: PartnerSite) -> dict[str, Any]:
    page.wait_for_url(lambda url: url.startswith(f"{site.origin}/v2/"), timeout=20_000)
    payload: dict[str, Any] = json.loads(unquote(urlsplit(page.url).path.rsplit("/", 1)[-1]))
    return payload


def _clean(page: Page) -> None:
    errors = page_errors(page)
    assert not errors.console, errors
    assert not errors.page, errors


def _log_in(page: Page, username: str) -> None:
    page.get_by_role("button", name=f"Continue to {BANK_NAME}").click()
    expect(page.get_by_role("heading", name=f"Log in to {BANK_NAME}")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pass_good")
    page.get_by_role("button", name="Log in").click()


def _choose_account(page: Page) -> None:
    """No debtor account named: the user picks one at the bank."""
    expect(page.get_by_role("heading", name="be paid from?")).to_be_visible()
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name="Continue").click()


def _code(page: Page) -> None:
    page.get_by_label("Code").fill("123456")
    page.get_by_role("button", name="Continue").click()


def test_a_single_payment_authorised_with_a_code(
    page: Page, api: httpx.Client, site: PartnerSite
) -> None:
    created = api.post(
        "/v2/payment",
        json={
            "customer_id": _customer(api),
            "service_id": SPARBANK,
            "callback_url": f"{site.origin}/v2",
            "creditor_name": "Café Zoë",
            "creditor_iban": IBAN,
            "amount": "23.40",
            "currency": "EUR",
            "remittance_information": "Table 7",
        },
        headers={"idempotency-key": uuid.uuid4().hex},
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    page.goto(data["connect_url"])
    expect(
        page.get_by_role("heading", name=f"{APP_NAME} asks you to approve a payment")
    ).to_be_visible()
    expect(page.locator("#creditor")).to_have_text("Cafe Zoe")
    expect(page.locator("#amount")).to_have_text("23.40 EUR")
    _clean(page)
    _log_in(page, "user_otp")
    _code(page)  # the login's code
    _choose_account(page)
    expect(page.get_by_text("To approve the payment of 23.40 EUR to Cafe Zoe")).to_be_visible()
    _code(page)  # the payment's
    assert _callback(page, site) == {"status": "success", "payment_id": data["id"]}
    seen = api.get(f"/v2/payment/{data['id']}").json()["data"]
    assert seen["status"] == "executed"


def test_a_batch_authorised_once(page: Page, api: httpx.Client, site: PartnerSite) -> None:
    transfers = [
        {"creditor_name": f"Supplier {n}", "creditor_iban": IBAN, "amount": "10", "currency": "EUR"}
        for n in range(5)
    ]
    created = api.post(
        "/v2/payment/batch",
        json={
            "customer_id": _customer(api),
            "service_id": SPARBANK,
            "callback_url": f"{site.origin}/v2",
            "payments": transfers,
            "total": "50.00",
        },
        headers={"idempotency-key": uuid.uuid4().hex},
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    page.goto(data["connect_url"])
    expect(
        page.get_by_role("heading", name=f"{APP_NAME} asks you to approve a batch of payments")
    ).to_be_visible()
    expect(page.locator("#count")).to_have_text("5")
    expect(page.locator("#amount")).to_have_text("50.00 EUR")
    _log_in(page, "user_good")
    _choose_account(page)
    assert _callback(page, site) == {"status": "success", "payment_id": data["id"]}
    seen = api.get(f"/v2/payment/batch/{data['id']}").json()["data"]
    assert [p["status"] for p in seen["payments"]] == ["executed"] * 5
    _clean(page)
