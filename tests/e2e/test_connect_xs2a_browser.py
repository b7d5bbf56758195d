"""The connect page in headless Chromium against the loopback XS2A peer bank, one SCA approach
each: redirect, OAuth2 (integrated), decoupled and embedded. One ``bankhub serve`` and two peer
banks serve all four; each connect ends at the partner's callback with the accounts and
transactions readable through ``/v2/account`` and ``/v2/transaction``."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from bankhub.catalogue import load_catalogue
from bankhub.catalogue.make_media import write_media
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID
from tests.connectors.xs2a.peer import OAUTH_CLIENT_ID, PeerBank, running
from tests.e2e.test_connect_browser import (
    APP_NAME,
    CallbackServer,
    Partner,
    assert_clean,
    assert_success,
    callback_server,  # noqa: F401 - the module-scoped fixture, shared
    on_page,
    wait_for_callback,
)
from tests.seed_shapes import TRANSACTION_KEYS
from tests.support.live_server import LiveServer

#: service id → (name, catalogue params beyond the base URL)
SERVICES: dict[int, tuple[str, dict[str, Any]]] = {
    901: ("Peer Bank Redirect", {"sca_approaches": ["REDIRECT"]}),
    902: (
        "Peer Bank OAuth",
        {
            "sca_approaches": ["OAUTH"],
            "oauth_variant": "integrated",
            "oauth_client_id": OAUTH_CLIENT_ID,
        },
    ),
    903: (
        "Peer Bank Decoupled",
        {"sca_approaches": ["DECOUPLED"], "psu_id_required": True, "decoupled_poll_seconds": 1},
    ),
    904: ("Peer Bank Embedded", {"sca_approaches": ["EMBEDDED"], "psu_id_required": True}),
}


@pytest.fixture(scope="module")
def peer_banks() -> Iterator[tuple[PeerBank, PeerBank]]:
    """A bank with redirect, decoupled and embedded SCA, and one whose SCA is OAuth."""
    today = datetime.now(UTC).date()
    plain = PeerBank(approaches=("REDIRECT", "DECOUPLED", "EMBEDDED"), methods=("sms", "push"))
    oauth = PeerBank(approaches=("OAUTH",), oauth_redirect_uris=())
    for bank in (plain, oauth):
        bank.today = today
    with running(plain, lifetime=900), running(oauth, lifetime=900):
        yield plain, oauth


@pytest.fixture(scope="module")
def xs2a_partner(
    peer_banks: tuple[PeerBank, PeerBank],
    callback_server: CallbackServer,  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Partner]:
    """One server for the four tests, its catalogue naming the peer banks."""
    plain, oauth = peer_banks
    root = tmp_path_factory.mktemp("xs2a-e2e")
    shipped = json.loads(files("bankhub.catalogue").joinpath("services.json").read_text())
    entries = [
        {
            "id": service_id,
            "slug": f"peer-bank-{service_id}",
            "name": name,
            "type": "bank",
            "country_code": "DE",
            "has_balance": True,
            "color": {"primary": "003366", "secondary": "FFFFFF"},
            "connector": "xs2a",
            "params": {"base_url": (oauth if service_id == 902 else plain).base_url, **params},
        }
        for service_id, (name, params) in SERVICES.items()
    ]
    catalogue = root / "catalogue.json"
    catalogue.write_text(json.dumps([*shipped, *entries]))
    write_media(load_catalogue(catalogue))  # the logos a catalogue file's services need
    server = LiveServer.start(
        data_dir=root / "data", env={"BANKHUB_CATALOGUE_FILE": str(catalogue)}
    )
    try:
        # the operator registered the server's return URL with the bank
        oauth.oauth_client.redirect_uris = [f"{server.url}/v2/connect/return"]
        creds = server.demo_credentials()
        headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
            yield Partner(server, callback_server, client)
    finally:
        server.stop()


def start(page: Page, partner: Partner, service_id: int) -> str:
    name = SERVICES[service_id][0]
    page.goto(partner.connect_url(service_id))
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, f"Log in to {name}")
    return name


def approve_at_the_bank(page: Page, partner: Partner, name: str, bank: PeerBank) -> None:
    on_page(page, f"Continue at {name}")
    page.get_by_role("link", name=f"Continue to {name}").click()
    page.wait_for_url(lambda url: url.startswith(bank.origin))
    expect(page.get_by_role("heading", name="Share your account data?")).to_be_visible()
    page.get_by_role("button", name="Approve").click()


def assert_readable(partner: Partner, payload: dict[str, Any]) -> None:
    login_id, secret = assert_success(payload)
    accounts = partner.get("/v2/account", secret)
    assert {a["original_id"] for a in accounts} == {"acc-giro", "acc-save", "acc-usd"}, accounts
    assert {a["login_id"] for a in accounts} == {login_id}
    assert {a["type"] for a in accounts} == {"current", "savings"}
    giro = next(a for a in accounts if a["original_id"] == "acc-giro")
    assert giro["balance"] == "1523.42"
    rows = partner.get("/v2/transaction", secret, account_id=giro["id"])
    assert len(rows) >= 25, "the first fetch did not follow the bank's pages"
    for row in rows[:10]:
        assert set(row) == TRANSACTION_KEYS
        assert isinstance(row["amount"], str)


def test_redirect_sca_at_the_bank(
    page: Page, xs2a_partner: Partner, peer_banks: tuple[PeerBank, PeerBank]
) -> None:
    name = start(page, xs2a_partner, 901)
    page.get_by_role("button", name="Log in").click()
    approve_at_the_bank(page, xs2a_partner, name, peer_banks[0])
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert_readable(xs2a_partner, payload)


def test_oauth_sca_at_the_banks_authorization_server(
    page: Page, xs2a_partner: Partner, peer_banks: tuple[PeerBank, PeerBank]
) -> None:
    oauth = peer_banks[1]
    name = start(page, xs2a_partner, 902)
    page.get_by_role("button", name="Log in").click()
    on_page(page, f"Continue at {name}")
    link = page.get_by_role("link", name=f"Continue to {name}").get_attribute("href")
    assert link is not None
    assert urlsplit(link).path == "/oauth/authorize"
    assert "code_challenge_method=S256" in link
    approve_at_the_bank(page, xs2a_partner, name, oauth)
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert_readable(xs2a_partner, payload)
    assert oauth.oauth_records.token_requests[-1] == "authorization_code"


def test_decoupled_sca_in_the_banking_app(
    page: Page, xs2a_partner: Partner, peer_banks: tuple[PeerBank, PeerBank]
) -> None:
    start(page, xs2a_partner, 903)
    page.get_by_label("Online banking user ID").fill(PSU_ID)
    page.get_by_role("button", name="Log in").click()
    on_page(page, "Approve in your banking app")
    expect(page.get_by_text("Please approve in your BankApp.")).to_be_visible()
    # no clicks: the page checks again by itself until the bank has the approval
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert_readable(xs2a_partner, payload)


def test_embedded_sca_on_the_connect_page(
    page: Page, xs2a_partner: Partner, peer_banks: tuple[PeerBank, PeerBank]
) -> None:
    start(page, xs2a_partner, 904)
    page.get_by_label("Online banking user ID").fill(PSU_ID)
    page.get_by_label("Online banking password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    on_page(page, "How do you want to confirm the access?")
    page.get_by_label("PUSH_OTP (push)").check()
    page.get_by_role("button", name="Continue").click()
    on_page(page, re.compile("Enter the code from PUSH_OTP"))
    page.get_by_label("Code").fill(peer_banks[0].code)
    page.get_by_role("button", name="Continue").click()
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert_readable(xs2a_partner, payload)


#: how long the peer bank takes for a stalled call: the progress page stands meanwhile
STALL = 2.0


def after_the_stall(page: Page, heading: str) -> None:
    """The step after the stalled call: the progress page reloads each second until it comes,
    so it shows after the stall and up to a reload or two more (more on a loaded machine)."""
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=(STALL + 10) * 1000)
    assert_clean(page)


@pytest.fixture
def slow_to_execute(peer_banks: tuple[PeerBank, PeerBank]) -> Iterator[PeerBank]:
    """The plain bank accepts payments and never executes them (the server's payments sweep
    polls meanwhile), and wants the account holder to authorise a cancellation."""
    plain = peer_banks[0]
    plain.payment_statuses = ("ACTC", "ACSP")
    try:
        yield plain
    finally:
        plain.payment_statuses = ("ACTC", "ACSP", "ACSC")
        plain.cancel_needs_authorisation = False


def test_a_payment_approved_on_the_banks_page_then_its_cancellation(
    page: Page, xs2a_partner: Partner, slow_to_execute: PeerBank
) -> None:
    """An XS2A payment (redirect) from an account the customer connected before: the
    connect page shows it, the bank's page approves it, the partner's callback names it, and
    the bank holds exactly one payment with bankhub's request id. Then the partner cancels it,
    the bank wants the account holder to authorise that: the cancellation's connect link shows
    the payment, the bank's page approves, the callback says success, and it is cancelled."""
    plain = slow_to_execute
    client = xs2a_partner.client
    assert (
        client.put("/v2/payment/settings", json={"enabled": True, "chosen_by": "e2e"}).status_code
        == 200
    )
    customer = client.post("/v2/customer", json={"identifier": f"payer-{uuid.uuid4()}"})
    customer_id = customer.json()["data"]["customer_id"]
    token = client.post(
        "/v2/token",
        json={
            "customer_id": customer_id,
            "service_id": 901,
            "callback_url": xs2a_partner.callback.url,
        },
    ).json()["data"]
    name = SERVICES[901][0]
    page.goto(token["connect_url"])
    page.get_by_role("button", name="I agree, continue").click()
    page.get_by_role("button", name="Log in").click()
    approve_at_the_bank(page, xs2a_partner, name, plain)
    _, secret = assert_success(wait_for_callback(page, xs2a_partner.callback))
    giro = next(
        a for a in xs2a_partner.get("/v2/account", secret) if a["original_id"] == "acc-giro"
    )
    held_before = set(plain.payments)
    created = client.post(
        "/v2/payment",
        json={
            "customer_id": customer_id,
            "service_id": 901,
            "account_id": giro["id"],
            "callback_url": xs2a_partner.callback.url,
            "creditor_name": "Café Zoë",
            "creditor_iban": "FR1420041010050500013M02606",
            "amount": "23.40",
            "currency": "EUR",
            "remittance_information": "Table 7",
        },
        headers={"idempotency-key": uuid.uuid4().hex},
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    page.goto(data["connect_url"])
    on_page(page, f"{APP_NAME} asks you to approve a payment")
    expect(page.locator("#amount")).to_have_text("€23.40")
    page.get_by_role("button", name=f"Continue to {name}").click()
    on_page(page, f"Log in to {name}")
    plain.fail("/v1/payments/sepa-credit-transfers", stall=STALL)
    page.get_by_role("button", name="Log in").click()
    on_page(page, f"Sending your payment to {name}…")
    after_the_stall(page, f"Continue at {name}")
    page.get_by_role("link", name=f"Continue to {name}").click()
    page.wait_for_url(lambda url: url.startswith(plain.origin))
    page.get_by_role("button", name="Approve").click()
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert payload == {"status": "success", "payment_id": data["id"]}
    (bank_id,) = set(plain.payments) - held_before
    assert plain.payments[bank_id].request_id == data["id"]
    assert plain.payments[bank_id].body["creditorName"] == "Cafe Zoe"
    seen = client.get(f"/v2/payment/{data['id']}").json()["data"]
    assert seen["status"] in ("authorised", "accepted")

    plain.cancel_needs_authorisation = True
    asked = client.delete(f"/v2/payment/{data['id']}")
    assert asked.status_code == 202, asked.text
    page.goto(asked.json()["data"]["connect_url"])
    on_page(page, f"{APP_NAME} asks you to cancel a payment")
    expect(page.locator("#amount")).to_have_text("€23.40")
    expect(page.locator("#creditor")).to_have_text("Cafe Zoe")
    page.get_by_role("button", name=f"Continue to {name}").click()
    on_page(page, f"Log in to {name}")
    plain.fail("/cancellation-authorisations", stall=STALL)
    page.get_by_role("button", name="Log in").click()
    on_page(page, f"Asking {name} to cancel your payment…")
    after_the_stall(page, f"Continue at {name}")
    page.get_by_role("link", name=f"Continue to {name}").click()
    page.wait_for_url(lambda url: url.startswith(plain.origin))
    page.get_by_role("button", name="Approve").click()
    payload = wait_for_callback(page, xs2a_partner.callback)
    assert_clean(page)
    assert payload == {"status": "success", "payment_id": data["id"]}
    assert plain.payments[bank_id].status == "CANC"
    seen = client.get(f"/v2/payment/{data['id']}").json()["data"]
    assert seen["status"] == "cancelled"
    assert plain.spec_problems_seen == []
